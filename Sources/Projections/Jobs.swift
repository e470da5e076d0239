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
    public init() {}
}

/// A fresh id that sorts by creation time: `<prefix>` + 13 hex digits of microseconds + 8 random hex digits.
/// Tables keyed by id then grow at their end instead of touching a random B-tree page per insert.
public func timeOrderedID(_ prefix: String) -> String {
    let micros = String(UInt64(LogTimestamp.wallClock().microseconds), radix: 16)
    let random = String(UInt32.random(in: 0...UInt32.max), radix: 16)
    return prefix + String(repeating: "0", count: max(0, 13 - micros.count)) + micros
        + String(repeating: "0", count: 8 - random.count) + random
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

/// The outcome of a token-fenced job command.
public enum JobCommandResult: Sendable, Equatable {
    case accepted
    /// `reason`: `stale_token`, `expired` (heartbeat only), `wrong_state` or `unknown`.
    case rejected(reason: String, currentToken: UInt64?)
}

/// What happened to a failed attempt.
public enum JobFailureOutcome: Sendable, Equatable {
    case retried(notBefore: LogTimestamp)
    case dead
    case rejected(reason: String, currentToken: UInt64?)
}

/// Job deciders: run inside the write transaction.
public enum JobDecider {
    typealias T = ProjectionTables

    static func load(_ jobID: String, _ context: borrowing WriteContext) throws -> JobState? {
        try context.tables.load(JobState.self, T.jobs, Key(jobID))
    }

    /// Enqueues a job unless its idempotency key was seen before (then returns the first job).
    public static func enqueue(_ job: NewJob, settings: JobSettings, _ context: inout WriteContext) throws -> JobEnqueue
    {
        guard !job.jobID.isEmpty, !job.idempotencyKey.isEmpty, !job.conversationID.isEmpty else {
            throw ProjectionError(.invalidArgument, "a job needs a job id, an idempotency key and a conversation")
        }
        if let existing = try context.tables.get(context.tables.table(T.jobKeys), Key(job.idempotencyKey).bytes) {
            return JobEnqueue(jobID: String(decoding: existing, as: UTF8.self), duplicate: true)
        }
        if try load(job.jobID, context) != nil {
            throw ProjectionError(.invalidArgument, "job id \(job.jobID) exists under another idempotency key")
        }
        var root: String?
        if let parent = job.parentJobID {
            guard let parentJob = try load(parent, context) else {
                throw ProjectionError(.notFound, "parent job \(parent) does not exist")
            }
            root = parentJob.rootJobID
        }
        try context.append(
            .jobEnqueued(
                JobEnqueued(
                    jobID: job.jobID, idempotencyKey: job.idempotencyKey, conversationID: job.conversationID,
                    kind: job.kind, triggeringMessageSeq: job.triggeringMessageSeq, parentJobID: job.parentJobID,
                    rootJobID: root, priority: job.priority, runAt: job.runAt,
                    maxAttempts: job.maxAttempts ?? settings.retry.maxAttempts, payload: job.payload)),
            correlationID: job.conversationID)
        return JobEnqueue(jobID: job.jobID, duplicate: false)
    }

    /// Claims the next runnable job for `owner`: highest priority, then earliest, whose conversation has no
    /// running job outside its own delegation tree. Expired claims are reclaimed first (counting an attempt).
    public static func claim(owner: Owner, settings: JobSettings, _ context: inout WriteContext) throws -> JobClaim? {
        try reclaimExpired(settings: settings, &context)
        var chosen: JobState?
        try context.tables.scan(context.tables.table(T.jobReady)) { _, value in
            let jobID = String(decoding: value, as: UTF8.self)
            guard let job = try context.tables.load(JobState.self, T.jobs, Key(jobID)) else { return true }
            if job.notBefore > context.now { return true }
            if try conversationBusy(for: job, context) { return true }
            chosen = job
            return false
        }
        guard let job = chosen else { return nil }
        let token = context.nextSeq  // the seq of job.claimed: greater than every earlier claim of the job
        let visibleUntil = context.now.advanced(by: settings.visibility)
        let attempt = job.attempt + 1
        try context.append(
            .jobClaimed(
                JobClaimed(
                    jobID: job.jobID, workerID: owner.workerID, ownerInstance: owner.instance, token: token,
                    attempt: attempt, visibleUntil: visibleUntil)),
            correlationID: job.conversationID)
        var claimed = job
        claimed.status = .running
        claimed.token = token
        claimed.attempt = attempt
        claimed.claimedBy = owner
        claimed.visibleUntil = visibleUntil
        return JobClaim(job: claimed, token: token, attempt: attempt, visibleUntil: visibleUntil)
    }

    /// Whether another job outside `job`'s delegation tree is running in its conversation. A child job may run
    /// while its parent (same root) waits for it.
    static func conversationBusy(for job: JobState, _ context: borrowing WriteContext) throws -> Bool {
        var busy = false
        let prefix = Key(job.conversationID).prefix
        try context.tables.scan(context.tables.table(T.conversationRunning), from: prefix) { key, root in
            guard hasPrefix(key, prefix) else { return false }
            if String(decoding: root, as: UTF8.self) != job.rootJobID {
                busy = true
                return false
            }
            return true
        }
        return busy
    }

    /// Turns claims whose visibility ran out (strictly before now) into failed attempts: retried or dead.
    static func reclaimExpired(settings: JobSettings, _ context: inout WriteContext) throws {
        var expired: [String] = []
        try context.tables.scan(context.tables.table(T.jobRunning)) { key, value in
            let until =
                key.count >= 9 ? UInt64(bigEndian: key[1..<9].withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }) : 0
            if until >= orderKey(context.now) { return false }
            expired.append(String(decoding: value, as: UTF8.self))
            return true
        }
        for jobID in expired {
            guard let job = try load(jobID, context), job.status == .running else { continue }
            try settle(
                job, reason: "claim_expired", message: "claim expired at \(job.visibleUntil.map { "\($0)" } ?? "?")",
                retryable: true, settings: settings, &context)
        }
    }

    /// Extends the claim of `jobID` held under `token`. An expired claim cannot be extended back: the heartbeat
    /// is refused (`expired`) and the claim is settled at once as a failed attempt (`claim_expired`), so the job
    /// is retried (or dead) without waiting for the next claim decision.
    public static func heartbeat(
        _ jobID: String, token: UInt64, owner: Owner, settings: JobSettings, _ context: inout WriteContext
    ) throws -> JobCommandResult {
        guard let job = try load(jobID, context), job.status == .running, job.token == token else {
            return try reject("job.heartbeat", jobID, token: token, owner: owner, &context)
        }
        if let deadline = job.visibleUntil, context.now > deadline {
            try context.append(
                .commandRejected(
                    CommandRejected(
                        command: "job.heartbeat", subject: jobID, reason: "expired", presentedToken: token,
                        currentToken: job.token, workerID: owner.workerID, instance: owner.instance)),
                correlationID: job.conversationID)
            try settle(
                job, reason: "claim_expired", message: "claim expired at \(deadline)", retryable: true,
                settings: settings, &context)
            return .rejected(reason: "expired", currentToken: job.token)
        }
        try context.append(
            .jobHeartbeat(
                JobHeartbeat(jobID: jobID, token: token, visibleUntil: context.now.advanced(by: settings.visibility))),
            correlationID: job.conversationID)
        return .accepted
    }

    /// Completes `jobID` under `token`; refused when the token is stale. A claim past its deadline that nobody
    /// has reclaimed yet still completes: its token is current, so no other worker can hold the job.
    public static func complete(
        _ jobID: String, token: UInt64, owner: Owner, result: String? = nil, modelUsed: String? = nil,
        _ context: inout WriteContext
    ) throws -> JobCommandResult {
        guard let job = try load(jobID, context), job.status == .running, job.token == token else {
            return try reject("job.complete", jobID, token: token, owner: owner, &context)
        }
        try context.append(
            .jobCompleted(JobCompleted(jobID: jobID, token: token, result: result, modelUsed: modelUsed)),
            correlationID: job.conversationID)
        return .accepted
    }

    /// Records a failed attempt under `token`: retried with backoff, or dead when out of attempts or not
    /// retryable.
    public static func fail(
        _ jobID: String, token: UInt64, owner: Owner, reason: String, message: String, retryable: Bool,
        settings: JobSettings, _ context: inout WriteContext
    ) throws -> JobFailureOutcome {
        guard let job = try load(jobID, context), job.status == .running, job.token == token else {
            if case .rejected(let why, let current) = try reject(
                "job.fail", jobID, token: token, owner: owner, &context)
            {
                return .rejected(reason: why, currentToken: current)
            }
            return .rejected(reason: "unknown", currentToken: nil)
        }
        return try settle(job, reason: reason, message: message, retryable: retryable, settings: settings, &context)
    }

    @discardableResult
    static func settle(
        _ job: JobState, reason: String, message: String, retryable: Bool, settings: JobSettings,
        _ context: inout WriteContext
    ) throws -> JobFailureOutcome {
        let text = String(message.prefix(500))
        try context.append(
            .jobFailed(
                JobFailed(
                    jobID: job.jobID, token: job.token, attempt: job.attempt, reason: reason, message: text,
                    retryable: retryable)),
            correlationID: job.conversationID)
        if retryable && job.attempt < job.maxAttempts {
            let notBefore = context.now.advanced(by: settings.retry.delay(afterAttempt: job.attempt, key: job.jobID))
            try context.append(
                .jobRetried(
                    JobRetried(jobID: job.jobID, attempt: job.attempt + 1, notBefore: notBefore, reason: reason)),
                correlationID: job.conversationID)
            return .retried(notBefore: notBefore)
        }
        try context.append(
            .jobDead(JobDead(jobID: job.jobID, attempts: job.attempt, lastReason: reason, lastMessage: text)),
            correlationID: job.conversationID)
        return .dead
    }

    /// Puts a dead job back in the queue with a fresh attempt budget (an operator action).
    public static func requeue(
        _ jobID: String, byOperator name: String, reason: String, _ context: inout WriteContext
    ) throws -> JobCommandResult {
        guard let job = try load(jobID, context) else {
            throw ProjectionError(.notFound, "no job \(jobID)")
        }
        guard job.status == .dead else { return .rejected(reason: "wrong_state", currentToken: job.token) }
        try context.append(
            .jobRequeued(JobRequeued(jobID: jobID, byOperator: name, reason: reason)), correlationID: job.conversationID
        )
        return .accepted
    }

    static func reject(
        _ command: String, _ jobID: String, token: UInt64, owner: Owner, _ context: inout WriteContext
    ) throws -> JobCommandResult {
        let job = try load(jobID, context)
        let reason = job == nil ? "unknown" : (job?.token != token ? "stale_token" : "wrong_state")
        try context.append(
            .commandRejected(
                CommandRejected(
                    command: command, subject: jobID, reason: reason, presentedToken: token, currentToken: job?.token,
                    workerID: owner.workerID, instance: owner.instance)),
            correlationID: job?.conversationID)
        return .rejected(reason: reason, currentToken: job?.token)
    }
}
