import Foundation
import Testing

@testable import EventLog
@testable import SwitchboardEvents

@Suite("Event payload JSON")
struct PayloadJSONTests {
    static let tricky = "quote\" backslash\\ newline\n tab\t bell\u{7} nul\u{0} slash/ é ✓ 𝄞"

    @Test func payloadsRoundTripThroughAnyJSONReader() throws {
        let events: [any EventPayload] = [
            MessageReceived(
                channel: "whatsapp", accountID: "default", externalID: "wamid.1", conversationID: "c",
                contactID: "+1555", text: Self.tricky,
                media: MediaDescriptor(kind: "audio", mimeType: "audio/ogg", providerMediaID: "m1", url: nil),
                providerTimestamp: LogTimestamp(microseconds: -5), replyToExternalID: nil),
            SessionEntrySet(
                namespace: "whatsapp/default", key: "creds", value: Data([0, 255, 10, 34]), encrypted: true,
                leaseToken: .max),
            WorkerStarted(
                role: "core", workerID: "w", instance: "i", pid: 42, version: "1",
                configuration: ["z": "1", "a": Self.tricky, "m": ""]),
            JobEnqueued(
                jobID: "j", idempotencyKey: "k", conversationID: "c", kind: "reply", triggeringMessageSeq: nil,
                parentJobID: "p", rootJobID: nil, priority: -7, runAt: nil, maxAttempts: 3, payload: [:]),
            DeliveryFailed(
                deliveryID: "d", token: 9, attempt: 2, permanent: false, retryAfter: nil, errorCode: nil,
                message: ""),
        ]
        for event in events { try Self.open(event) }
    }

    static func open(_ event: any EventPayload) throws { try roundTrip(event) }

    static func roundTrip<E: EventPayload>(_ event: E) throws {
        let bytes = try PayloadJSON.encode(event)
        let decoded = try JSONDecoder().decode(E.self, from: Data(bytes))
        #expect(decoded == event, "\(String(decoding: bytes, as: UTF8.self))")
        // Deterministic: the same value encodes to the same bytes.
        #expect(try PayloadJSON.encode(event) == bytes)
        // Valid JSON for any reader, not only Swift's.
        #expect(try JSONSerialization.jsonObject(with: Data(bytes)) is [String: Any])
    }

    /// Hot events write their JSON by hand; it must be byte for byte what their `Codable` conformance writes.
    static let directPayloads: [any EventPayload] = {
        let t = tricky
        let time = LogTimestamp(microseconds: -1_234_567)
        return [
            JobEnqueued(jobID: t, idempotencyKey: "k", conversationID: "c", kind: "reply", maxAttempts: 3),
            JobEnqueued(
                jobID: "j", idempotencyKey: t, conversationID: "c", kind: "subagent", triggeringMessageSeq: .max,
                parentJobID: "p", rootJobID: "r", priority: Int.min, runAt: time, maxAttempts: -1,
                payload: ["z": t, "a": "", t: "x"]),
            JobClaimed(jobID: "j", workerID: t, ownerInstance: "i", token: 0, attempt: Int.max, visibleUntil: time),
            JobHeartbeat(jobID: "j", token: 18, visibleUntil: LogTimestamp(microseconds: .max)),
            JobCompleted(jobID: "j", token: 1, result: nil, modelUsed: nil),
            JobCompleted(jobID: "j", token: 1, result: t, modelUsed: ""),
            DeliveryEnqueued(
                deliveryID: "d", idempotencyKey: "k", channel: "telegram", accountID: "a", recipient: "r",
                conversationID: "c", sourceMessageID: nil, part: 0, kind: "text", text: t, maxAttempts: 5,
                replyToExternalID: nil, jobID: nil, jobToken: nil),
            DeliveryEnqueued(
                deliveryID: "d", idempotencyKey: "k", channel: "web", accountID: "a", recipient: t,
                conversationID: "c", sourceMessageID: "m", part: -2, kind: "text", text: "", maxAttempts: 1,
                replyToExternalID: "x", jobID: "j", jobToken: 7),
            DeliveryClaimed(
                deliveryID: "d", workerID: "w", ownerInstance: "i", token: 3, leaseResource: "whatsapp/default",
                leaseToken: 2, attempt: 1, visibleUntil: time),
            DeliveryAttempted(deliveryID: "d", token: 3, leaseToken: 2, attempt: 1),
            DeliverySent(deliveryID: "d", token: 3, leaseToken: 2, attempt: 1, providerMessageID: nil),
            DeliverySent(deliveryID: "d", token: 3, leaseToken: 2, attempt: 1, providerMessageID: t),
            LeaseAcquired(
                resource: "r", ownerWorkerID: "w", ownerInstance: "i", token: 1, expiresAt: time,
                ttlMilliseconds: 45_000, previousOwner: nil),
            LeaseAcquired(
                resource: t, ownerWorkerID: "w", ownerInstance: "i", token: .max, expiresAt: time,
                ttlMilliseconds: .min, previousOwner: "w2"),
            LeaseRenewed(resource: "r", ownerWorkerID: "w", ownerInstance: "i", token: 9, expiresAt: time),
        ]
    }()

    @Test(arguments: directPayloads.indices)
    func directPayloadsWriteWhatCodableWrites(_ index: Int) throws {
        let event = Self.directPayloads[index]
        #expect(event is any DirectJSONPayload)
        let direct = try PayloadJSON.encode(event)
        let codable = try PayloadJSON.encodeWithCodable(event)
        #expect(String(decoding: direct, as: UTF8.self) == String(decoding: codable, as: UTF8.self))
        #expect(direct == codable)
        try Self.open(event)
    }

    /// Hot events also read their JSON directly (not through `Decodable`); it must give back the same value, for
    /// what this build writes and for other writers' JSON (other key order, whitespace, escapes, extra members).
    @Test(arguments: directPayloads.indices)
    func directPayloadsReadBackWithoutCodable(_ index: Int) throws {
        try Self.readDirectly(Self.directPayloads[index])
    }

    static func readDirectly<E: EventPayload>(_ event: E) throws {
        let ours = try PayloadJSON.encode(event)
        let direct = try ours.withUnsafeBufferPointer { try PayloadJSONDecoding.decodeDirectly(E.self, from: $0) }
        #expect(direct == event, "\(String(decoding: ours, as: UTF8.self))")
        // Foundation's writer: sorted keys, indentation, `\/` and `\u0007` escapes; plus an unknown member.
        let foreign = JSONEncoder()
        foreign.outputFormatting = [.prettyPrinted, .sortedKeys]
        var text = String(decoding: try foreign.encode(event), as: UTF8.self)
        text.insert(contentsOf: #""zzUnknown" : [1, {"a": null}],"#, at: text.index(after: text.startIndex))
        let record = Record(
            seq: 1, timestamp: LogTimestamp(microseconds: 0), type: E.eventType, schemaVersion: E.schemaVersion,
            writer: WriterIdentity(role: "t", workerID: "t"), correlationID: nil, causationID: nil,
            payloadEncoding: .json, payload: Array(text.utf8))
        #expect(try record.decode(E.self) == event, "\(text)")
        let fast = try Array(text.utf8).withUnsafeBufferPointer {
            try PayloadJSONDecoding.decodeDirectly(E.self, from: $0)
        }
        #expect(fast == event, "\(text)")
    }

    @Test func directReadsRefuseWhatCodableWouldRefuse() throws {
        func read(_ json: String) throws -> JobClaimed? {
            try Array(json.utf8).withUnsafeBufferPointer {
                try PayloadJSONDecoding.decodeDirectly(JobClaimed.self, from: $0)
            }
        }
        let good = #"{"jobID":"j","workerID":"w","ownerInstance":"i","token":3,"attempt":1,"visibleUntil":-5}"#
        #expect(
            try read(good)
                == JobClaimed(
                    jobID: "j", workerID: "w", ownerInstance: "i", token: 3, attempt: 1,
                    visibleUntil: LogTimestamp(microseconds: -5)))
        // A missing or null required member, a wrong type, a fraction, a negative unsigned number, trailing junk.
        for bad in [
            #"{"jobID":"j","workerID":"w","ownerInstance":"i","token":3,"attempt":1}"#,
            #"{"jobID":null,"workerID":"w","ownerInstance":"i","token":3,"attempt":1,"visibleUntil":1}"#,
            #"{"jobID":7,"workerID":"w","ownerInstance":"i","token":3,"attempt":1,"visibleUntil":1}"#,
            #"{"jobID":"j","workerID":"w","ownerInstance":"i","token":3.5,"attempt":1,"visibleUntil":1}"#,
            #"{"jobID":"j","workerID":"w","ownerInstance":"i","token":-3,"attempt":1,"visibleUntil":1}"#,
            #"{"jobID":"j","workerID":"w","ownerInstance":"i","token":3,"attempt":1,"visibleUntil":1"#,
            #"["j"]"#,
        ] {
            #expect(throws: (any Error).self, "\(bad)") { try read(bad) }
        }
        // Duplicate keys in a string map are left to `Codable`.
        let duplicate =
            #"{"jobID":"j","idempotencyKey":"k","conversationID":"c","kind":"reply","priority":0,"#
            + #""maxAttempts":3,"payload":{"a":"1","a":"2"}}"#
        #expect(throws: (any Error).self) {
            try Array(duplicate.utf8).withUnsafeBufferPointer {
                try PayloadJSONDecoding.decodeDirectly(JobEnqueued.self, from: $0)
            }
        }
    }

    @Test func nilOptionalsAreOmittedAndNonFiniteNumbersRefused() throws {
        let text = String(
            decoding: try PayloadJSON.encode(
                DeliveryFailed(
                    deliveryID: "d", token: 1, attempt: 1, permanent: true, retryAfter: nil, errorCode: nil,
                    message: "m")), as: UTF8.self)
        #expect(!text.contains("retryAfter"))
        #expect(text.hasPrefix("{\"deliveryID\":\"d\""))
        #expect(throws: EncodingError.self) { try PayloadJSON.encode([Double.nan]) }
    }
}

@Suite("Direct payload decoder")
struct DirectPayloadDecoderTests {
    static func record(_ json: String) -> Record {
        Record(
            seq: 1, timestamp: LogTimestamp(microseconds: 0), type: WorkerStopped.eventType, schemaVersion: 1,
            writer: WriterIdentity(role: "t", workerID: "t"), correlationID: nil, causationID: nil,
            payloadEncoding: .json, payload: Array(json.utf8))
    }

    @Test func itReadsOtherWritersJSONAndEscapes() throws {
        let event = WorkerStopped(role: "a\u{e9}\n\"b\"/c", workerID: "w", instance: "i", reason: "x", detail: "d")
        let foreign = JSONEncoder()
        foreign.outputFormatting = [.prettyPrinted, .sortedKeys]
        #expect(try PayloadJSONDecoding.decode(WorkerStopped.self, from: [UInt8](foreign.encode(event))) == event)
        #expect(try PayloadJSONDecoding.decode(WorkerStopped.self, from: PayloadJSON.encode(event)) == event)
        let escaped = #"{"role":"a\u00e9\n\"b\"\/c","workerID":"w","instance":"i","reason":"x","detail":"d"}"#
        #expect(try PayloadJSONDecoding.decode(WorkerStopped.self, from: Array(escaped.utf8)) == event)
    }

    @Test func whatItDoesNotHandleFallsBackAndMissingFieldsAreErrors() throws {
        // A surrogate pair is left to Foundation's decoder; Record.decode falls back to it.
        let pair = #"{"role":"\ud834\udd1e","workerID":"w","instance":"i","reason":"x"}"#
        #expect(throws: (any Error).self) { try PayloadJSONDecoding.decode(WorkerStopped.self, from: Array(pair.utf8)) }
        #expect(try Self.record(pair).decode(WorkerStopped.self).role == "\u{1D11E}")
        // A missing required field is an error either way, never a default.
        let missing = #"{"role":"r","instance":"i","reason":"x"}"#
        #expect(throws: EventLogError.self) { try Self.record(missing).decode(WorkerStopped.self) }
        // null for an optional is nil; for a required field it is an error.
        #expect(
            try Self.record(#"{"role":"r","workerID":"w","instance":"i","reason":"x","detail":null}"#)
                .decode(WorkerStopped.self).detail == nil)
        #expect(throws: EventLogError.self) {
            try Self.record(#"{"role":null,"workerID":"w","instance":"i","reason":"x"}"#).decode(WorkerStopped.self)
        }
    }
}
