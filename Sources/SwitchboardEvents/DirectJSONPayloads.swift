import EventLog
import Foundation

/// Events written by almost every decision (job and delivery lifecycles, lease grants and renewals) write
/// their JSON directly instead of through `Codable`, whose per-field dispatch is the largest cost of encoding
/// inside the write transaction. The bytes are exactly what their `Codable` conformance writes through
/// ``PayloadJSONEncoder`` (same members, same order, `nil` omitted); `PayloadJSONTests` compares both.
protocol DirectJSONPayload {
    func writeJSON(_ object: inout JSONObjectWriter)
}

/// Writes one JSON object's members into a ``PayloadJSONEncoder``.
struct JSONObjectWriter {
    let encoder: PayloadJSONEncoder
    private var empty = true

    init(_ encoder: PayloadJSONEncoder) { self.encoder = encoder }

    private mutating func name(_ name: StaticString) {
        encoder.bytes.append(empty ? UInt8(ascii: "{") : UInt8(ascii: ","))
        empty = false
        encoder.bytes.append(UInt8(ascii: "\""))
        encoder.bytes.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        encoder.bytes.append(UInt8(ascii: "\""))
        encoder.bytes.append(UInt8(ascii: ":"))
    }

    mutating func callAsFunction(_ name: StaticString, _ value: String) {
        self.name(name)
        encoder.string(value)
    }

    mutating func callAsFunction(_ name: StaticString, _ value: String?) {
        if let value { self(name, value) }
    }

    mutating func callAsFunction<I: FixedWidthInteger>(_ name: StaticString, _ value: I) {
        self.name(name)
        encoder.number(value)
    }

    mutating func callAsFunction<I: FixedWidthInteger>(_ name: StaticString, _ value: I?) {
        if let value { self(name, value) }
    }

    mutating func callAsFunction(_ name: StaticString, _ value: LogTimestamp) { self(name, value.microseconds) }

    mutating func callAsFunction(_ name: StaticString, _ value: LogTimestamp?) {
        if let value { self(name, value.microseconds) }
    }

    mutating func callAsFunction(_ name: StaticString, _ value: Bool) {
        self.name(name)
        encoder.boolean(value)
    }

    mutating func callAsFunction(_ name: StaticString, _ value: [String: String]) {
        self.name(name)
        encoder.stringDictionary(value)
    }

    /// Closes the object.
    mutating func end() {
        if empty { encoder.bytes.append(UInt8(ascii: "{")) }
        encoder.bytes.append(UInt8(ascii: "}"))
    }
}

extension JobEnqueued: DirectJSONPayload {
    func writeJSON(_ o: inout JSONObjectWriter) {
        o("jobID", jobID)
        o("idempotencyKey", idempotencyKey)
        o("conversationID", conversationID)
        o("kind", kind)
        o("triggeringMessageSeq", triggeringMessageSeq)
        o("parentJobID", parentJobID)
        o("rootJobID", rootJobID)
        o("priority", priority)
        o("runAt", runAt)
        o("maxAttempts", maxAttempts)
        o("payload", payload)
        o("replyToExternalID", replyToExternalID)
    }
}

extension JobClaimed: DirectJSONPayload {
    func writeJSON(_ o: inout JSONObjectWriter) {
        o("jobID", jobID)
        o("workerID", workerID)
        o("ownerInstance", ownerInstance)
        o("token", token)
        o("attempt", attempt)
        o("visibleUntil", visibleUntil)
    }
}

extension JobHeartbeat: DirectJSONPayload {
    func writeJSON(_ o: inout JSONObjectWriter) {
        o("jobID", jobID)
        o("token", token)
        o("visibleUntil", visibleUntil)
    }
}

extension JobCompleted: DirectJSONPayload {
    func writeJSON(_ o: inout JSONObjectWriter) {
        o("jobID", jobID)
        o("token", token)
        o("result", result)
        o("modelUsed", modelUsed)
    }
}

extension DeliveryEnqueued: DirectJSONPayload {
    func writeJSON(_ o: inout JSONObjectWriter) {
        o("deliveryID", deliveryID)
        o("idempotencyKey", idempotencyKey)
        o("channel", channel)
        o("accountID", accountID)
        o("recipient", recipient)
        o("conversationID", conversationID)
        o("sourceMessageID", sourceMessageID)
        o("part", part)
        o("kind", kind)
        o("text", text)
        o("maxAttempts", maxAttempts)
        o("replyToExternalID", replyToExternalID)
        o("jobID", jobID)
        o("jobToken", jobToken)
    }
}

extension DeliveryClaimed: DirectJSONPayload {
    func writeJSON(_ o: inout JSONObjectWriter) {
        o("deliveryID", deliveryID)
        o("workerID", workerID)
        o("ownerInstance", ownerInstance)
        o("token", token)
        o("leaseResource", leaseResource)
        o("leaseToken", leaseToken)
        o("attempt", attempt)
        o("visibleUntil", visibleUntil)
    }
}

extension DeliveryAttempted: DirectJSONPayload {
    func writeJSON(_ o: inout JSONObjectWriter) {
        o("deliveryID", deliveryID)
        o("token", token)
        o("leaseToken", leaseToken)
        o("attempt", attempt)
    }
}

extension DeliverySent: DirectJSONPayload {
    func writeJSON(_ o: inout JSONObjectWriter) {
        o("deliveryID", deliveryID)
        o("token", token)
        o("leaseToken", leaseToken)
        o("attempt", attempt)
        o("providerMessageID", providerMessageID)
    }
}

extension LeaseAcquired: DirectJSONPayload {
    func writeJSON(_ o: inout JSONObjectWriter) {
        o("resource", resource)
        o("ownerWorkerID", ownerWorkerID)
        o("ownerInstance", ownerInstance)
        o("token", token)
        o("expiresAt", expiresAt)
        o("ttlMilliseconds", ttlMilliseconds)
        o("previousOwner", previousOwner)
    }
}

extension LeaseRenewed: DirectJSONPayload {
    func writeJSON(_ o: inout JSONObjectWriter) {
        o("resource", resource)
        o("ownerWorkerID", ownerWorkerID)
        o("ownerInstance", ownerInstance)
        o("token", token)
        o("expiresAt", expiresAt)
    }
}
