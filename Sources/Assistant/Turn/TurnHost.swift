import Foundation

/// What the host decided about one tool call: run it, or refuse it with a reason the model reads
/// (`rejected by the user`, `approval expired`).
public enum ToolCallDecision: Sendable, Hashable {
    case run
    case refused(String)
}

/// One tool call of a turn, as the host sees it.
public struct TurnToolCall: Sendable, Hashable {
    /// The call as the model wrote it (its `id` is the model's, unique within the turn only).
    public var request: ToolCallRequest
    /// The model request that asked for it, from 0.
    public var round: Int
    /// Its position among the calls of that request, from 0.
    public var index: Int
    /// The tool's risk (`read` for a tool that does not exist: it will not run).
    public var risk: ToolRisk
    /// Whether the tool changes something, so the user must approve the call before it runs.
    public var needsApproval: Bool
    /// The logical call's key, stable across attempts of the same turn that make the same call (the turn's key,
    /// the round, the position, the tool and its arguments): the tool's ``ToolContext/callID``, from which
    /// side-effecting tools derive their idempotency key (Todoist's `X-Request-Id`).
    public var idempotencyKey: String

    public init(
        request: ToolCallRequest, round: Int, index: Int, risk: ToolRisk, needsApproval: Bool, idempotencyKey: String
    ) {
        self.request = request
        self.round = round
        self.index = index
        self.risk = risk
        self.needsApproval = needsApproval
        self.idempotencyKey = idempotencyKey
    }
}

/// A summary the turn wrote because the conversation no longer fit its budget.
public struct TurnSummary: Sendable, Hashable {
    /// The summary, folding in the previous one.
    public var text: String
    /// How many of the oldest messages of ``TurnInput/history`` it covers.
    public var coveredMessages: Int

    public init(text: String, coveredMessages: Int) {
        self.text = text
        self.coveredMessages = coveredMessages
    }
}

/// Where a turn reports what happens, and who decides whether a tool call runs. The core worker records each
/// report as an event; a host that throws (its claim was lost) stops the turn at once: nothing after the throw
/// runs, no tool included.
public protocol TurnHost: Sendable {
    /// A piece of the reply's text, in order.
    func delta(_ text: String) async throws
    /// The model asked for a tool: record it, ask for the user's approval when the call needs it, and decide.
    /// The tool runs only after this returns ``ToolCallDecision/run``.
    func toolCall(_ call: TurnToolCall) async throws -> ToolCallDecision
    /// The outcome of a call (run, failed or refused), before it goes back to the model.
    func toolResult(_ call: TurnToolCall, _ outcome: ToolOutcome) async throws
    /// The conversation was summarized (only when its history no longer fit the budget).
    func summarized(_ summary: TurnSummary) async throws
}
