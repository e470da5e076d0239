import EventLog
import SwitchboardEvents
import Foundation

/// State types written on every decision get a hand-written binary form (same layout rules as ``BinaryState``,
/// no `Codable` machinery): jobs, deliveries and leases are read and rewritten by almost every command.
protocol HotState {
    func write(to out: BinaryStateEncoder)
    init(from input: BinaryStateDecoder) throws
}

extension BinaryStateEncoder {
    func optional(_ value: String?) {
        if let value {
            byte(1)
            string(value)
        } else {
            byte(0)
        }
    }

    func optional(_ value: UInt64?) {
        if let value {
            byte(1)
            integer(value)
        } else {
            byte(0)
        }
    }

    func optional(_ value: LogTimestamp?) { optional(value.map { UInt64(bitPattern: $0.microseconds) }) }

    func optional(_ value: Owner?) {
        if let value {
            byte(1)
            string(value.workerID)
            string(value.instance)
        } else {
            byte(0)
        }
    }

    func time(_ value: LogTimestamp) { integer(value.microseconds) }
}

extension BinaryStateDecoder {
    func optionalString() throws -> String? { try flag() ? try string() : nil }
    func optionalUInt64() throws -> UInt64? { try flag() ? try integer(UInt64.self) : nil }
    func optionalTime() throws -> LogTimestamp? {
        try optionalUInt64().map { LogTimestamp(microseconds: Int64(bitPattern: $0)) }
    }
    func optionalOwner() throws -> Owner? {
        try flag() ? Owner(workerID: try string(), instance: try string()) : nil
    }
    func time() throws -> LogTimestamp { LogTimestamp(microseconds: try integer(Int64.self)) }
    func int() throws -> Int { Int(try integer(Int64.self)) }
}

extension JobState {
    /// The status in a stored job state, read without decoding the rest (``write(to:)``'s layout).
    static func status(of stored: UnsafeRawBufferPointer) throws -> JobStatus {
        var offset = 0
        func integer<I: FixedWidthInteger>(_ type: I.Type) throws -> I {
            guard offset + MemoryLayout<I>.size <= stored.count else { throw BinaryStateDecoder.corrupt("truncated") }
            defer { offset += MemoryLayout<I>.size }
            return I(littleEndian: stored.loadUnaligned(fromByteOffset: offset, as: I.self))
        }
        func skipString() throws {
            let count = Int(try integer(UInt32.self))
            guard offset + count <= stored.count else { throw BinaryStateDecoder.corrupt("truncated") }
            offset += count
        }
        for _ in 0..<4 { try skipString() }  // jobID, idempotencyKey, conversationID, kind
        _ = try integer(Int64.self)  // priority
        if try integer(UInt8.self) != 0 { try skipString() }  // parentJobID
        try skipString()  // rootJobID
        _ = try integer(Int64.self)  // maxAttempts
        for _ in 0..<(2 * Int(try integer(UInt32.self))) { try skipString() }  // payload
        _ = try integer(UInt64.self)  // enqueueSeq
        let count = Int(try integer(UInt32.self))
        guard offset + count <= stored.count,
            let status = JobStatus(rawValue: String(decoding: stored[offset..<offset + count], as: UTF8.self))
        else { throw BinaryStateDecoder.corrupt("job status") }
        return status
    }
}

extension JobState: HotState {
    func write(to out: BinaryStateEncoder) {
        out.string(jobID)
        out.string(idempotencyKey)
        out.string(conversationID)
        out.string(kind)
        out.integer(Int64(priority))
        out.optional(parentJobID)
        out.string(rootJobID)
        out.integer(Int64(maxAttempts))
        out.integer(UInt32(payload.count))
        for key in payload.keys.sorted() {
            out.string(key)
            out.string(payload[key]!)
        }
        out.integer(enqueueSeq)
        out.string(status.rawValue)
        out.integer(Int64(attempt))
        out.time(notBefore)
        out.integer(token)
        out.optional(claimedBy)
        out.optional(visibleUntil)
        out.optional(lastReason)
        out.optional(lastMessage)
        out.optional(result)
        out.optional(triggeringMessageSeq)
        out.optional(replyToExternalID)
    }

    init(from input: BinaryStateDecoder) throws {
        jobID = try input.string()
        idempotencyKey = try input.string()
        conversationID = try input.string()
        kind = try input.string()
        priority = try input.int()
        parentJobID = try input.optionalString()
        rootJobID = try input.string()
        maxAttempts = try input.int()
        let count = Int(try input.integer(UInt32.self))
        var payload: [String: String] = [:]
        for _ in 0..<count { payload[try input.string()] = try input.string() }
        self.payload = payload
        enqueueSeq = try input.integer(UInt64.self)
        guard let status = JobStatus(rawValue: try input.string()) else {
            throw BinaryStateDecoder.corrupt("job status")
        }
        self.status = status
        attempt = try input.int()
        notBefore = try input.time()
        token = try input.integer(UInt64.self)
        claimedBy = try input.optionalOwner()
        visibleUntil = try input.optionalTime()
        lastReason = try input.optionalString()
        lastMessage = try input.optionalString()
        result = try input.optionalString()
        triggeringMessageSeq = try input.optionalUInt64()
        replyToExternalID = try input.optionalString()
    }
}

extension DeliveryState: HotState {
    func write(to out: BinaryStateEncoder) {
        for field in [deliveryID, idempotencyKey, channel, accountID, recipient, conversationID, kind, text] {
            out.string(field)
        }
        out.integer(Int64(part))
        out.integer(Int64(maxAttempts))
        out.integer(enqueueSeq)
        out.string(status.rawValue)
        out.integer(Int64(attempt))
        out.time(notBefore)
        out.integer(token)
        out.optional(leaseToken)
        out.optional(claimedBy)
        out.optional(visibleUntil)
        out.optional(lastError)
        out.optional(providerMessageID)
        out.optional(sourceMessageID)
        out.optional(replyToExternalID)
    }

    init(from input: BinaryStateDecoder) throws {
        deliveryID = try input.string()
        idempotencyKey = try input.string()
        channel = try input.string()
        accountID = try input.string()
        recipient = try input.string()
        conversationID = try input.string()
        kind = try input.string()
        text = try input.string()
        part = try input.int()
        maxAttempts = try input.int()
        enqueueSeq = try input.integer(UInt64.self)
        guard let status = DeliveryStatus(rawValue: try input.string()) else {
            throw BinaryStateDecoder.corrupt("delivery status")
        }
        self.status = status
        attempt = try input.int()
        notBefore = try input.time()
        token = try input.integer(UInt64.self)
        leaseToken = try input.optionalUInt64()
        claimedBy = try input.optionalOwner()
        visibleUntil = try input.optionalTime()
        lastError = try input.optionalString()
        providerMessageID = try input.optionalString()
        sourceMessageID = try input.optionalString()
        replyToExternalID = try input.optionalString()
    }
}

extension LeaseState: HotState {
    func write(to out: BinaryStateEncoder) {
        out.string(resource)
        out.string(owner.workerID)
        out.string(owner.instance)
        out.integer(token)
        out.time(acquiredAt)
        out.time(expiresAt)
        out.byte(held ? 1 : 0)
    }

    init(from input: BinaryStateDecoder) throws {
        resource = try input.string()
        owner = Owner(workerID: try input.string(), instance: try input.string())
        token = try input.integer(UInt64.self)
        acquiredAt = try input.time()
        expiresAt = try input.time()
        held = try input.flag()
    }
}
