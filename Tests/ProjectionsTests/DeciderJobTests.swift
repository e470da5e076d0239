import EventLog
import SwitchboardEvents
import Foundation
import Projections
import Testing

/// A new job with a readable id; its key is derived from the id unless given.
func deciderJob(
    _ id: String, conversation: String = "conv-1", key: String? = nil, priority: Int = 0, parent: String? = nil
) -> NewJob {
    var job = NewJob(jobID: id, idempotencyKey: key ?? "key-\(id)", conversationID: conversation)
    job.priority = priority
    job.parentJobID = parent
    return job
}

@Suite struct DeciderJobTests {
    @Test func enqueueWithTheSameIdempotencyKeyReturnsTheFirstJob() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine

        let first = try await engine.enqueueJob(deciderJob("job-1", key: "inbound:telegram:bot:42"))
        let second = try await engine.enqueueJob(deciderJob("job-2", key: "inbound:telegram:bot:42"))

        #expect(first.jobID == "job-1" && !first.duplicate)
        #expect(second.jobID == "job-1" && second.duplicate)
        #expect(try engine.recorded(JobEnqueued.eventType).count == 1)
        #expect(try engine.job("job-2") == nil)
        #expect(try engine.jobs(.pending).map(\.jobID) == ["job-1"])
        await fixture.close()
    }

    @Test func claimTokenIsTheSeqOfJobClaimedWithAttemptOneAndSixtySecondsVisibility() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        let worker = Owner(workerID: "core-1", instance: "i-1")
        _ = try await engine.enqueueJob(deciderJob("job-1"))
        fixture.clock.advance(.seconds(3))
        let claimedAt = fixture.now

        let claim = try await engine.mustClaimJob(as: worker)

        #expect(claim.token == (try engine.onlySeq(of: JobClaimed.eventType)))
        #expect(claim.attempt == 1)
        #expect(claim.visibleUntil == claimedAt.advanced(by: .seconds(60)))
        #expect(claim.job.jobID == "job-1")
        let state = try #require(try engine.job("job-1"))
        #expect(state.status == .running)
        #expect(state.token == claim.token && state.attempt == 1 && state.visibleUntil == claim.visibleUntil)
        #expect(state.claimedBy == worker)
        #expect(try engine.jobs(.running).map(\.jobID) == ["job-1"])
        #expect(try engine.jobs(.pending).isEmpty)
        // Nothing else to claim.
        #expect(try await engine.claimJob() == nil)
        await fixture.close()
    }

    enum TokenCommand: String, CaseIterable, Sendable {
        case heartbeat, complete, fail
    }

    @Test(arguments: TokenCommand.allCases)
    func commandWithAWrongTokenIsRejectedRecordedAndChangesNothing(_ command: TokenCommand) async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        _ = try await engine.enqueueJob(deciderJob("job-1"))
        let claim = try await engine.mustClaimJob()
        let before = try #require(try engine.job("job-1"))
        let recordsBefore = try engine.log.lastSeq()
        let wrong = claim.token + 1000
        fixture.clock.advance(.seconds(5))

        let expected = JobCommandResult.rejected(reason: .staleToken, currentToken: claim.token)
        switch command {
        case .heartbeat:
            #expect(try await engine.heartbeatJob("job-1", token: wrong) == expected)
        case .complete:
            #expect(try await engine.completeJob("job-1", token: wrong, result: "late") == expected)
        case .fail:
            let outcome = try await engine.failJob(
                "job-1", token: wrong, reason: "timeout", message: "late", retryable: true)
            #expect(outcome == .rejected(reason: .staleToken, currentToken: claim.token))
        }

        let rejected = try engine.recorded(CommandRejected.self)
        #expect(rejected.count == 1)
        #expect(rejected.first?.command == "job.\(command.rawValue)")
        #expect(rejected.first?.subject == "job-1")
        #expect(rejected.first?.reason == "stale_token")
        #expect(rejected.first?.presentedToken == wrong)
        #expect(rejected.first?.currentToken == claim.token)
        // Only the rejection was appended, and the job is exactly as it was.
        #expect(try engine.log.lastSeq() == recordsBefore + 1)
        #expect(try engine.job("job-1") == before)
        await fixture.close()
    }

    @Test func completeWithTheCurrentTokenCompletesTheJob() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        _ = try await engine.enqueueJob(deciderJob("job-1"))
        let claim = try await engine.mustClaimJob()

        let result = try await engine.completeJob("job-1", token: claim.token, result: "done", modelUsed: "m-1")

        #expect(result == .accepted)
        let state = try #require(try engine.job("job-1"))
        #expect(state.status == .completed)
        #expect(state.result == "done")
        #expect(try engine.jobs(.completed).map(\.jobID) == ["job-1"])
        #expect(try engine.jobs(.running).isEmpty)
        let completed = try #require(try engine.recorded(JobCompleted.self).first)
        #expect(completed.token == claim.token && completed.modelUsed == "m-1")
        // A completed job is not claimable and cannot be completed twice.
        #expect(try await engine.claimJob() == nil)
        #expect(try await engine.completeJob("job-1", token: claim.token) != .accepted)
        await fixture.close()
    }

    @Test func heartbeatWithTheCurrentTokenExtendsTheClaim() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        _ = try await engine.enqueueJob(deciderJob("job-1"))
        let claim = try await engine.mustClaimJob()
        fixture.clock.advance(.seconds(15))

        #expect(try await engine.heartbeatJob("job-1", token: claim.token) == .accepted)

        let extended = fixture.now.advanced(by: .seconds(60))
        #expect(try engine.job("job-1")?.visibleUntil == extended)
        #expect(try engine.recorded(JobHeartbeat.self).first?.visibleUntil == extended)
        // The first claim's deadline passing does not expire the extended claim.
        fixture.advance(to: claim.visibleUntil.advanced(by: .seconds(1)))
        #expect(try await engine.claimJob() == nil)
        #expect(try engine.recorded(JobFailed.eventType).isEmpty)
        #expect(try await engine.completeJob("job-1", token: claim.token) == .accepted)
        await fixture.close()
    }

    /// `job.heartbeat` is documented as "accepted only while token is the job's current, unexpired claim"
    /// (Sources/EventLog/Events/Jobs.swift, `JobHeartbeat`); leases refuse the same revival (`expired`).
    @Test func heartbeatAfterTheClaimExpiredIsRejected() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        _ = try await engine.enqueueJob(deciderJob("job-1"))
        let claim = try await engine.mustClaimJob()
        fixture.advance(to: claim.visibleUntil.advanced(by: .microseconds(1)))

        let result = try await engine.heartbeatJob("job-1", token: claim.token)

        #expect(result != .accepted, "an expired claim was revived by a heartbeat")
        #expect(try engine.recorded(JobHeartbeat.eventType).isEmpty)
        await fixture.close()
    }

    @Test(arguments: [(1, 1), (2, 2)])
    func retryableFailureIsRetriedAfterExponentialBackoff(failures: Int, delaySeconds: Int64) async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        _ = try await engine.enqueueJob(deciderJob("job-1"))
        var notBefore: LogTimestamp?
        for attempt in 1...failures {
            if let notBefore { fixture.advance(to: notBefore) }
            let claim = try await engine.mustClaimJob()
            #expect(claim.attempt == attempt)
            let outcome = try await engine.failJob(
                "job-1", token: claim.token, reason: "server_error", message: "HTTP 503", retryable: true)
            guard case .retried(let next) = outcome else {
                Issue.record("attempt \(attempt) was not retried: \(outcome)")
                await fixture.close()
                return
            }
            notBefore = next
        }
        let retryAt = try #require(notBefore)

        let delay = retryAt.duration(since: fixture.now)
        #expect(delay >= .seconds(delaySeconds))
        #expect(delay <= Duration.seconds(delaySeconds).withFullJitter)
        let state = try #require(try engine.job("job-1"))
        #expect(state.status == .pending && state.notBefore == retryAt && state.lastReason == "server_error")
        let retried = try engine.recorded(JobRetried.self)
        #expect(retried.count == failures)
        #expect(retried.last?.attempt == failures + 1 && retried.last?.notBefore == retryAt)
        #expect(try engine.recorded(JobFailed.self).last?.attempt == failures)
        // Not claimable a microsecond before the backoff ends; claimable at its end.
        fixture.advance(to: retryAt.advanced(by: .microseconds(-1)))
        #expect(try await engine.claimJob() == nil)
        fixture.clock.advance(.microseconds(1))
        #expect(try await engine.claimJob()?.attempt == failures + 1)
        await fixture.close()
    }

    @Test(
        arguments: [
            (1, 1), (2, 2), (3, 4), (4, 8), (5, 16), (6, 30), (7, 30), (10, 30), (31, 30), (32, 30), (64, 30),
            (10_000, 30), (Int.max, 30),
        ] as [(Int, Int64)])
    func retryPolicyDelayDoublesFromOneSecondUpToThirtyPlusJitter(attempt: Int, baseSeconds: Int64) {
        let policy = RetryPolicy()
        for key in ["job-a", "job-b", "job-c", "0b6f3c1e"] {
            let delay = policy.delay(afterAttempt: attempt, key: key)
            #expect(delay >= .seconds(baseSeconds), "attempt \(attempt) key \(key): \(delay)")
            #expect(delay <= Duration.seconds(baseSeconds).withFullJitter, "attempt \(attempt) key \(key): \(delay)")
            #expect(delay == policy.delay(afterAttempt: attempt, key: key), "the jitter is reproducible")
        }
    }

    @Test func retryPolicyDefaults() {
        let policy = RetryPolicy()
        #expect(policy.maxAttempts == 3)
        #expect(policy.baseDelay == .seconds(1))
        #expect(policy.maxDelay == .seconds(30))
        #expect(policy.jitter == 0.2)
        #expect(JobSettings().visibility == .seconds(60))
    }

    @Test func jobFailingThreeTimesIsDeadListedAndRequeueable() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        _ = try await engine.enqueueJob(deciderJob("job-1"))
        var outcomes: [JobFailureOutcome] = []
        for _ in 1...3 {
            fixture.clock.advance(.seconds(10))  // past any backoff of the first two attempts (≤ 2.4 s)
            let claim = try await engine.mustClaimJob()
            outcomes.append(
                try await engine.failJob(
                    "job-1", token: claim.token, reason: "timeout", message: "model timed out", retryable: true))
        }

        #expect(outcomes.count == 3)
        #expect(outcomes.last == .dead)
        #expect(outcomes.dropLast().allSatisfy { if case .retried = $0 { true } else { false } })
        #expect(try engine.jobs(.dead).map(\.jobID) == ["job-1"])
        let dead = try #require(try engine.recorded(JobDead.self).first)
        #expect(dead.attempts == 3 && dead.lastReason == "timeout")
        fixture.clock.advance(.seconds(60))
        #expect(try await engine.claimJob() == nil)

        #expect(try await engine.requeueJob("job-1", byOperator: "ops", reason: "model fixed") == .accepted)

        let requeued = try #require(try engine.job("job-1"))
        #expect(requeued.status == .pending)
        #expect(try engine.jobs(.dead).isEmpty)
        #expect(try engine.jobs(.pending).map(\.jobID) == ["job-1"])
        let claim = try await engine.mustClaimJob()
        #expect(claim.job.jobID == "job-1" && claim.attempt == 1)
        // A job that is not dead cannot be requeued.
        #expect(try await engine.requeueJob("job-1", byOperator: "ops", reason: "again") != .accepted)
        await fixture.close()
    }

    @Test func nonRetryableFailureIsDeadAtOnce() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        _ = try await engine.enqueueJob(deciderJob("job-1"))
        let claim = try await engine.mustClaimJob()

        let outcome = try await engine.failJob(
            "job-1", token: claim.token, reason: "permanent", message: "bad request", retryable: false)

        #expect(outcome == .dead)
        #expect(try engine.job("job-1")?.status == .dead)
        #expect(try engine.jobs(.dead).map(\.jobID) == ["job-1"])
        #expect(try engine.recorded(JobRetried.eventType).isEmpty)
        #expect(try engine.recorded(JobDead.self).first?.attempts == 1)
        fixture.clock.advance(.seconds(3600))
        #expect(try await engine.claimJob() == nil)
        await fixture.close()
    }

    @Test func expiredClaimIsReclaimedByTheNextClaimAndTheOldTokenIsFencedOff() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        let crashed = Owner(workerID: "core-1", instance: "old")
        let rescuer = Owner(workerID: "core-2", instance: "new")
        _ = try await engine.enqueueJob(deciderJob("job-1"))
        let first = try await engine.mustClaimJob(as: crashed)

        // At exactly visibleUntil the claim still holds.
        fixture.advance(to: first.visibleUntil)
        #expect(try await engine.claimJob(as: rescuer) == nil)
        #expect(try engine.recorded(JobFailed.eventType).isEmpty)

        // One microsecond later the next claim call settles it as a failed attempt.
        fixture.clock.advance(.microseconds(1))
        let immediate = try await engine.claimJob(as: rescuer)
        let failed = try engine.recorded(JobFailed.self)
        #expect(failed.count == 1)
        #expect(failed.first?.reason == "claim_expired")
        #expect(failed.first?.attempt == 1)
        #expect(failed.first?.token == first.token)
        #expect(try engine.recorded(JobRetried.self).first?.attempt == 2)

        var second = immediate
        if second == nil {
            // Retried with backoff: claimable once its notBefore is reached.
            let state = try #require(try engine.job("job-1"))
            #expect(state.status == .pending)
            fixture.advance(to: state.notBefore)
            second = try await engine.claimJob(as: rescuer)
        }
        let reclaim = try #require(second)
        #expect(reclaim.job.jobID == "job-1")
        #expect(reclaim.attempt == 2)
        #expect(reclaim.token > first.token)
        #expect(try engine.job("job-1")?.claimedBy == rescuer)

        // The crashed worker comes back: every command under its token is refused.
        let late = try await engine.completeJob("job-1", token: first.token, result: "late", as: crashed)
        #expect(late == .rejected(reason: .staleToken, currentToken: reclaim.token))
        #expect(try await engine.heartbeatJob("job-1", token: first.token, as: crashed) != .accepted)
        #expect(try engine.recorded(CommandRejected.self).map(\.command) == ["job.complete", "job.heartbeat"])
        #expect(try engine.job("job-1")?.status == .running)
        #expect(try await engine.completeJob("job-1", token: reclaim.token, as: rescuer) == .accepted)
        await fixture.close()
    }

    @Test func claimRespectsRunAt() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        var scheduled = deciderJob("job-later")
        let runAt = fixture.now.advanced(by: .seconds(30))
        scheduled.runAt = runAt
        _ = try await engine.enqueueJob(scheduled)

        #expect(try await engine.claimJob() == nil)
        fixture.advance(to: runAt.advanced(by: .microseconds(-1)))
        #expect(try await engine.claimJob() == nil)
        fixture.clock.advance(.microseconds(1))
        #expect(try await engine.claimJob()?.job.jobID == "job-later")
        await fixture.close()
    }

    @Test func scheduledJobDoesNotHoldBackJobsThatAreDue() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        var scheduled = deciderJob("job-later", conversation: "c-1", priority: 9)
        scheduled.runAt = fixture.now.advanced(by: .seconds(30))
        _ = try await engine.enqueueJob(scheduled)
        _ = try await engine.enqueueJob(deciderJob("job-now", conversation: "c-2"))

        #expect(try await engine.claimJob()?.job.jobID == "job-now")
        #expect(try await engine.claimJob() == nil)
        await fixture.close()
    }

    @Test func claimTakesHigherPriorityFirstThenFIFO() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        // Separate conversations, so only ordering decides. Ids sort opposite to enqueue order.
        _ = try await engine.enqueueJob(deciderJob("job-e", conversation: "c-1"))
        fixture.clock.advance(.seconds(1))
        _ = try await engine.enqueueJob(deciderJob("job-d", conversation: "c-2"))
        _ = try await engine.enqueueJob(deciderJob("job-c", conversation: "c-3"))  // same log time as job-d
        _ = try await engine.enqueueJob(deciderJob("job-low", conversation: "c-4", priority: -1))
        _ = try await engine.enqueueJob(deciderJob("job-b", conversation: "c-5", priority: 5))
        fixture.clock.advance(.seconds(1))
        _ = try await engine.enqueueJob(deciderJob("job-a", conversation: "c-6", priority: 10))

        var order: [String] = []
        while let claim = try await engine.claimJob() { order.append(claim.job.jobID) }

        #expect(order == ["job-a", "job-b", "job-e", "job-d", "job-c", "job-low"])
        await fixture.close()
    }

    @Test func runningJobExcludesOtherJobsOfItsConversationOnly() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        _ = try await engine.enqueueJob(deciderJob("job-a", conversation: "conv-C"))
        let a = try await engine.mustClaimJob()
        _ = try await engine.enqueueJob(deciderJob("job-b", conversation: "conv-C"))
        _ = try await engine.enqueueJob(deciderJob("job-d", conversation: "conv-D"))

        #expect(try await engine.claimJob()?.job.jobID == "job-d")
        #expect(try await engine.claimJob() == nil, "job-b must wait for job-a of the same conversation")

        #expect(try await engine.completeJob("job-a", token: a.token) == .accepted)
        #expect(try await engine.claimJob()?.job.jobID == "job-b")
        await fixture.close()
    }

    /// Original weak point §10.7: a parent waiting for its sub-agent blocked the sub-agent's claim.
    @Test func childJobIsClaimableWhileItsParentRunsButAnUnrelatedJobIsNot() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        _ = try await engine.enqueueJob(deciderJob("job-parent", conversation: "conv-C"))
        let parent = try await engine.mustClaimJob()
        _ = try await engine.enqueueJob(deciderJob("job-unrelated", conversation: "conv-C"))
        var child = deciderJob("job-child", conversation: "conv-C", parent: "job-parent")
        child.kind = "subagent"
        _ = try await engine.enqueueJob(child)
        #expect(try engine.job("job-child")?.rootJobID == "job-parent")

        let claimed = try await engine.mustClaimJob()
        #expect(claimed.job.jobID == "job-child", "the older unrelated job must not be taken before the child")
        #expect(try await engine.claimJob() == nil, "job-unrelated must wait for the parent's tree")

        // A grandchild belongs to the same tree.
        _ = try await engine.enqueueJob(deciderJob("job-grandchild", conversation: "conv-C", parent: "job-child"))
        #expect(try engine.job("job-grandchild")?.rootJobID == "job-parent")
        #expect(try await engine.claimJob()?.job.jobID == "job-grandchild")

        for job in try engine.jobs(.running) {
            #expect(try await engine.completeJob(job.jobID, token: job.token) == .accepted)
        }
        #expect(parent.job.jobID == "job-parent")
        #expect(try await engine.claimJob()?.job.jobID == "job-unrelated")
        await fixture.close()
    }

    @Test func jobAndDeliveryRecordsKeepTheirConversationAsCorrelationID() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        _ = try await engine.enqueueJob(deciderJob("job-1", conversation: "conv-7"))
        let claim = try await engine.mustClaimJob()
        #expect(try await engine.heartbeatJob("job-1", token: claim.token + 1) != .accepted)
        #expect(try await engine.completeJob("job-1", token: claim.token) == .accepted)
        let delivery = NewDelivery(
            idempotencyKey: "msg-1:0", channel: "web", accountID: "default", recipient: "u-1", conversationID: "conv-7",
            text: "hi")
        #expect(try await engine.enqueueDelivery(delivery).duplicate == false)

        let records = try engine.log.records(from: 1)
        #expect(
            records.map(\.type) == [
                "job.enqueued", "job.claimed", "command.rejected", "job.completed", "delivery.enqueued",
            ])
        #expect(records.allSatisfy { $0.correlationID == "conv-7" })
        await fixture.close()
    }
}
