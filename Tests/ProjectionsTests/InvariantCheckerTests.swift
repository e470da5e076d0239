@testable import EventLog
import SwitchboardEvents
import Foundation
import Projections
import Testing

/// The checker and the digest must catch what the deciders prevent: these logs are written raw, bypassing
/// the deciders, as a buggy or malicious writer could.
@Suite("Invariant checker and digest catch violations")
struct InvariantCheckerTests {
    static func write(_ events: [any EventPayload], clock: TestClock, step: Duration = .seconds(1)) async throws
        -> (TemporaryDirectory, Switchboard)
    {
        let dir = TemporaryDirectory()
        let engine = try openEngine(dir.sub("log"), clock: clock)
        for event in events {
            try await engine.log.append([try PendingEvent(erased: event)])
            clock.advance(step)
        }
        return (dir, engine)
    }

    @Test func twoLiveHoldersOfOneLeaseAreFound() async throws {
        let clock = TestClock()
        let t0 = clock.now
        let (_, engine) = try await Self.write(
            [
                LeaseAcquired(
                    resource: "whatsapp/default", ownerWorkerID: "wa-1", ownerInstance: "A", token: 1,
                    expiresAt: t0.advanced(by: .seconds(45)), ttlMilliseconds: 45_000, previousOwner: nil),
                LeaseAcquired(
                    resource: "whatsapp/default", ownerWorkerID: "wa-1", ownerInstance: "B", token: 2,
                    expiresAt: t0.advanced(by: .seconds(46)), ttlMilliseconds: 45_000, previousOwner: nil),
            ], clock: clock)
        let checker = try InvariantChecker.check(engine.log)
        #expect(checker.violations.map(\.kind.rawValue) == ["two_lease_holders"])
        #expect(checker.violations.first?.seqs == [1, 2])
        await engine.close()
    }

    @Test func aSendUnderAnExpiredLeaseAndAStaleCompletionAreFound() async throws {
        let clock = TestClock()
        let t0 = clock.now
        let (_, engine) = try await Self.write(
            [
                LeaseAcquired(
                    resource: "whatsapp/default", ownerWorkerID: "wa-1", ownerInstance: "A", token: 1,
                    expiresAt: t0.advanced(by: .seconds(2)), ttlMilliseconds: 2000, previousOwner: nil),
                DeliveryEnqueued(
                    deliveryID: "d1", idempotencyKey: "m1:0", channel: "whatsapp", accountID: "default",
                    recipient: "+1", conversationID: "c", sourceMessageID: nil, part: 0, kind: "assistant_message",
                    text: "hi", maxAttempts: 5),
                DeliveryClaimed(
                    deliveryID: "d1", workerID: "wa-1", ownerInstance: "A", token: 3,
                    leaseResource: "whatsapp/default", leaseToken: 1, attempt: 1,
                    visibleUntil: t0.advanced(by: .seconds(60))),
                // Written at t0+3 s: one second after the lease expired.
                DeliveryAttempted(deliveryID: "d1", token: 3, leaseToken: 1, attempt: 1),
                JobEnqueued(
                    jobID: "j1", idempotencyKey: "k1", conversationID: "c", kind: "reply", triggeringMessageSeq: nil,
                    parentJobID: nil, rootJobID: nil, priority: 0, runAt: nil, maxAttempts: 3, payload: [:]),
                JobClaimed(
                    jobID: "j1", workerID: "core-1", ownerInstance: "X", token: 6, attempt: 1,
                    visibleUntil: t0.advanced(by: .seconds(60))),
                JobCompleted(jobID: "j1", token: 5, result: nil, modelUsed: nil),
            ], clock: clock)
        let checker = try InvariantChecker.check(engine.log)
        #expect(checker.violations.map(\.kind.rawValue) == ["send_after_lease_expiry", "stale_job_token"])
        #expect(checker.violations.first?.seqs == [1, 3, 4])
        await engine.close()
    }

    @Test func aTamperedProjectionNoLongerMatchesItsRebuild() async throws {
        let dir = TemporaryDirectory()
        let engine = try openEngine(dir.sub("log"))
        _ = try await engine.enqueueJob(NewJob(idempotencyKey: "k", conversationID: "c"))
        _ = try await engine.claimJob()
        let rebuilt = try await Rebuild.digest(
            of: engine.log, scratchDirectory: dir.sub("scratch"), logger: quietLogger)
        #expect(try engine.digest() == rebuilt)
        // Change a projection table behind the projector's back.
        let leases = engine.log.table(ProjectionTable.leases)
        _ = try await engine.log.transact { context in
            try context.projectionWriter.put(leases, Array("whatsapp/default".utf8), Array("{}".utf8))
        }
        #expect(try engine.digest() != rebuilt)
        let again = try await Rebuild.digest(of: engine.log, scratchDirectory: dir.sub("scratch2"), logger: quietLogger)
        #expect(again == rebuilt, "the log itself is unchanged")
        await engine.close()
    }
}

extension PendingEvent {
    /// Encodes an existential event (tests write raw events of any type).
    init(erased event: any EventPayload) throws {
        try self.init(event)
    }
}
