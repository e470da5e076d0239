import EventLog
import SwitchboardEvents
@testable import Projections
import Testing

/// The log time the pure job tests decide at.
private let t0 = LogTimestamp(microseconds: 1_000_000_000_000)
private let worker = Owner(workerID: "core-1", instance: "i-1")

/// A job as the projection would hold it.
func jobState(
    _ id: String, conversation: String = "conv-1", priority: Int = 0, root: String? = nil, seq: UInt64,
    status: JobStatus = .pending, attempt: Int = 0, maxAttempts: Int = 3, notBefore: LogTimestamp? = nil,
    token: UInt64 = 0, visibleUntil: LogTimestamp? = nil
) -> JobState {
    JobState(
        jobID: id, idempotencyKey: "key-\(id)", conversationID: conversation, kind: "reply", priority: priority,
        parentJobID: root, rootJobID: root ?? id, maxAttempts: maxAttempts, payload: [:], enqueueSeq: seq,
        status: status, attempt: attempt, notBefore: notBefore ?? LogTimestamp(microseconds: 0), token: token,
        claimedBy: status == .running ? worker : nil, visibleUntil: visibleUntil, lastReason: nil, lastMessage: nil,
        result: nil)
}

/// An in-memory ``JobQueueView``: the claim-order rules computed from a list of jobs, the reference the
/// projection's indexes must agree with. It counts the jobs each query visits, to show that claims stop early.
final class FakeJobQueue: JobQueueView {
    let jobs: [JobState]
    private(set) var readyVisits = 0

    init(_ jobs: [JobState]) { self.jobs = jobs }

    static func inClaimOrder(_ a: JobState, _ b: JobState) -> Bool {
        (-a.priority, a.notBefore, a.enqueueSeq) < (-b.priority, b.notBefore, b.enqueueSeq)
    }

    /// Each conversation's next job: its first pending job in claim order among those its running jobs allow.
    var offered: [JobState] {
        Dictionary(grouping: jobs, by: \.conversationID).values.compactMap { jobs -> JobState? in
            let roots = Set(jobs.filter { $0.status == .running }.map(\.rootJobID))
            return jobs.filter { job in
                job.status == .pending && job.notBefore.microseconds != .max
                    && (roots.isEmpty || roots == [job.rootJobID])
            }.min(by: Self.inClaimOrder)
        }.sorted(by: Self.inClaimOrder)
    }

    func forEachClaimable(at now: LogTimestamp, _ body: (JobState) throws -> Bool) throws {
        for job in offered where job.notBefore <= now {
            readyVisits += 1
            if try !body(job) { return }
        }
    }

    func forEachExpiredClaim(before now: LogTimestamp, _ body: (JobState) throws -> Bool) throws {
        let running = jobs.filter { $0.status == .running }.sorted {
            ($0.visibleUntil?.microseconds ?? 0, $0.jobID) < ($1.visibleUntil?.microseconds ?? 0, $1.jobID)
        }
        for job in running where (job.visibleUntil?.microseconds ?? 0) < now.microseconds {
            if try !body(job) { return }
        }
    }
}

/// The `job.claimed` event a claim of `job` at `t0` under `token` records.
private func claimed(_ job: JobState, token: UInt64, settings: JobSettings = JobSettings()) -> SwitchboardEvent {
    .jobClaimed(
        JobClaimed(
            jobID: job.jobID, workerID: worker.workerID, ownerInstance: worker.instance, token: token,
            attempt: job.attempt + 1, visibleUntil: t0.advanced(by: settings.visibility)))
}

struct ClaimOrderCase: Sendable, CustomTestStringConvertible {
    var name: String
    var jobs: [JobState]
    var expected: String?
    var testDescription: String { name }
}

@Suite struct PureJobDeciderTests {
    static let claimOrder: [ClaimOrderCase] = [
        ClaimOrderCase(
            name: "higher priority before earlier enqueue",
            jobs: [jobState("low", seq: 1), jobState("high", conversation: "conv-2", priority: 5, seq: 2)],
            expected: "high"),
        ClaimOrderCase(
            name: "FIFO within a priority",
            jobs: [jobState("second", seq: 7), jobState("first", conversation: "conv-2", seq: 3)], expected: "first"),
        ClaimOrderCase(
            name: "earlier notBefore before earlier enqueue",
            jobs: [
                jobState("old", seq: 1, notBefore: t0.advanced(by: .seconds(-1))),
                jobState("older-time", conversation: "conv-2", seq: 2, notBefore: t0.advanced(by: .seconds(-5))),
            ],
            expected: "older-time"),
        ClaimOrderCase(
            name: "future notBefore is skipped",
            jobs: [
                jobState("later", priority: 9, seq: 1, notBefore: t0.advanced(by: .seconds(1))),
                jobState("now", conversation: "conv-2", seq: 2, notBefore: t0),
            ],
            expected: "now"),
        ClaimOrderCase(
            name: "a busy conversation is skipped",
            jobs: [
                jobState("running", seq: 1, status: .running, attempt: 1, token: 5, visibleUntil: t0),
                jobState("same-conv", priority: 9, seq: 2), jobState("other-conv", conversation: "conv-2", seq: 3),
            ],
            expected: "other-conv"),
        ClaimOrderCase(
            name: "a child job runs while its parent waits",
            jobs: [
                jobState("parent", seq: 1, status: .running, attempt: 1, token: 5, visibleUntil: t0),
                jobState("child", root: "parent", seq: 2), jobState("other-conv", conversation: "conv-2", seq: 3),
            ],
            expected: "child"),
        ClaimOrderCase(
            name: "a parent retrying while its child runs is of the running tree",
            jobs: [
                jobState("child", root: "parent", seq: 2, status: .running, attempt: 1, token: 5, visibleUntil: t0),
                jobState("parent", seq: 1), jobState("other-conv", conversation: "conv-2", seq: 3),
            ],
            expected: "parent"),
        ClaimOrderCase(
            name: "a conversation whose first job waits for its retry holds back its lower-priority jobs",
            jobs: [
                jobState("retrying", priority: 5, seq: 1, attempt: 1, notBefore: t0.advanced(by: .seconds(10))),
                jobState("behind", seq: 2), jobState("other-conv", conversation: "conv-2", seq: 3),
            ],
            expected: "other-conv"),
        ClaimOrderCase(
            name: "jobs of two trees running hold back the conversation",
            jobs: [
                jobState("a", seq: 1, status: .running, attempt: 1, token: 5, visibleUntil: t0),
                jobState("b", seq: 2, status: .running, attempt: 1, token: 6, visibleUntil: t0),
                jobState("child-of-a", root: "a", seq: 3),
            ],
            expected: nil),
        ClaimOrderCase(
            name: "nothing claimable",
            jobs: [
                jobState("running", seq: 1, status: .running, attempt: 1, token: 5, visibleUntil: t0),
                jobState("blocked", seq: 2), jobState("done", conversation: "conv-2", seq: 3, status: .completed),
                jobState("dead", conversation: "conv-3", seq: 4, status: .dead),
            ],
            expected: nil),
    ]

    @Test(arguments: claimOrder)
    func claimPicksTheNextRunnableJob(_ test: ClaimOrderCase) throws {
        let decision = try JobDecider.claim(
            owner: worker, settings: JobSettings(), queue: FakeJobQueue(test.jobs), now: t0, nextSeq: 100)

        #expect(decision.outcome?.job.jobID == test.expected)
        if let expected = test.jobs.first(where: { $0.jobID == test.expected }) {
            #expect(decision.events == [claimed(expected, token: 100)])
            #expect(decision.correlationIDs == [expected.conversationID])
            let claim = try #require(decision.outcome)
            #expect(claim.token == 100 && claim.attempt == 1)
            #expect(claim.visibleUntil == t0.advanced(by: .seconds(60)))
            #expect(claim.job.status == .running && claim.job.token == 100 && claim.job.claimedBy == worker)
        } else {
            #expect(decision.events.isEmpty)
        }
    }

    @Test func claimStopsAtTheFirstRunnableJob() throws {
        let queue = FakeJobQueue((1...50).map { jobState("job-\($0)", conversation: "conv-\($0)", seq: UInt64($0)) })

        let decision = try JobDecider.claim(owner: worker, settings: JobSettings(), queue: queue, now: t0, nextSeq: 9)

        #expect(decision.outcome?.job.jobID == "job-1")
        #expect(queue.readyVisits == 1)
    }

    @Test func expiredClaimsAreSettledAsFailedAttempts() throws {
        let settings = JobSettings()
        let expired = jobState(
            "expired", seq: 1, status: .running, attempt: 1, token: 40, visibleUntil: t0.advanced(by: .seconds(-1)))
        let queue = FakeJobQueue([expired, jobState("waiting", seq: 2)])

        let decision = try JobDecider.reclaimExpired(settings: settings, queue: queue, now: t0)

        let retryAt = t0.advanced(by: settings.retry.delay(afterAttempt: 1, key: "expired"))
        let message = "claim expired at \(t0.advanced(by: .seconds(-1)))"
        #expect(decision.outcome == 1)
        #expect(
            decision.events == [
                .jobFailed(
                    JobFailed(
                        jobID: "expired", token: 40, attempt: 1, reason: "claim_expired", message: message,
                        retryable: true)),
                .jobRetried(JobRetried(jobID: "expired", attempt: 2, notBefore: retryAt, reason: "claim_expired")),
            ])
        #expect(decision.correlationIDs == ["conv-1", "conv-1"])
    }

    @Test func aClaimVisibleUntilNowIsNotExpired() throws {
        let queue = FakeJobQueue([
            jobState("running", seq: 1, status: .running, attempt: 1, token: 40, visibleUntil: t0),
            jobState("waiting", seq: 2),
        ])

        let reclaim = try JobDecider.reclaimExpired(settings: JobSettings(), queue: queue, now: t0)
        let claim = try JobDecider.claim(owner: worker, settings: JobSettings(), queue: queue, now: t0, nextSeq: 100)

        #expect(reclaim.outcome == 0 && reclaim.events.isEmpty)
        #expect(claim.outcome == nil && claim.events.isEmpty)
    }

    @Test func anExpiredClaimOutOfAttemptsIsDead() throws {
        let expired = jobState(
            "expired", seq: 1, status: .running, attempt: 3, maxAttempts: 3, token: 40,
            visibleUntil: t0.advanced(by: .seconds(-1)))
        let message = "claim expired at \(t0.advanced(by: .seconds(-1)))"

        let decision = try JobDecider.reclaimExpired(settings: JobSettings(), queue: FakeJobQueue([expired]), now: t0)

        #expect(
            decision.events == [
                .jobFailed(
                    JobFailed(
                        jobID: "expired", token: 40, attempt: 3, reason: "claim_expired", message: message,
                        retryable: true)),
                .jobDead(JobDead(jobID: "expired", attempts: 3, lastReason: "claim_expired", lastMessage: message)),
            ])
    }

    enum TokenCommand: String, CaseIterable, Sendable {
        case heartbeat, complete, fail
    }

    struct FencingCase: Sendable, CustomTestStringConvertible {
        var name: String
        var job: JobState?
        var token: UInt64
        var reason: JobRejection
        var testDescription: String { name }
    }

    static let fencing: [FencingCase] = [
        FencingCase(name: "unknown job", job: nil, token: 7, reason: .unknown),
        FencingCase(
            name: "stale token",
            job: jobState("job-1", seq: 1, status: .running, attempt: 2, token: 50, visibleUntil: t0), token: 7,
            reason: .staleToken),
        FencingCase(
            name: "completed under the same token",
            job: jobState("job-1", seq: 1, status: .completed, attempt: 1, token: 7), token: 7,
            reason: .wrongState),
        FencingCase(
            name: "pending again after a retry", job: jobState("job-1", seq: 1, attempt: 1, token: 7), token: 7,
            reason: .wrongState),
    ]

    @Test(arguments: fencing, TokenCommand.allCases)
    func tokenFencedCommandsAreRefusedAndRecorded(_ test: FencingCase, _ command: TokenCommand) {
        let settings = JobSettings()
        let events: [SwitchboardEvent]
        let correlationIDs: [String?]
        switch command {
        case .heartbeat:
            let decision = JobDecider.heartbeat(
                test.job, jobID: "job-1", token: test.token, owner: worker, settings: settings, now: t0)
            #expect(decision.outcome == .rejected(reason: test.reason, currentToken: test.job?.token))
            (events, correlationIDs) = (decision.events, decision.correlationIDs)
        case .complete:
            let decision = JobDecider.complete(test.job, jobID: "job-1", token: test.token, owner: worker)
            #expect(decision.outcome == .rejected(reason: test.reason, currentToken: test.job?.token))
            (events, correlationIDs) = (decision.events, decision.correlationIDs)
        case .fail:
            let decision = JobDecider.fail(
                test.job, jobID: "job-1", token: test.token, owner: worker, reason: "boom", message: "it broke",
                retryable: true, settings: settings, now: t0)
            #expect(decision.outcome == .rejected(reason: test.reason, currentToken: test.job?.token))
            (events, correlationIDs) = (decision.events, decision.correlationIDs)
        }
        #expect(
            events == [
                .commandRejected(
                    CommandRejected(
                        command: "job.\(command.rawValue)", subject: "job-1", reason: test.reason.rawValue,
                        presentedToken: test.token, currentToken: test.job?.token, workerID: worker.workerID,
                        instance: worker.instance))
            ])
        #expect(correlationIDs == [test.job?.conversationID])
    }

    @Test func heartbeatExtendsALiveClaim() {
        let job = jobState("job-1", seq: 1, status: .running, attempt: 1, token: 7, visibleUntil: t0)

        let decision = JobDecider.heartbeat(
            job, jobID: "job-1", token: 7, owner: worker, settings: JobSettings(), now: t0)

        #expect(decision.outcome == .accepted)
        #expect(
            decision.events == [
                .jobHeartbeat(JobHeartbeat(jobID: "job-1", token: 7, visibleUntil: t0.advanced(by: .seconds(60))))
            ])
    }

    @Test func heartbeatAfterTheDeadlineIsRefusedAndSettlesTheClaim() {
        let settings = JobSettings()
        let deadline = t0.advanced(by: .microseconds(-1))
        let job = jobState("job-1", seq: 1, status: .running, attempt: 1, token: 7, visibleUntil: deadline)

        let decision = JobDecider.heartbeat(job, jobID: "job-1", token: 7, owner: worker, settings: settings, now: t0)

        #expect(decision.outcome == .rejected(reason: .expired, currentToken: 7))
        let retryAt = t0.advanced(by: settings.retry.delay(afterAttempt: 1, key: "job-1"))
        #expect(
            decision.events == [
                .commandRejected(
                    CommandRejected(
                        command: "job.heartbeat", subject: "job-1", reason: "expired", presentedToken: 7,
                        currentToken: 7, workerID: worker.workerID, instance: worker.instance)),
                .jobFailed(
                    JobFailed(
                        jobID: "job-1", token: 7, attempt: 1, reason: "claim_expired",
                        message: "claim expired at \(deadline)", retryable: true)),
                .jobRetried(JobRetried(jobID: "job-1", attempt: 2, notBefore: retryAt, reason: "claim_expired")),
            ])
    }

    @Test func completeUnderTheCurrentTokenIsAccepted() {
        let job = jobState(
            "job-1", seq: 1, status: .running, attempt: 1, token: 7, visibleUntil: t0.advanced(by: .seconds(-9)))

        let decision = JobDecider.complete(job, jobID: "job-1", token: 7, owner: worker, result: "ok")

        #expect(decision.outcome == .accepted)
        #expect(decision.events == [.jobCompleted(JobCompleted(jobID: "job-1", token: 7, result: "ok"))])
        #expect(decision.correlationIDs == ["conv-1"])
    }

    struct FailureCase: Sendable, CustomTestStringConvertible {
        var attempt: Int
        var maxAttempts: Int
        var retryable: Bool
        var retried: Bool
        var testDescription: String { "attempt \(attempt)/\(maxAttempts), retryable \(retryable)" }
    }

    @Test(arguments: [
        FailureCase(attempt: 1, maxAttempts: 3, retryable: true, retried: true),
        FailureCase(attempt: 2, maxAttempts: 3, retryable: true, retried: true),
        FailureCase(attempt: 3, maxAttempts: 3, retryable: true, retried: false),
        FailureCase(attempt: 1, maxAttempts: 3, retryable: false, retried: false),
    ])
    func failIsRetriedWithBackoffOrDead(_ test: FailureCase) {
        let settings = JobSettings()
        let job = jobState(
            "job-1", seq: 1, status: .running, attempt: test.attempt, maxAttempts: test.maxAttempts, token: 7,
            visibleUntil: t0)

        let decision = JobDecider.fail(
            job, jobID: "job-1", token: 7, owner: worker, reason: "model_error", message: "it broke",
            retryable: test.retryable, settings: settings, now: t0)

        let failed = SwitchboardEvent.jobFailed(
            JobFailed(
                jobID: "job-1", token: 7, attempt: test.attempt, reason: "model_error", message: "it broke",
                retryable: test.retryable))
        if test.retried {
            let retryAt = t0.advanced(by: settings.retry.delay(afterAttempt: test.attempt, key: "job-1"))
            #expect(decision.outcome == .retried(notBefore: retryAt))
            #expect(retryAt > t0)
            #expect(
                decision.events == [
                    failed,
                    .jobRetried(
                        JobRetried(
                            jobID: "job-1", attempt: test.attempt + 1, notBefore: retryAt, reason: "model_error")),
                ])
        } else {
            #expect(decision.outcome == .dead)
            #expect(
                decision.events == [
                    failed,
                    .jobDead(
                        JobDead(
                            jobID: "job-1", attempts: test.attempt, lastReason: "model_error", lastMessage: "it broke")),
                ])
        }
    }

    @Test(arguments: [JobStatus.dead, .pending, .running, .completed])
    func requeueOnlyRevivesDeadJobs(_ status: JobStatus) throws {
        let job = jobState("job-1", seq: 1, status: status, attempt: 3, token: 7)

        let decision = try JobDecider.requeue(job, jobID: "job-1", byOperator: "ops", reason: "fixed")

        switch status {
        case .dead:
            #expect(decision.outcome == .accepted)
            #expect(decision.events == [.jobRequeued(JobRequeued(jobID: "job-1", byOperator: "ops", reason: "fixed"))])
        case .pending, .running, .completed, .cancelled:
            #expect(decision.outcome == .rejected(reason: .wrongState, currentToken: 7))
            #expect(decision.events.isEmpty)
        }
        #expect(throws: ProjectionError.self) {
            try JobDecider.requeue(nil, jobID: "job-1", byOperator: "ops", reason: "fixed")
        }
    }

    @Test func enqueueRecordsTheJobOrReturnsTheFirstOne() throws {
        var job = NewJob(jobID: "child", idempotencyKey: "key-child", conversationID: "conv-1")
        job.parentJobID = "parent"
        let parent = jobState("parent", root: "root", seq: 1, status: .running, token: 3)

        let fresh = try JobDecider.enqueue(
            job, existingJobID: nil, jobIDTaken: false, parent: parent, settings: JobSettings())
        let repeated = try JobDecider.enqueue(
            job, existingJobID: "first", jobIDTaken: true, parent: nil, settings: JobSettings())

        #expect(fresh.outcome == JobEnqueue(jobID: "child", duplicate: false))
        #expect(
            fresh.events == [
                .jobEnqueued(
                    JobEnqueued(
                        jobID: "child", idempotencyKey: "key-child", conversationID: "conv-1", kind: "reply",
                        parentJobID: "parent", rootJobID: "root", maxAttempts: 3))
            ])
        #expect(fresh.correlationIDs == ["conv-1"])
        #expect(repeated.outcome == JobEnqueue(jobID: "first", duplicate: true) && repeated.events.isEmpty)
        #expect(throws: ProjectionError.self) {
            try JobDecider.enqueue(job, existingJobID: nil, jobIDTaken: false, parent: nil, settings: JobSettings())
        }
        #expect(throws: ProjectionError.self) {
            try JobDecider.enqueue(job, existingJobID: nil, jobIDTaken: true, parent: parent, settings: JobSettings())
        }
    }
}
