import Foundation
import Testing

@testable import EventLog

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
            SessionEntrySet(namespace: "whatsapp/default", key: "creds", value: Data([0, 255, 10, 34]), encrypted: true,
                leaseToken: .max),
            WorkerStarted(role: "core", workerID: "w", instance: "i", pid: 42, version: "1",
                configuration: ["z": "1", "a": Self.tricky, "m": ""]),
            JobEnqueued(jobID: "j", idempotencyKey: "k", conversationID: "c", kind: "reply", triggeringMessageSeq: nil,
                parentJobID: "p", rootJobID: nil, priority: -7, runAt: nil, maxAttempts: 3, payload: [:]),
            DeliveryFailed(deliveryID: "d", token: 9, attempt: 2, permanent: false, retryAfter: nil, errorCode: nil,
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

    @Test func nilOptionalsAreOmittedAndNonFiniteNumbersRefused() throws {
        let text = String(decoding: try PayloadJSON.encode(
            DeliveryFailed(deliveryID: "d", token: 1, attempt: 1, permanent: true, retryAfter: nil, errorCode: nil,
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
        #expect(try Self.record(#"{"role":"r","workerID":"w","instance":"i","reason":"x","detail":null}"#)
            .decode(WorkerStopped.self).detail == nil)
        #expect(throws: EventLogError.self) {
            try Self.record(#"{"role":null,"workerID":"w","instance":"i","reason":"x"}"#).decode(WorkerStopped.self)
        }
    }
}
