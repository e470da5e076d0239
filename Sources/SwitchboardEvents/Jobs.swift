import EventLog
/// A job entered the job queue (`job.enqueued`).
///
/// Written by whoever creates work: the ingress path for a received message, the scheduler, or a job that
/// delegates to a sub-agent. A second `job.enqueued` with an ``idempotencyKey`` already seen is rejected
/// (decided by the Projections module).
public struct JobEnqueued: EventPayload {
    public static let eventType = "job.enqueued"

    /// The job id, made by the writer.
    public var jobID: String
    /// A key that makes enqueueing idempotent, e.g. derived from the triggering message's
    /// (channel, account, external id) or from a scheduled task run.
    public var idempotencyKey: String
    /// The conversation the job works on.
    public var conversationID: String
    /// What the job does: `reply` (answer a received message), `scheduled` (a scheduled task run) or
    /// `subagent` (work delegated by a parent job).
    public var kind: String
    /// The seq of the `message.received` record that triggered the job, if any.
    public var triggeringMessageSeq: UInt64?
    /// The delegating job, for `subagent` jobs.
    public var parentJobID: String?
    /// The root of the delegation tree, for `subagent` jobs.
    public var rootJobID: String?
    /// The claim priority; larger values are claimed first, `0` is normal (decided by the Projections module).
    public var priority: Int
    /// The earliest log time the job may be claimed; `nil` means at once.
    public var runAt: LogTimestamp?
    /// The number of executions (claims) the job may use before it is dead.
    public var maxAttempts: Int
    /// Small, non-secret string inputs of the job, e.g. a scheduled task's payload or a sub-agent's prompt.
    public var payload: [String: String]
    /// The provider id of the message the job answers (its triggering message's `externalID`), so the reply can
    /// thread to it without reading that record again. Additive optional field (schema version unchanged);
    /// `nil` in logs written before it.
    public var replyToExternalID: String?

    /// Creates a `job.enqueued` event.
    public init(
        jobID: String, idempotencyKey: String, conversationID: String, kind: String,
        triggeringMessageSeq: UInt64? = nil, parentJobID: String? = nil, rootJobID: String? = nil,
        priority: Int = 0, runAt: LogTimestamp? = nil, maxAttempts: Int, payload: [String: String] = [:],
        replyToExternalID: String? = nil
    ) {
        self.replyToExternalID = replyToExternalID
        self.jobID = jobID
        self.idempotencyKey = idempotencyKey
        self.conversationID = conversationID
        self.kind = kind
        self.triggeringMessageSeq = triggeringMessageSeq
        self.parentJobID = parentJobID
        self.rootJobID = rootJobID
        self.priority = priority
        self.runAt = runAt
        self.maxAttempts = maxAttempts
        self.payload = payload
    }
}

/// A worker claimed a job for one execution (`job.claimed`).
///
/// Written by the claiming core worker through a command decided by the Projections module. The claim
/// holds until ``visibleUntil`` unless extended by `job.heartbeat`; every later record of this execution
/// carries ``token``.
public struct JobClaimed: EventPayload {
    public static let eventType = "job.claimed"

    /// The claimed job.
    public var jobID: String
    /// The operator-chosen worker id of the claimant (`WORKER_ID`).
    public var workerID: String
    /// The claimant's per-process instance id (the UUID of its `WriterIdentity.instanceID`).
    public var ownerInstance: String
    /// The fencing token of this claim, greater than every earlier claim token of the job.
    public var token: UInt64
    /// The execution number this claim starts, from 1.
    public var attempt: Int
    /// The log time the claim expires unless a heartbeat extends it.
    public var visibleUntil: LogTimestamp

    /// Creates a `job.claimed` event.
    public init(
        jobID: String, workerID: String, ownerInstance: String, token: UInt64, attempt: Int,
        visibleUntil: LogTimestamp
    ) {
        self.jobID = jobID
        self.workerID = workerID
        self.ownerInstance = ownerInstance
        self.token = token
        self.attempt = attempt
        self.visibleUntil = visibleUntil
    }
}

/// The claimant extended its claim on a job (`job.heartbeat`).
///
/// Accepted only while ``token`` is the job's current, unexpired claim (decided by the Projections module).
public struct JobHeartbeat: EventPayload {
    public static let eventType = "job.heartbeat"

    /// The job.
    public var jobID: String
    /// The fencing token of the claim being extended.
    public var token: UInt64
    /// The new expiry of the claim.
    public var visibleUntil: LogTimestamp

    /// Creates a `job.heartbeat` event.
    public init(jobID: String, token: UInt64, visibleUntil: LogTimestamp) {
        self.jobID = jobID
        self.token = token
        self.visibleUntil = visibleUntil
    }
}

/// A job execution finished successfully (`job.completed`).
///
/// Accepted only when ``token`` is the job's current claim (decided by the Projections module).
public struct JobCompleted: EventPayload {
    public static let eventType = "job.completed"

    /// The job.
    public var jobID: String
    /// The fencing token of the claim that completed.
    public var token: UInt64
    /// The job's output, for jobs whose result is read by another job (`subagent`).
    public var result: String?
    /// The model that produced the final answer.
    public var modelUsed: String?

    /// Creates a `job.completed` event.
    public init(jobID: String, token: UInt64, result: String? = nil, modelUsed: String? = nil) {
        self.jobID = jobID
        self.token = token
        self.result = result
        self.modelUsed = modelUsed
    }
}

/// A job execution failed (`job.failed`).
///
/// Written by the claimant when its execution fails, or by the job decider with reason `claim_expired` when
/// the claim's `visibleUntil` passed without completion. Whether a `job.retried` or a `job.dead` follows is
/// decided by the Projections module.
public struct JobFailed: EventPayload {
    public static let eventType = "job.failed"

    /// The job.
    public var jobID: String
    /// The fencing token of the failed claim.
    public var token: UInt64
    /// The execution number that failed.
    public var attempt: Int
    /// The failure class: `rate_limit`, `timeout`, `server_error`, `network`, `permanent` or `claim_expired`.
    public var reason: String
    /// A human-readable description of the failure (no secrets).
    public var message: String
    /// Whether another execution could succeed.
    public var retryable: Bool

    /// Creates a `job.failed` event.
    public init(jobID: String, token: UInt64, attempt: Int, reason: String, message: String, retryable: Bool) {
        self.jobID = jobID
        self.token = token
        self.attempt = attempt
        self.reason = reason
        self.message = message
        self.retryable = retryable
    }
}

/// A failed job was scheduled for another execution (`job.retried`).
///
/// Written by the job decider (the Projections module) after a retryable failure with attempts left.
public struct JobRetried: EventPayload {
    public static let eventType = "job.retried"

    /// The job.
    public var jobID: String
    /// The execution number about to run.
    public var attempt: Int
    /// The earliest log time the next claim may happen (backoff).
    public var notBefore: LogTimestamp
    /// The failure class of the failed execution (see ``JobFailed/reason``).
    public var reason: String

    /// Creates a `job.retried` event.
    public init(jobID: String, attempt: Int, notBefore: LogTimestamp, reason: String) {
        self.jobID = jobID
        self.attempt = attempt
        self.notBefore = notBefore
        self.reason = reason
    }
}

/// A job will not run again: its attempts are spent or its failure is permanent (`job.dead`).
///
/// Written by the job decider (the Projections module). Dead jobs stay in the log; an operator may
/// re-enqueue one with `job.requeued`.
public struct JobDead: EventPayload {
    public static let eventType = "job.dead"

    /// The job.
    public var jobID: String
    /// The number of executions used.
    public var attempts: Int
    /// The failure class of the last execution.
    public var lastReason: String
    /// The failure description of the last execution.
    public var lastMessage: String

    /// Creates a `job.dead` event.
    public init(jobID: String, attempts: Int, lastReason: String, lastMessage: String) {
        self.jobID = jobID
        self.attempts = attempts
        self.lastReason = lastReason
        self.lastMessage = lastMessage
    }
}

/// An operator put a dead job back into the queue (`job.requeued`).
///
/// Written by an operator tool. How the attempt budget restarts is decided by the Projections module.
public struct JobRequeued: EventPayload {
    public static let eventType = "job.requeued"

    /// The dead job.
    public var jobID: String
    /// Who requeued it (operator name or account).
    public var byOperator: String
    /// Why it was requeued.
    public var reason: String

    /// Creates a `job.requeued` event.
    public init(jobID: String, byOperator: String, reason: String) {
        self.jobID = jobID
        self.byOperator = byOperator
        self.reason = reason
    }
}

/// A person stopped a job (`job.cancelled`): it ends at once, is never retried, and every later write under its
/// claim token is refused.
///
/// Written by the web chat's Stop (or a conversation's deletion), decided in the write transaction against the job
/// as it stands: a pending or running job is cancelled; an ended one is not. When the job had streamed text, the
/// same transaction records it as the job's final `assistant.message` with `finishReason: "stopped"` (decided by
/// the Projections module).
public struct JobCancelled: EventPayload {
    public static let eventType = "job.cancelled"

    /// The job.
    public var jobID: String
    /// The claim token it ran under when stopped; `0` when it was pending and had never been claimed.
    public var token: UInt64
    /// Who stopped it, e.g. `web:owner`.
    public var by: String
    /// Why: `stopped` (the Stop button) or `conversation_deleted`.
    public var reason: String

    /// Creates a `job.cancelled` event.
    public init(jobID: String, token: UInt64, by: String, reason: String) {
        self.jobID = jobID
        self.token = token
        self.by = by
        self.reason = reason
    }
}

/// A pending reply job now answers a later message too (`job.retriggered`): the message arrived while the job
/// waited (`QUEUE_MODE=collect`, or within the debounce window), so one turn answers both.
///
/// Written by the inbound decision that records the message, in the same transaction. The job's triggering
/// message becomes ``messageSeq`` (its history then holds every message collected), and it is not claimed before
/// ``notBefore`` when given (the debounce window restarts with each message).
public struct JobRetriggered: EventPayload {
    public static let eventType = "job.retriggered"

    /// The pending job.
    public var jobID: String
    /// The message it answers now (the newest collected).
    public var messageSeq: UInt64
    /// That message's provider id (the reply threads to it).
    public var replyToExternalID: String?
    /// Not claimable before this log time (`nil`: unchanged).
    public var notBefore: LogTimestamp?
    /// `collected` (it waited behind a running reply) or `debounced` (it came within the debounce window).
    public var reason: String
    /// How many messages the job answers now.
    public var collected: Int

    /// Creates a `job.retriggered` event.
    public init(
        jobID: String, messageSeq: UInt64, replyToExternalID: String?, notBefore: LogTimestamp?, reason: String,
        collected: Int
    ) {
        self.jobID = jobID
        self.messageSeq = messageSeq
        self.replyToExternalID = replyToExternalID
        self.notBefore = notBefore
        self.reason = reason
        self.collected = collected
    }
}
