import EventLog
import Foundation

/// The hot events (those ``DirectJSONPayload`` writes) also read their JSON directly: members are found by name
/// in the scanned object and converted in place, without `Decodable`'s containers, whose per-field dispatch and
/// generic lookups are most of the cost of decoding a record. The rules are ``FastJSONDecoder``'s: any key order
/// and whitespace, extra members ignored, `null` or absent optionals are `nil`, a missing required member
/// throws, and anything the scanner does not handle throws so that the caller falls back to `Codable`.
protocol DirectJSONDecodable {
    init(json: JSONObjectReader) throws
}

/// Reads one JSON object's members by name.
struct JSONObjectReader {
    private let scanner: FastJSONDecoder
    private let members: [(key: UnsafeBufferPointer<UInt8>, value: Int)]

    init(_ scanner: FastJSONDecoder) throws {
        self.scanner = scanner
        members = try scanner.members()
    }

    /// Where the value of the first member named `name` starts; `nil` when it is absent or `null`.
    private func value(_ name: StaticString) -> Int? {
        let count = name.utf8CodeUnitCount
        for member in members where member.key.count == count {
            if memcmp(member.key.baseAddress!, name.utf8Start, count) == 0 {
                return scanner.isNull(at: member.value) ? nil : member.value
            }
        }
        return nil
    }

    private func required(_ name: StaticString) throws -> Int {
        guard let at = value(name) else { throw FastJSONError() }
        return at
    }

    func string(_ name: StaticString) throws -> String { try scanner.string(at: required(name)) }

    func optionalString(_ name: StaticString) throws -> String? { try value(name).map { try scanner.string(at: $0) } }

    func integer<I: FixedWidthInteger>(_ name: StaticString, as type: I.Type = I.self) throws -> I {
        try scanner.integer(I.self, at: required(name))
    }

    func optionalInteger<I: FixedWidthInteger>(_ name: StaticString, as type: I.Type = I.self) throws -> I? {
        try value(name).map { try scanner.integer(I.self, at: $0) }
    }

    func timestamp(_ name: StaticString) throws -> LogTimestamp {
        LogTimestamp(microseconds: try integer(name, as: Int64.self))
    }

    func optionalTimestamp(_ name: StaticString) throws -> LogTimestamp? {
        try optionalInteger(name, as: Int64.self).map(LogTimestamp.init(microseconds:))
    }

    func stringDictionary(_ name: StaticString) throws -> [String: String] {
        let bytes = scanner.bytes
        var i = scanner.skipSpace(try required(name))
        guard i < bytes.count, bytes[i] == UInt8(ascii: "{") else { throw FastJSONError() }
        var dictionary: [String: String] = [:]
        i = scanner.skipSpace(i + 1)
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") { return dictionary }
        while true {
            // Keys may be escaped here (they are data, not member names).
            let key = try scanner.string(at: i)
            i = scanner.skipSpace(try scanner.endOfString(i))
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw FastJSONError() }
            // A duplicate key is left to `Codable`.
            guard dictionary.updateValue(try scanner.string(at: i + 1), forKey: key) == nil else {
                throw FastJSONError()
            }
            i = scanner.skipSpace(try scanner.skipValue(i + 1))
            guard i < bytes.count else { throw FastJSONError() }
            if bytes[i] == UInt8(ascii: "}") { return dictionary }
            guard bytes[i] == UInt8(ascii: ",") else { throw FastJSONError() }
            i = scanner.skipSpace(i + 1)
        }
    }
}

extension PayloadJSONDecoding {
    /// `type` read directly when it is one of the hot events, otherwise `nil`.
    static func decodeDirectly<T>(_ type: T.Type, from bytes: UnsafeBufferPointer<UInt8>) throws -> T? {
        guard let direct = type as? any DirectJSONDecodable.Type else { return nil }
        return try direct.init(json: JSONObjectReader(FastJSONDecoder(bytes, start: 0))) as? T
    }
}

extension JobEnqueued: DirectJSONDecodable {
    init(json o: JSONObjectReader) throws {
        self.init(
            jobID: try o.string("jobID"), idempotencyKey: try o.string("idempotencyKey"),
            conversationID: try o.string("conversationID"), kind: try o.string("kind"),
            triggeringMessageSeq: try o.optionalInteger("triggeringMessageSeq"),
            parentJobID: try o.optionalString("parentJobID"), rootJobID: try o.optionalString("rootJobID"),
            priority: try o.integer("priority"), runAt: try o.optionalTimestamp("runAt"),
            maxAttempts: try o.integer("maxAttempts"), payload: try o.stringDictionary("payload"),
            replyToExternalID: try o.optionalString("replyToExternalID"))
    }
}

extension JobClaimed: DirectJSONDecodable {
    init(json o: JSONObjectReader) throws {
        self.init(
            jobID: try o.string("jobID"), workerID: try o.string("workerID"),
            ownerInstance: try o.string("ownerInstance"), token: try o.integer("token"),
            attempt: try o.integer("attempt"), visibleUntil: try o.timestamp("visibleUntil"))
    }
}

extension JobHeartbeat: DirectJSONDecodable {
    init(json o: JSONObjectReader) throws {
        self.init(
            jobID: try o.string("jobID"), token: try o.integer("token"), visibleUntil: try o.timestamp("visibleUntil"))
    }
}

extension JobCompleted: DirectJSONDecodable {
    init(json o: JSONObjectReader) throws {
        self.init(
            jobID: try o.string("jobID"), token: try o.integer("token"), result: try o.optionalString("result"),
            modelUsed: try o.optionalString("modelUsed"))
    }
}

extension DeliveryEnqueued: DirectJSONDecodable {
    init(json o: JSONObjectReader) throws {
        self.init(
            deliveryID: try o.string("deliveryID"), idempotencyKey: try o.string("idempotencyKey"),
            channel: try o.string("channel"), accountID: try o.string("accountID"),
            recipient: try o.string("recipient"), conversationID: try o.string("conversationID"),
            sourceMessageID: try o.optionalString("sourceMessageID"), part: try o.integer("part"),
            kind: try o.string("kind"), text: try o.string("text"), maxAttempts: try o.integer("maxAttempts"),
            replyToExternalID: try o.optionalString("replyToExternalID"), jobID: try o.optionalString("jobID"),
            jobToken: try o.optionalInteger("jobToken"))
    }
}

extension DeliveryClaimed: DirectJSONDecodable {
    init(json o: JSONObjectReader) throws {
        self.init(
            deliveryID: try o.string("deliveryID"), workerID: try o.string("workerID"),
            ownerInstance: try o.string("ownerInstance"), token: try o.integer("token"),
            leaseResource: try o.string("leaseResource"), leaseToken: try o.integer("leaseToken"),
            attempt: try o.integer("attempt"), visibleUntil: try o.timestamp("visibleUntil"))
    }
}

extension DeliveryAttempted: DirectJSONDecodable {
    init(json o: JSONObjectReader) throws {
        self.init(
            deliveryID: try o.string("deliveryID"), token: try o.integer("token"),
            leaseToken: try o.integer("leaseToken"), attempt: try o.integer("attempt"))
    }
}

extension DeliverySent: DirectJSONDecodable {
    init(json o: JSONObjectReader) throws {
        self.init(
            deliveryID: try o.string("deliveryID"), token: try o.integer("token"),
            leaseToken: try o.integer("leaseToken"), attempt: try o.integer("attempt"),
            providerMessageID: try o.optionalString("providerMessageID"))
    }
}

extension LeaseAcquired: DirectJSONDecodable {
    init(json o: JSONObjectReader) throws {
        self.init(
            resource: try o.string("resource"), ownerWorkerID: try o.string("ownerWorkerID"),
            ownerInstance: try o.string("ownerInstance"), token: try o.integer("token"),
            expiresAt: try o.timestamp("expiresAt"), ttlMilliseconds: try o.integer("ttlMilliseconds"),
            previousOwner: try o.optionalString("previousOwner"))
    }
}

extension LeaseRenewed: DirectJSONDecodable {
    init(json o: JSONObjectReader) throws {
        self.init(
            resource: try o.string("resource"), ownerWorkerID: try o.string("ownerWorkerID"),
            ownerInstance: try o.string("ownerInstance"), token: try o.integer("token"),
            expiresAt: try o.timestamp("expiresAt"))
    }
}
