/// An approximate token count: a quarter of the characters (rounded up) plus 4 per message for the role and the
/// framing, as the original did (§5.6). It over-counts English a little and under-counts dense scripts and code;
/// the budget's shares leave room for that. No tokenizer is loaded.
public enum TokenEstimator {
    public static let perMessageOverhead = 4

    public static func estimate(_ text: String) -> Int {
        (text.count + 3) / 4
    }

    public static func estimate(_ message: ChatMessage) -> Int {
        var characters = message.content.count
        for call in message.toolCalls { characters += call.name.count + call.arguments.count + call.id.count }
        return (characters + 3) / 4 + perMessageOverhead
    }

    public static func estimate(_ messages: [ChatMessage]) -> Int {
        messages.reduce(0) { $0 + estimate($1) }
    }
}

/// How much of the model's context window a prompt may use.
public struct ContextBudget: Sendable, Hashable {
    /// The model's context window in tokens (`AI_CONTEXT_WINDOW`).
    public var window: Int
    /// Above this share of the window the conversation's older part is summarized (0.7 as in the original).
    public var compactAt: Double
    /// When summarizing, the newest messages that fit in this share of the window stay verbatim (0.3).
    public var keepRecent: Double

    public init(window: Int, compactAt: Double = 0.7, keepRecent: Double = 0.3) {
        self.window = window
        self.compactAt = compactAt
        self.keepRecent = keepRecent
    }
}

/// A prompt built within a budget, and whether the conversation needs a summary.
public struct PromptPlan: Sendable, Hashable {
    /// What to send: the system prompt, the current summary (if any) and the kept messages, oldest first.
    public var messages: [ChatMessage]
    /// The estimate of `messages`.
    public var estimatedTokens: Int
    /// Whether the older part should be summarized: the history did not fit under `compactAt`. The caller then
    /// writes a summary of ``toSummarize`` (folding in the current one) as an event, and later prompts start from
    /// it; a conversation whose history fits never gets one.
    public var summaryNeeded: Bool
    /// The oldest messages left out of this prompt, to fold into the next summary (empty when none is needed).
    public var toSummarize: [ChatMessage]
    /// Whether even the kept part is over the whole window (one huge message): the caller should refuse or cut it.
    public var overWindow: Bool
}

/// Builds prompts from a conversation within a ``ContextBudget``.
public enum PromptBuilder {
    /// Builds the prompt for a conversation.
    ///
    /// - Parameters:
    ///   - system: the system prompt.
    ///   - summary: the conversation's current summary, when one was written; `history` then holds only the
    ///     messages after it.
    ///   - history: the conversation's messages (after the summary), oldest first; the last is the newest turn.
    /// - Returns: all of it when it fits under `compactAt` of the window; otherwise the newest messages that fit in
    ///   `keepRecent` of it (at least the newest one; never starting with a tool result whose call was cut), with
    ///   the rest in ``PromptPlan/toSummarize``.
    public static func build(system: String, summary: String?, history: [ChatMessage], budget: ContextBudget)
        -> PromptPlan
    {
        var head = [ChatMessage.system(system)]
        if let summary, !summary.isEmpty { head.append(.system("[Conversation Summary] \(summary)")) }
        let headTokens = TokenEstimator.estimate(head)
        let historyTokens = TokenEstimator.estimate(history)
        let threshold = Int(Double(budget.window) * budget.compactAt)
        if headTokens + historyTokens <= threshold || history.count <= 1 {
            let total = headTokens + historyTokens
            return PromptPlan(
                messages: head + history, estimatedTokens: total, summaryNeeded: false, toSummarize: [],
                overWindow: total > budget.window)
        }
        let keepBudget = max(Int(Double(budget.window) * budget.keepRecent) - headTokens, 0)
        var start = history.count - 1
        var kept = TokenEstimator.estimate(history[start])
        while start > 0 {
            let next = TokenEstimator.estimate(history[start - 1])
            guard kept + next <= keepBudget else { break }
            kept += next
            start -= 1
        }
        // A tool result without the assistant message that called it is rejected by servers: cut before the call.
        while start < history.count - 1, history[start].role == .tool {
            kept -= TokenEstimator.estimate(history[start])
            start += 1
        }
        let total = headTokens + kept
        return PromptPlan(
            messages: head + history[start...], estimatedTokens: total, summaryNeeded: start > 0,
            toSummarize: Array(history[..<start]), overWindow: total > budget.window)
    }

    /// The request that asks a model for a summary of `messages`, folding in `previous` (the original's
    /// `[Conversation Summary]` paragraph).
    /// - Parameter maxCharacters: the transcript's size limit (the summarizing model's window too): past it, each
    ///   message is cut to its share, so one huge message cannot make the summary itself too long.
    public static func summaryRequest(
        previous: String?, messages: [ChatMessage], tier: ModelTier = .standard, maxCharacters: Int? = nil
    ) -> ChatRequest {
        var transcript = ""
        if let previous, !previous.isEmpty { transcript += "\(previousSummaryPrefix)\(previous)\n\n" }
        let said = messages.filter { $0.role != .system }
        let total = said.reduce(0) { $0 + $1.content.count }
        let share = maxCharacters.map { max(200, ($0 - transcript.count) / max(1, said.count)) }
        for message in said {
            var content = message.content
            if let share, total > maxCharacters ?? .max, content.count > share {
                content = String(content.prefix(share)) + " […]"
            }
            transcript += "\(message.role.rawValue): \(content)\n"
        }
        return ChatRequest(messages: [.system(summaryInstruction), .user(transcript)], tier: tier)
    }

    /// The system prompt of ``summaryRequest(previous:messages:tier:)``.
    public static let summaryInstruction =
        "Summarize the conversation below in one paragraph for your own later reference: facts, decisions, open "
        + "tasks and the user's preferences. Do not add anything that is not there."

    /// The prefix of the transcript's line that carries the previous summary.
    static let previousSummaryPrefix = "Earlier summary: "
}
