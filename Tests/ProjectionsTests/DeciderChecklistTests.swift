import EventLog
import SwitchboardEvents
import Foundation
import Projections
import Testing

/// The still-relevant items of the original queue-reliability checklist (original-system.md §8.1), against
/// the Switchboard deciders. The legacy no-lock rules have no counterpart: every claim has a deadline.
@Suite struct DeciderChecklistTests {
    // MARK: Stale: lock in the future → not stale; in the past → stale; equal to now → not stale (strict >)

    static let staleOffsets: [(Int64, Bool)] = [(-1_000_000, false), (-1, false), (0, false), (1, true)]

    @Test(arguments: staleOffsets)
    func staleIsStrictlyAfterTheDeadline_jobClaims(offsetMicroseconds: Int64, stale: Bool) async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        _ = try await engine.enqueueJob(deciderJob("job-1"))
        let claim = try await engine.mustClaimJob(as: Owner(workerID: "core-1", instance: "a"))
        fixture.advance(to: claim.visibleUntil.advanced(by: .microseconds(offsetMicroseconds)))

        _ = try await engine.claimJob(as: Owner(workerID: "core-2", instance: "b"))

        let failed = try engine.recorded(JobFailed.self)
        #expect(failed.map(\.reason) == (stale ? ["claim_expired"] : []))
        #expect(try engine.job("job-1")?.status == (stale ? .pending : .running))
        await fixture.close()
    }

    @Test(arguments: staleOffsets)
    func staleIsStrictlyAfterTheDeadline_leases(offsetMicroseconds: Int64, stale: Bool) async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        let holder = Owner(workerID: "wa-1", instance: "a")
        let grant = try #require(try await engine.acquireLease("whatsapp/default", as: holder).grant)
        fixture.advance(to: grant.expiresAt.advanced(by: .microseconds(offsetMicroseconds)))

        let other = try await engine.acquireLease("whatsapp/default", as: Owner(workerID: "wa-2", instance: "b"))

        #expect((other.grant != nil) == stale)
        #expect(try engine.recorded(LeaseExpired.eventType).count == (stale ? 1 : 0))
        await fixture.close()
    }

    @Test(arguments: staleOffsets)
    func staleIsStrictlyAfterTheDeadline_deliveryClaims(offsetMicroseconds: Int64, stale: Bool) async throws {
        let fixture = try DeciderFixture(settings: try .longLease())
        let engine = fixture.engine
        let lease = try await engine.mustAcquire("web/main")
        _ = try await engine.enqueueDelivery(deciderDelivery("k1", to: "alice"))
        let claim = try await engine.mustClaimDelivery(channel: "web", accountID: "main", leaseToken: lease)
        fixture.advance(to: claim.visibleUntil.advanced(by: .microseconds(offsetMicroseconds)))

        _ = try await engine.claimDelivery(channel: "web", accountID: "main", leaseToken: lease)

        #expect(try engine.delivery("d-k1")?.status == (stale ? .pending : .claimed))
        await fixture.close()
    }

    // MARK: Stale action with max 3: attempt 1 → requeue, 2 → requeue, 3 → fail (dead)

    enum Ending: String, CaseIterable, Sendable {
        /// The worker reports a retryable failure.
        case failed
        /// The worker vanishes and its claim expires.
        case claimExpired
    }

    @Test(arguments: Ending.allCases)
    func staleActionWithMaxThree_attemptOneRetriesTwoRetriesThreeIsDead(_ ending: Ending) async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        _ = try await engine.enqueueJob(deciderJob("job-1"))

        var statuses: [JobStatus] = []
        for attempt in 1...3 {
            let claim = try await engine.mustClaimJob()
            #expect(claim.attempt == attempt)
            switch ending {
            case .failed:
                _ = try await engine.failJob(
                    "job-1", token: claim.token, reason: "network", message: "reset", retryable: true)
            case .claimExpired:
                fixture.advance(to: claim.visibleUntil.advanced(by: .microseconds(1)))
                _ = try await engine.claimJob()
            }
            let state = try #require(try engine.job("job-1"))
            statuses.append(state.status)
            if state.status == .pending { fixture.advance(to: state.notBefore) }
        }

        #expect(statuses == [.pending, .pending, .dead])
        #expect(try engine.recorded(JobFailed.self).map(\.attempt) == [1, 2, 3])
        #expect(try engine.recorded(JobRetried.self).map(\.attempt) == [2, 3])
        let dead = try #require(try engine.recorded(JobDead.self).first)
        #expect(dead.attempts == 3)
        #expect(dead.lastReason == (ending == .failed ? "network" : "claim_expired"))
        await fixture.close()
    }

    // MARK: canRetry: attempts left → retry; none left → no retry

    @Test(arguments: [1, 2, 3, 5])
    func canRetry_aJobGetsExactlyItsMaxAttempts(maxAttempts: Int) async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        var job = deciderJob("job-1")
        job.maxAttempts = maxAttempts
        _ = try await engine.enqueueJob(job)

        var claims = 0
        while let claim = try await engine.claimJob() {
            claims += 1
            let outcome = try await engine.failJob(
                "job-1", token: claim.token, reason: "timeout", message: "slow", retryable: true)
            if case .retried(let notBefore) = outcome { fixture.advance(to: notBefore) }
            if claims > maxAttempts { break }
        }

        #expect(claims == maxAttempts)
        #expect(try engine.job("job-1")?.status == .dead)
        await fixture.close()
    }

    // MARK: Conversation guard

    enum GuardCase: String, CaseIterable, Sendable {
        case noOtherJob
        case onlyTheJobItself
        case anotherRunningWithValidClaim
        case anotherRunningWithExpiredClaim
        case othersNotRunning
    }

    @Test(arguments: GuardCase.allCases)
    func conversationGuard(_ guardCase: GuardCase) async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        let other = Owner(workerID: "core-2", instance: "other")
        var expected: String? = "job-b"
        switch guardCase {
        case .noOtherJob:
            _ = try await engine.enqueueJob(deciderJob("job-b", conversation: "C"))
        case .onlyTheJobItself:
            // job-b's own earlier claim (expired) is the only running job of the conversation.
            _ = try await engine.enqueueJob(deciderJob("job-b", conversation: "C"))
            let first = try await engine.mustClaimJob(as: other)
            fixture.advance(to: first.visibleUntil.advanced(by: .microseconds(1)))
            _ = try await engine.claimJob()
            fixture.advance(to: try #require(try engine.job("job-b")).notBefore)
        case .anotherRunningWithValidClaim:
            _ = try await engine.enqueueJob(deciderJob("job-a", conversation: "C"))
            let a = try await engine.mustClaimJob(as: other)
            _ = try await engine.enqueueJob(deciderJob("job-b", conversation: "C"))
            fixture.advance(to: a.visibleUntil)
            expected = nil
        case .anotherRunningWithExpiredClaim:
            _ = try await engine.enqueueJob(deciderJob("job-a", conversation: "C"))
            let a = try await engine.mustClaimJob(as: other)
            _ = try await engine.enqueueJob(deciderJob("job-b", conversation: "C"))
            fixture.advance(to: a.visibleUntil.advanced(by: .microseconds(1)))
        case .othersNotRunning:
            _ = try await engine.enqueueJob(deciderJob("job-done", conversation: "C"))
            let done = try await engine.mustClaimJob(as: other)
            _ = try await engine.completeJob("job-done", token: done.token, as: other)
            _ = try await engine.enqueueJob(deciderJob("job-dead", conversation: "C"))
            let dead = try await engine.mustClaimJob(as: other)
            _ = try await engine.failJob(
                "job-dead", token: dead.token, reason: "permanent", message: "no", retryable: false, as: other)
            var later = deciderJob("job-later", conversation: "C")
            later.runAt = fixture.now.advanced(by: .seconds(3600))
            _ = try await engine.enqueueJob(later)
            _ = try await engine.enqueueJob(deciderJob("job-b", conversation: "C"))
        }

        let claim = try await engine.claimJob()

        #expect(claim?.job.jobID == expected)
        await fixture.close()
    }

    // MARK: Heartbeat valid only for the current claim

    @Test func heartbeatValidOnlyWithTheCurrentToken() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        let first = Owner(workerID: "core-1", instance: "a")
        let second = Owner(workerID: "core-1", instance: "b")  // same WORKER_ID, another process
        _ = try await engine.enqueueJob(deciderJob("job-1"))
        let claim = try await engine.mustClaimJob(as: first)

        #expect(try await engine.heartbeatJob("job-1", token: claim.token, as: first) == .accepted)
        #expect(
            try await engine.heartbeatJob("job-1", token: claim.token + 1, as: first)
                == .rejected(reason: .staleToken, currentToken: claim.token))

        // The claim lapses and another process takes the job over.
        let visible = try #require(try engine.job("job-1")?.visibleUntil)
        fixture.advance(to: visible.advanced(by: .microseconds(1)))
        _ = try await engine.claimJob(as: second)
        fixture.advance(to: try #require(try engine.job("job-1")).notBefore)
        let takeover = try await engine.mustClaimJob(as: second)

        #expect(
            try await engine.heartbeatJob("job-1", token: claim.token, as: first)
                == .rejected(reason: .staleToken, currentToken: takeover.token))
        #expect(try await engine.heartbeatJob("job-1", token: takeover.token, as: second) == .accepted)
        #expect(try await engine.completeJob("job-1", token: takeover.token, as: second) == .accepted)
        // Finished: even the last token no longer heartbeats; an unknown job never does.
        #expect(
            try await engine.heartbeatJob("job-1", token: takeover.token, as: second)
                == .rejected(reason: .wrongState, currentToken: takeover.token))
        #expect(try await engine.heartbeatJob("job-nope", token: 1) == .rejected(reason: .unknown, currentToken: nil))
        #expect(try engine.recorded(JobHeartbeat.self).map(\.token) == [claim.token, takeover.token])
        await fixture.close()
    }

    // MARK: Dedupe contract

    @Test func dedupe_firstIsAccepted() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine

        let result = try await engine.ingest(deciderMessage("wamid.1", channel: "whatsapp"))

        let accepted = try #require(result.accepted)
        #expect(accepted.messageSeq == (try engine.onlySeq(of: MessageReceived.eventType)))
        #expect(accepted.jobID != nil)
        await fixture.close()
    }

    @Test(arguments: [0, 1, 24 * 3600, 48 * 3600 + 1, 365 * 24 * 3600] as [Int64])
    func dedupe_sameChannelAndIDIsADuplicateForever(afterSeconds: Int64) async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        let first = try #require(try await engine.ingest(deciderMessage("wamid.1", channel: "whatsapp")).accepted)
        fixture.clock.advance(.seconds(afterSeconds))

        let again = try await engine.ingest(deciderMessage("wamid.1", channel: "whatsapp"))

        #expect(again == .duplicate(firstSeq: first.messageSeq))
        #expect(try engine.recorded(MessageReceived.eventType).count == 1)
        #expect(try engine.recorded(JobEnqueued.eventType).count == 1)
        await fixture.close()
    }

    @Test func dedupe_differentIDsAreIndependent() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine

        let a = try await engine.ingest(deciderMessage("wamid.1", channel: "whatsapp"))
        let b = try await engine.ingest(deciderMessage("wamid.2", channel: "whatsapp"))

        #expect(a.accepted != nil && b.accepted != nil)
        #expect(try engine.recorded(JobEnqueued.eventType).count == 2)
        await fixture.close()
    }

    @Test func dedupe_sameIDOnADifferentChannelIsIndependent() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine

        let a = try await engine.ingest(deciderMessage("42", channel: "whatsapp"))
        let b = try await engine.ingest(deciderMessage("42", channel: "telegram"))

        #expect(a.accepted != nil && b.accepted != nil)
        #expect(try engine.recorded(MessageReceived.eventType).count == 2)
        await fixture.close()
    }

    @Test func dedupe_storeGrowsOnlyOnUniqueKeys() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        let stream: [(String, String)] = [
            ("whatsapp", "a"), ("whatsapp", "a"), ("whatsapp", "b"), ("telegram", "a"), ("whatsapp", "b"),
            ("telegram", "a"), ("telegram", "c"), ("whatsapp", "a"),
        ]

        var duplicates = 0
        for (channel, id) in stream {
            if case .duplicate = try await engine.ingest(deciderMessage(id, channel: channel)) { duplicates += 1 }
        }

        #expect(duplicates == 4)
        #expect(try engine.recorded(MessageReceived.eventType).count == 4)
        #expect(try engine.recorded(JobEnqueued.eventType).count == 4)
        await fixture.close()
    }

    // MARK: Constants

    @Test func constants_leaseTTL45sHeartbeat15sJobLock60sMaxAttempts3() async throws {
        let settings = EngineSettings.defaults()
        #expect(settings.lease.ttl == .seconds(45))
        #expect(settings.lease.heartbeat == .seconds(15))
        #expect(settings.jobs.visibility == .seconds(60))
        #expect(settings.jobs.retry.maxAttempts == 3)
        #expect(settings.deliveries.visibility == .seconds(120))
        #expect(settings.deliveries.maxAttempts == 5)
        #expect(settings.contactPolicy == .open)

        // And the deciders apply them.
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        let grant = try #require(try await engine.acquireLease("whatsapp/default").grant)
        #expect(grant.expiresAt == fixture.now.advanced(by: .seconds(45)))
        _ = try await engine.enqueueJob(deciderJob("job-1"))
        #expect(try engine.job("job-1")?.maxAttempts == 3)
        let claim = try await engine.mustClaimJob()
        #expect(claim.visibleUntil == fixture.now.advanced(by: .seconds(60)))
        _ = try await engine.enqueueDelivery(deciderDelivery("k1", to: "alice"))
        let lease = try await engine.mustAcquire("web/main")
        let delivery = try await engine.mustClaimDelivery(channel: "web", accountID: "main", leaseToken: lease)
        #expect(delivery.visibleUntil == fixture.now.advanced(by: .seconds(120)))
        #expect(delivery.delivery.maxAttempts == 5)
        await fixture.close()
    }
}
