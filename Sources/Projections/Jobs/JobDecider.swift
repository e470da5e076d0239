import Crypto
import EventLog
import SwitchboardEvents
import Foundation

/// Retry timing for jobs: exponential backoff with jitter, capped; then dead after ``maxAttempts``.
public struct RetryPolicy: Sendable, Equatable {
    /// Claims a job gets before it is dead (default 3).
    public var maxAttempts: Int = 3
    /// The delay before the second attempt (default 1 s); doubles each attempt.
    public var baseDelay: Duration = .seconds(1)
    /// The longest delay before jitter (default 30 s; with the default jitter a delay is at most 36 s).
    public var maxDelay: Duration = .seconds(30)
    /// Extra random delay, as a fraction of the delay (default 0.2 = up to +20 %).
    public var jitter: Double = 0.2

    public init() {}

    /// The delay after failed attempt `attempt` (1-based) of `jobID`. The jitter is derived from a hash of the
    /// job id and attempt, so a decision is reproducible; the resulting time is recorded in `job.retried`.
    public func delay(afterAttempt attempt: Int, key: String) -> Duration {
        let exponent = max(0, min(attempt - 1, 30))
        let base = baseDelay * (1 << exponent)
        let capped = min(base, maxDelay)
        let digest = SHA256.hash(data: Array("\(key)#\(attempt)".utf8))
        let unit = Double(digest.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }) / Double(UInt32.max)
        return capped + capped * (jitter * unit)
    }
}

/// The job settings a decider needs.
public struct JobSettings: Sendable, Equatable {
    /// How long a claim stays valid without a heartbeat (default 60 s).
    public var visibility: Duration = .seconds(60)
    public var retry = RetryPolicy()
    /// How each channel's conversations take messages that arrive while a reply is queued or running, by stored
    /// channel name; ``defaultRules`` for a channel not named. The engine alone answers each message on its own
    /// (`followup`, no debounce); the agent's settings give every channel its rules (`collect` by default, see
    /// `ConversationSettings`).
    public var conversations: [String: ConversationRules] = [:]
    public var defaultRules = ConversationRules(queueMode: .followup)
    /// The owner's time zone (`TIMEZONE`): `/remind at 17:00` is 17:00 there.
    public var timeZone = TimeZone(identifier: "UTC")!
    /// A reminder that fires later than this after it was due says "(late)" (`REMINDER_LATE_AFTER_SECONDS`).
    public var reminderLateAfter: Duration = .seconds(60)
    public init() {}

    /// The rules of `channel`'s conversations.
    public func rules(for channel: String) -> ConversationRules { conversations[channel] ?? defaultRules }
}

/// A fresh id that sorts by creation time: `<prefix>` + 13 hex digits of microseconds + 8 random hex digits.
/// Tables keyed by id then grow at their end instead of touching a random B-tree page per insert.
public func timeOrderedID(_ prefix: String) -> String {
    let micros = String(UInt64(LogTimestamp.wallClock().microseconds), radix: 16)
    let random = String(UInt32.random(in: 0...UInt32.max), radix: 16)
    return prefix + String(repeating: "0", count: max(0, 13 - micros.count)) + micros
        + String(repeating: "0", count: 8 - random.count) + random
}

/// What a job does (`job.enqueued`'s `kind`; the raw value is stored).
public enum JobKind: String, Sendable, CaseIterable {
    /// Answers a received message.
    case reply
    /// Another reply to a message already answered (Regenerate): a new version beside the earlier ones.
    case regenerate
    /// A scheduled task's run.
    case scheduled
    /// Work delegated by a parent job.
    case subagent
}

/// A new job.
public struct NewJob: Sendable, Equatable {
    public var jobID: String
    /// Repeating an enqueue with the same key returns the first job, for the life of the log.
    public var idempotencyKey: String
    public var conversationID: String
    public var kind: String = "reply"
    public var priority: Int = 0
    public var runAt: LogTimestamp?
    public var maxAttempts: Int?
    public var parentJobID: String?
    public var triggeringMessageSeq: UInt64?
    /// The provider id of the message the job answers (recorded on the job: the reply threads to it).
    public var replyToExternalID: String?
    public var payload: [String: String] = [:]

    public init(jobID: String = timeOrderedID("j"), idempotencyKey: String, conversationID: String) {
        self.jobID = jobID
        self.idempotencyKey = idempotencyKey
        self.conversationID = conversationID
    }
}

/// The result of an enqueue.
public struct JobEnqueue: Sendable, Equatable {
    /// The job (the first one, for a repeated idempotency key).
    public var jobID: String
    /// Whether the key had been enqueued before.
    public var duplicate: Bool
}

/// A claim: work on the job under ``token`` until ``visibleUntil`` (extend with heartbeats).
public struct JobClaim: Sendable, Equatable {
    public var job: JobState
    public var token: UInt64
    public var attempt: Int
    public var visibleUntil: LogTimestamp
}

/// Why a token-fenced job command was refused: the `reason` recorded in its `command.rejected`.
public enum JobRejection: String, Sendable, CaseIterable {
    /// The presented token is not the job's current claim token.
    case staleToken = "stale_token"
    /// A heartbeat came after the claim's visibility ran out (the claim is settled as a failed attempt).
    case expired
    /// The token is current but the job is not in a state the command applies to.
    case wrongState = "wrong_state"
    /// No such job.
    case unknown
}

/// The outcome of a token-fenced job command.
public enum JobCommandResult: Sendable, Equatable {
    case accepted
    /// `expired` is a heartbeat's only; `currentToken` is the job's current claim token, if the job exists.
    case rejected(reason: JobRejection, currentToken: UInt64?)
}

/// What happened to a failed attempt.
public enum JobFailureOutcome: Sendable, Equatable {
    case retried(notBefore: LogTimestamp)
    case dead
    case rejected(reason: JobRejection, currentToken: UInt64?)
}

/// The job indexes a claim decision reads, in the projection's order. Each query visits entries lazily, in index
/// order, until `body` returns `false`.
public protocol JobQueueView {
    /// The jobs a claim may take at `now`, in claim order (`p.job_ready`): highest priority first, then earliest
    /// `notBefore`, then enqueue order. Each conversation offers at most one job: its first pending job in claim
    /// order when none of its jobs runs; the first pending job of the running job's delegation tree when one
    /// runs (a child may run while its parent waits); none when jobs of two trees run. An offered job whose
    /// `notBefore` is after `now` is not visited, nor any later job of its priority (they are later still).
    func forEachClaimable(at now: LogTimestamp, _ body: (JobState) throws -> Bool) throws
    /// Running jobs whose claim is visible until strictly before `now` (`p.job_running`), earliest deadline first.
    func forEachExpiredClaim(before now: LogTimestamp, _ body: (JobState) throws -> Bool) throws
}

/// Job deciders: pure functions of the job state (or a ``JobQueueView``), the command, the log time and the
/// next seq, returning a ``Decision``. Their shells (`JobShell.swift`) run them in the write transaction.
public enum JobDecider {
    /// The reason a claim's settlement records when its visibility ran out.
    static let claimExpired = "claim_expired"

    /// Enqueues a job unless its idempotency key was seen before (then returns the first job).
    /// - Parameters:
    ///   - existingJobID: The job already enqueued under `job.idempotencyKey`, if any.
    ///   - jobIDTaken: Whether a job with `job.jobID` exists.
    ///   - parent: The job `job.parentJobID` names, when it exists.
    public static func enqueue(
        _ job: NewJob, existingJobID: String?, jobIDTaken: Bool, parent: JobState?, settings: JobSettings
    ) throws(ProjectionError) -> Decision<JobEnqueue> {
        guard !job.jobID.isEmpty, !job.idempotencyKey.isEmpty, !job.conversationID.isEmpty else {
            throw ProjectionError(.invalidArgument, "a job needs a job id, an idempotency key and a conversation")
        }
        if let existingJobID { return Decision(JobEnqueue(jobID: existingJobID, duplicate: true)) }
        if jobIDTaken {
            throw ProjectionError(.invalidArgument, "job id \(job.jobID) exists under another idempotency key")
        }
        var root: String?
        if let parentID = job.parentJobID {
            guard let parent, parent.jobID == parentID else {
                throw ProjectionError(.notFound, "parent job \(parentID) does not exist")
            }
            root = parent.rootJobID
        }
        let event = SwitchboardEvent.jobEnqueued(
            JobEnqueued(
                jobID: job.jobID, idempotencyKey: job.idempotencyKey, conversationID: job.conversationID,
                kind: job.kind, triggeringMessageSeq: job.triggeringMessageSeq, parentJobID: job.parentJobID,
                rootJobID: root, priority: job.priority, runAt: job.runAt,
                maxAttempts: job.maxAttempts ?? settings.retry.maxAttempts, payload: job.payload,
                replyToExternalID: job.replyToExternalID))
        return Decision(
            JobEnqueue(jobID: job.jobID, duplicate: false), events: [event], correlationIDs: [job.conversationID])
    }

    /// Settles the claims whose visibility ran out before `now` as failed attempts (`claim_expired`): each job is
    /// retried with backoff or dead. The claim shell runs it, in the same transaction, before every claim.
    public static func reclaimExpired(settings: JobSettings, queue: some JobQueueView, now: LogTimestamp) throws
        -> Decision<Int>
    {
        var events = DecisionEvents(firstSeq: 0)
        var settled = 0
        try queue.forEachExpiredClaim(before: now) { job in
            guard job.status == .running else { return true }
            let message = "claim expired at \(job.visibleUntil.map { "\($0)" } ?? "?")"
            settle(
                job, reason: claimExpired, message: message, retryable: true, settings: settings, now: now,
                into: &events)
            settled += 1
            return true
        }
        return events.decision(settled)
    }

    /// Claims the next runnable job for `owner`: the first job ``JobQueueView/forEachClaimable(at:_:)`` offers —
    /// highest priority, then earliest, whose conversation has no running job outside its own delegation tree.
    /// The claim token is the seq of the `job.claimed` event. Expired claims are settled first, by
    /// ``reclaimExpired(settings:queue:now:)`` in the same transaction (see the shell).
    public static func claim(
        owner: Owner, settings: JobSettings, queue: some JobQueueView, now: LogTimestamp, nextSeq: UInt64
    ) throws -> Decision<JobClaim?> {
        var chosen: JobState?
        try queue.forEachClaimable(at: now) { job in
            guard job.status == .pending, job.notBefore <= now else { return true }
            chosen = job
            return false
        }
        guard let job = chosen else { return Decision(nil) }
        let token = nextSeq  // the seq of job.claimed: greater than every earlier claim of the job
        let visibleUntil = now.advanced(by: settings.visibility)
        let attempt = job.attempt + 1
        var claimed = job
        claimed.status = .running
        claimed.token = token
        claimed.attempt = attempt
        claimed.claimedBy = owner
        claimed.visibleUntil = visibleUntil
        return Decision(
            JobClaim(job: claimed, token: token, attempt: attempt, visibleUntil: visibleUntil),
            events: [
                .jobClaimed(
                    JobClaimed(
                        jobID: job.jobID, workerID: owner.workerID, ownerInstance: owner.instance, token: token,
                        attempt: attempt, visibleUntil: visibleUntil))
            ],
            correlationIDs: [job.conversationID])
    }

    /// Extends the claim of `jobID` held under `token`. An expired claim cannot be extended back: the heartbeat
    /// is refused (`expired`) and the claim is settled at once as a failed attempt (`claim_expired`), so the job
    /// is retried (or dead) without waiting for the next claim decision.
    public static func heartbeat(
        _ job: JobState?, jobID: String, token: UInt64, owner: Owner, settings: JobSettings, now: LogTimestamp
    ) -> Decision<JobCommandResult> {
        guard let job, job.status == .running, job.token == token else {
            return reject("job.heartbeat", jobID, job, token: token, owner: owner)
        }
        if let deadline = job.visibleUntil, now > deadline {
            var events = DecisionEvents(firstSeq: 0)
            events.append(
                .commandRejected(
                    CommandRejected(
                        command: "job.heartbeat", subject: jobID, reason: JobRejection.expired.rawValue,
                        presentedToken: token, currentToken: job.token, workerID: owner.workerID,
                        instance: owner.instance)),
                correlationID: job.conversationID)
            settle(
                job, reason: claimExpired, message: "claim expired at \(deadline)", retryable: true,
                settings: settings, now: now, into: &events)
            return events.decision(.rejected(reason: .expired, currentToken: job.token))
        }
        return Decision(
            .accepted,
            events: [
                .jobHeartbeat(
                    JobHeartbeat(jobID: jobID, token: token, visibleUntil: now.advanced(by: settings.visibility)))
            ],
            correlationIDs: [job.conversationID])
    }

    /// Completes `jobID` under `token`; refused when the token is stale. A claim past its deadline that nobody
    /// has reclaimed yet still completes: its token is current, so no other worker can hold the job.
    public static func complete(
        _ job: JobState?, jobID: String, token: UInt64, owner: Owner, result: String? = nil,
        modelUsed: String? = nil
    ) -> Decision<JobCommandResult> {
        guard let job, job.status == .running, job.token == token else {
            return reject("job.complete", jobID, job, token: token, owner: owner)
        }
        return Decision(
            .accepted,
            events: [.jobCompleted(JobCompleted(jobID: jobID, token: token, result: result, modelUsed: modelUsed))],
            correlationIDs: [job.conversationID])
    }

    /// Records a failed attempt under `token`: retried with backoff, or dead when out of attempts or not
    /// retryable.
    public static func fail(
        _ job: JobState?, jobID: String, token: UInt64, owner: Owner, reason: String, message: String,
        retryable: Bool, settings: JobSettings, now: LogTimestamp
    ) -> Decision<JobFailureOutcome> {
        guard let job, job.status == .running, job.token == token else {
            let rejected = reject("job.fail", jobID, job, token: token, owner: owner)
            return Decision(
                .rejected(reason: rejection(job, token: token), currentToken: job?.token), events: rejected.events,
                correlationIDs: rejected.correlationIDs)
        }
        var events = DecisionEvents(firstSeq: 0)
        let outcome = settle(
            job, reason: reason, message: message, retryable: retryable, settings: settings, now: now, into: &events)
        return events.decision(outcome)
    }

    /// Records the failed attempt of running `job`, then its retry (with backoff) or its death.
    @discardableResult
    static func settle(
        _ job: JobState, reason: String, message: String, retryable: Bool, settings: JobSettings, now: LogTimestamp,
        into events: inout DecisionEvents
    ) -> JobFailureOutcome {
        let text = String(message.prefix(500))
        events.append(
            .jobFailed(
                JobFailed(
                    jobID: job.jobID, token: job.token, attempt: job.attempt, reason: reason, message: text,
                    retryable: retryable)),
            correlationID: job.conversationID)
        if retryable && job.attempt < job.maxAttempts {
            let notBefore = now.advanced(by: settings.retry.delay(afterAttempt: job.attempt, key: job.jobID))
            events.append(
                .jobRetried(
                    JobRetried(jobID: job.jobID, attempt: job.attempt + 1, notBefore: notBefore, reason: reason)),
                correlationID: job.conversationID)
            return .retried(notBefore: notBefore)
        }
        events.append(
            .jobDead(JobDead(jobID: job.jobID, attempts: job.attempt, lastReason: reason, lastMessage: text)),
            correlationID: job.conversationID)
        return .dead
    }

    /// Puts a dead job back in the queue with a fresh attempt budget (an operator action).
    public static func requeue(
        _ job: JobState?, jobID: String, byOperator name: String, reason: String
    ) throws(ProjectionError) -> Decision<JobCommandResult> {
        guard let job else { throw ProjectionError(.notFound, "no job \(jobID)") }
        guard job.status == .dead else { return Decision(.rejected(reason: .wrongState, currentToken: job.token)) }
        return Decision(
            .accepted, events: [.jobRequeued(JobRequeued(jobID: jobID, byOperator: name, reason: reason))],
            correlationIDs: [job.conversationID])
    }

    /// Why a command presenting `token` is refused for `job`.
    static func rejection(_ job: JobState?, token: UInt64) -> JobRejection {
        guard let job else { return .unknown }
        return job.token != token ? .staleToken : .wrongState
    }

    /// Refuses a token-fenced command, recording `command.rejected`.
    static func reject(
        _ command: String, _ jobID: String, _ job: JobState?, token: UInt64, owner: Owner
    ) -> Decision<JobCommandResult> {
        let reason = rejection(job, token: token)
        return Decision(
            .rejected(reason: reason, currentToken: job?.token),
            events: [
                .commandRejected(
                    CommandRejected(
                        command: command, subject: jobID, reason: reason.rawValue, presentedToken: token,
                        currentToken: job?.token, workerID: owner.workerID, instance: owner.instance))
            ],
            correlationIDs: [job?.conversationID])
    }
}
