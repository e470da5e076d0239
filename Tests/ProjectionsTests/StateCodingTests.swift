import EventLog
import SwitchboardEvents
import Foundation
import Testing

@testable import Projections

@Suite("Binary state coding")
struct StateCodingTests {
    @Test func everyStateTypeRoundTripsIncludingNilsAndNesting() throws {
        let t = LogTimestamp(microseconds: 1_795_927_655_123_456)
        let job = JobState(
            jobID: "j1", idempotencyKey: "k", conversationID: "c", kind: "reply", priority: -3, parentJobID: nil,
            rootJobID: "j1", maxAttempts: 3, payload: ["b": "2", "a": "1"], enqueueSeq: 42, status: .running,
            attempt: 2, notBefore: t, token: 99, claimedBy: Owner(workerID: "w", instance: "i"), visibleUntil: nil,
            lastReason: "timeout", lastMessage: nil, result: "")
        #expect(try BinaryState.decode(JobState.self, BinaryState.encode(job)) == job)
        let delivery = DeliveryState(
            deliveryID: "d", idempotencyKey: "m:0", channel: "telegram", accountID: "default", recipient: "-100",
            conversationID: "c", kind: "assistant_message", text: "héllo ✓", part: 0, maxAttempts: 5, enqueueSeq: 7,
            status: .uncertain, attempt: 1, notBefore: t, token: 8, leaseToken: 3, claimedBy: nil, visibleUntil: t,
            lastError: nil, providerMessageID: "wamid.1", sourceMessageID: nil, replyToExternalID: "x")
        #expect(try BinaryState.decode(DeliveryState.self, BinaryState.encode(delivery)) == delivery)
        let lease = LeaseState(
            resource: "whatsapp/default", owner: Owner(workerID: "wa-1", instance: "A"), token: 5, acquiredAt: t,
            expiresAt: t.advanced(by: .seconds(45)), held: true)
        #expect(try BinaryState.decode(LeaseState.self, BinaryState.encode(lease)) == lease)
        let session = SessionEntryState(value: Data([0, 1, 255]), encrypted: true, seq: 1)
        #expect(try BinaryState.decode(SessionEntryState.self, BinaryState.encode(session)) == session)
        let times: [Int64] = [1, -2, .max]
        #expect(try BinaryState.decode([Int64].self, BinaryState.encode(times)) == times)
    }

    @Test func encodingIsDeterministicSoDigestsAreStable() throws {
        let a = JobState(
            jobID: "j", idempotencyKey: "k", conversationID: "c", kind: "reply", priority: 0, parentJobID: nil,
            rootJobID: "j", maxAttempts: 3,
            payload: Dictionary(uniqueKeysWithValues: (0..<20).map { ("k\($0)", "\($0)") }),
            enqueueSeq: 1, status: .pending, attempt: 0, notBefore: LogTimestamp(microseconds: 0), token: 0,
            claimedBy: nil, visibleUntil: nil, lastReason: nil, lastMessage: nil, result: nil)
        var b = a
        b.payload = Dictionary(uniqueKeysWithValues: (0..<20).reversed().map { ("k\($0)", "\($0)") })
        #expect(BinaryState.encode(a) == BinaryState.encode(b))
    }

    @Test func truncatedOrPaddedBytesAreRejected() throws {
        let bytes = try BinaryState.encode(Owner(workerID: "w", instance: "i"))
        #expect(throws: DecodingError.self) { try BinaryState.decode(Owner.self, Array(bytes.dropLast())) }
        #expect(throws: DecodingError.self) { try BinaryState.decode(Owner.self, bytes + [0]) }
    }
}
