import EventLog
/// A job decided to call a tool (`tool.call`).
///
/// Written by the core worker before the tool runs, fenced by ``jobToken``. A `tool.result` with the same
/// ``callID`` records the outcome; a call without a result did not finish (or its outcome was lost).
public struct ToolCall: EventPayload {
    public static let eventType = "tool.call"

    /// The call id, unique per call; also the key of its approval, if any.
    public var callID: String
    /// The job making the call.
    public var jobID: String
    /// The fencing token of the job claim the call is made under.
    public var jobToken: UInt64
    /// The conversation of the job.
    public var conversationID: String
    /// The tool's name, e.g. `schedule_task`.
    public var toolName: String
    /// The tool input as a JSON text.
    public var inputJSON: String
    /// The tool's risk level: `low`, `medium` or `high` (which levels need approval is tool policy).
    public var risk: String

    /// Creates a `tool.call` event.
    public init(
        callID: String, jobID: String, jobToken: UInt64, conversationID: String, toolName: String,
        inputJSON: String, risk: String
    ) {
        self.callID = callID
        self.jobID = jobID
        self.jobToken = jobToken
        self.conversationID = conversationID
        self.toolName = toolName
        self.inputJSON = inputJSON
        self.risk = risk
    }
}

/// The outcome of a tool call (`tool.result`): an output or an error.
///
/// Written by the core worker after the tool ran, fenced by ``jobToken``.
public struct ToolResult: EventPayload {
    public static let eventType = "tool.result"

    /// The call this result answers.
    public var callID: String
    /// The job that made the call.
    public var jobID: String
    /// The fencing token of the job claim.
    public var jobToken: UInt64
    /// The tool output as a JSON text, when the tool succeeded.
    public var outputJSON: String?
    /// The error description, when the tool failed, was rejected or its approval expired.
    public var error: String?

    /// Creates a `tool.result` event.
    public init(callID: String, jobID: String, jobToken: UInt64, outputJSON: String? = nil, error: String? = nil) {
        self.callID = callID
        self.jobID = jobID
        self.jobToken = jobToken
        self.outputJSON = outputJSON
        self.error = error
    }
}

/// A step of a tool call's approval (`tool.approval`).
///
/// `requested` is written by the core worker for a call that needs approval; `approved` or `rejected` by the
/// ingress path or web chat when the user answers; `expired` by a decider once ``expiresAt`` passed. Which
/// answer counts is decided by the Projections module. Approvals are keyed by ``callID``, so an answer resolves
/// one specific call.
public struct ToolApproval: EventPayload {
    public static let eventType = "tool.approval"

    /// The tool call being approved.
    public var callID: String
    /// The job that made the call.
    public var jobID: String
    /// The conversation of the job.
    public var conversationID: String
    /// The step: `requested`, `approved`, `rejected` or `expired`.
    public var decision: String
    /// Who decided (a contact id or web user id), for `approved` and `rejected`.
    public var decidedBy: String?
    /// When an unanswered request expires, set on `requested`.
    public var expiresAt: LogTimestamp?

    /// Creates a `tool.approval` event.
    public init(
        callID: String, jobID: String, conversationID: String, decision: String, decidedBy: String? = nil,
        expiresAt: LogTimestamp? = nil
    ) {
        self.callID = callID
        self.jobID = jobID
        self.conversationID = conversationID
        self.decision = decision
        self.decidedBy = decidedBy
        self.expiresAt = expiresAt
    }
}
