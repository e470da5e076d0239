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
