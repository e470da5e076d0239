import Foundation
import Logging
import SwitchboardJSON

/// What one reply is made from.
public struct TurnInput: Sendable, Hashable {
    /// The system prompt.
    public var system: String
    /// The conversation's stored summary, when one was written; ``history`` then holds only the messages after it.
    public var summary: String?
    /// The conversation's messages after the summary, oldest first; the last is the message being answered.
    public var history: [ChatMessage]
    /// A key stable across attempts of this reply (the job id): the tool calls' idempotency keys derive from it.
    public var key: String
    /// The model tier to answer with.
    public var tier: ModelTier

    public init(
        system: String, summary: String? = nil, history: [ChatMessage], key: String, tier: ModelTier = .standard
    ) {
        self.system = system
        self.summary = summary
        self.history = history
        self.key = key
        self.tier = tier
    }
}

/// The limits of one turn.
public struct TurnSettings: Sendable, Hashable {
    /// Model requests answered with tool calls that the turn runs; the request after the last round offers no
    /// tools, so the model has to answer in text (default 4).
    public var maxToolRounds: Int
    /// Upper bound on each reply's tokens (default 2 048).
    public var maxTokens: Int?
    /// Sampling temperature (default 0.7).
    public var temperature: Double?
    /// The prompt's budget (`AI_CONTEXT_WINDOW`).
    public var budget: ContextBudget
    /// The tier the summary is written with (default lite: a summary does not need the standard model).
    public var summaryTier: ModelTier
    /// How long a summary may take before the reply goes on without it (default 20 s): a summary that fails or
    /// hangs never stalls the conversation.
    public var summaryTimeout: Duration

    public init(
        maxToolRounds: Int = 4, maxTokens: Int? = 2_048, temperature: Double? = 0.7,
        budget: ContextBudget = ContextBudget(window: 200_000), summaryTier: ModelTier = .lite,
        summaryTimeout: Duration = .seconds(20)
    ) {
        self.maxToolRounds = max(0, maxToolRounds)
        self.maxTokens = maxTokens
        self.temperature = temperature
        self.budget = budget
        self.summaryTier = summaryTier
        self.summaryTimeout = summaryTimeout
    }
}

/// What a turn produced.
public struct TurnResult: Sendable, Hashable {
    /// The reply to send: the model's text over every round, trimmed, or ``ReplyText/emptyFallback``.
    public var text: String
    /// The model that wrote the last part of the reply (after retries and fallbacks), or the provider's name.
    public var modelUsed: String
    /// Why the model stopped the last time.
    public var finishReason: FinishReason
    /// The reply is complete as far as it goes but was cut at the token limit (`length`).
    public var truncated: Bool
    /// Tool calls made (run or refused).
    public var toolCalls: Int
    /// Model requests made for the reply (the summary's not counted).
    public var requests: Int
    /// The tokens the server reported over every request, when it reported any.
    public var usage: TokenUsage?
}

/// One reply of the assistant: the prompt within its budget (summarizing when, and only when, the history no
/// longer fits), the model's stream reported delta by delta, and the tool calls it asks for — each decided by the
/// host before it runs, its result sent back to the model — for at most ``TurnSettings/maxToolRounds`` rounds.
///
/// Knows no event or log: the host records what it is told, and stops the turn by throwing.
public struct AssistantTurn: Sendable {
    public let provider: any ChatProvider
    public let tools: ToolRegistry
    public let settings: TurnSettings
    private let logger: Logger
    private let now: @Sendable () -> Date

    /// - Parameter now: the time tools see (the wiring passes the log clock).
    public init(
        provider: any ChatProvider, tools: ToolRegistry, settings: TurnSettings = TurnSettings(), logger: Logger,
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.provider = provider
        self.tools = tools
        self.settings = settings
        self.logger = logger
        self.now = now
    }

    /// Runs the turn.
    /// - Throws: a ``ChatProviderError`` when the model fails (the text streamed so far stays reported), whatever
    ///   the host throws, or `CancellationError`.
    public func run(_ input: TurnInput, host: some TurnHost) async throws -> TurnResult {
        var messages = try await prompt(input, host: host)
        // One message larger than the model's whole window: no request can hold it. Say so, as the reply.
        if let newest = input.history.last,
            TokenEstimator.estimate([ChatMessage.system(input.system), newest]) > settings.budget.window
        {
            return try await tooLong(host: host)
        }
        /// Set once a request was refused as too long and retried with the newest message alone.
        var narrowed = false
        var text = ""
        var model = provider.name
        var finish = FinishReason.stop
        var usage: TokenUsage?
        var callCount = 0
        var round = 0
        while true {
            try Task.checkCancellation()
            let offerTools = round < settings.maxToolRounds && !tools.tools.isEmpty
            let request = ChatRequest(
                messages: messages, tools: offerTools ? tools.definitions : [], tier: input.tier,
                maxTokens: settings.maxTokens, temperature: settings.temperature)
            // A later round's text is a new paragraph of the same message.
            var separator = text.isEmpty || text.hasSuffix("\n") ? "" : "\n\n"
            var roundText = ""
            var calls: [ToolCallRequest] = []
            var roundFinish: FinishReason?
            do {
                for try await event in provider.stream(request) {
                    switch event {
                    case .model(let name):
                        model = name
                    case .textDelta(let delta):
                        guard !delta.isEmpty else { continue }
                        let piece = separator + delta
                        separator = ""
                        roundText += delta
                        text += piece
                        try await host.delta(piece)
                    case .toolCall(let call):
                        calls.append(call)
                    case .finish(let reason):
                        roundFinish = reason
                    case .usage(let reported):
                        usage = Self.adding(usage, reported)
                    }
                }
            } catch let error as ChatProviderError where error.code == .contextTooLong && round == 0 && text.isEmpty {
                // The estimate was short (a tokenizer can count twice what it guesses): the newest message alone,
                // once; when even that does not fit, the reply says so instead of failing.
                logger.warning("assistant prompt over the model's window", metadata: ["error": "\(error)"])
                guard !narrowed, let newest = input.history.last, messages.count > 2 else {
                    return try await tooLong(host: host)
                }
                narrowed = true
                messages = [.system(input.system), newest]
                continue
            }
            finish = roundFinish ?? .stop
            // A reply cut at the token limit is finished as it stands: its tool calls may be cut too.
            guard !calls.isEmpty, offerTools, finish != .length else {
                if !calls.isEmpty {
                    logger.info(
                        "assistant turn ignored tool calls",
                        metadata: ["turn.round": "\(round)", "turn.tool_calls": "\(calls.count)"])
                }
                break
            }
            messages.append(.assistant(roundText, toolCalls: calls))
            for (index, call) in calls.enumerated() {
                try Task.checkCancellation()
                let outcome = try await runTool(call, round: round, index: index, key: input.key, host: host)
                messages.append(.tool(callID: call.id, outcome.content))
                callCount += 1
            }
            round += 1
        }
        if finish == .length {
            logger.info("assistant turn truncated", metadata: ["turn.model": "\(model)"])
        }
        return TurnResult(
            text: ReplyText.final(text), modelUsed: model, finishReason: finish, truncated: finish == .length,
            toolCalls: callCount, requests: round + 1, usage: usage)
    }

    /// The completion of `request`, or a timeout error after `limit` (the request is cancelled).
    private func completeWithin(_ limit: Duration, _ request: ChatRequest) async throws -> String {
        try await withThrowingTaskGroup(of: String?.self) { group in
            group.addTask { try await provider.complete(request).text }
            group.addTask {
                try await Task.sleep(for: limit)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let text = first else {
                throw ChatProviderError(.timeout, "the summary took longer than \(limit)")
            }
            return text
        }
    }

    /// The reply when the message cannot fit the model's window, as a reply (not an error).
    private func tooLong(host: some TurnHost) async throws -> TurnResult {
        let window = settings.budget.window.formatted(.number.grouping(.automatic))
        let text =
            "This message is too long for the model that answers here: it reads at most about \(window) tokens "
            + "at a time. Send a shorter message, or split it into parts."
        try await host.delta(text)
        logger.info("assistant message over the model's window", metadata: ["turn.window": "\(settings.budget.window)"])
        return TurnResult(
            text: text, modelUsed: provider.name, finishReason: .stop, truncated: false, toolCalls: 0, requests: 0,
            usage: nil)
    }

    /// The prompt's messages; summarizes the oldest part first when the budget requires it.
    private func prompt(_ input: TurnInput, host: some TurnHost) async throws -> [ChatMessage] {
        let plan = PromptBuilder.build(
            system: input.system, summary: input.summary, history: input.history, budget: settings.budget)
        guard plan.summaryNeeded else { return plan.messages }
        let request = PromptBuilder.summaryRequest(
            previous: input.summary, messages: plan.toSummarize, tier: settings.summaryTier,
            maxCharacters: settings.budget.window * 2)
        let summary: String
        do {
            summary = try await completeWithin(settings.summaryTimeout, request)
                .trimmingCharacters(in: .whitespacesAndNewlines)
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            // The reply goes on with the newest messages (and the previous summary); the next turn tries again.
            logger.warning("assistant summary failed", metadata: ["error": "\(error)"])
            return plan.messages
        }
        guard !summary.isEmpty else { return plan.messages }
        try await host.summarized(TurnSummary(text: summary, coveredMessages: plan.toSummarize.count))
        logger.info(
            "assistant conversation summarized", metadata: ["turn.summarized_messages": "\(plan.toSummarize.count)"])
        return [.system(input.system), .system("[Conversation Summary] \(summary)")]
            + input.history.dropFirst(plan.toSummarize.count)
    }

    private func runTool(_ request: ToolCallRequest, round: Int, index: Int, key: String, host: some TurnHost)
        async throws -> ToolOutcome
    {
        let risk = tools.tool(named: request.name)?.risk ?? .read
        let arguments = JSONValue(parsing: request.arguments)?.jsonText ?? request.arguments
        let call = TurnToolCall(
            request: request, round: round, index: index, risk: risk, needsApproval: risk.requiresApproval,
            idempotencyKey: "\(key)|\(round)|\(index)|\(request.name)|\(arguments)")
        let outcome: ToolOutcome
        switch try await host.toolCall(call) {
        case .run:
            outcome = await tools.run(
                request, context: ToolContext(callID: call.idempotencyKey, now: now(), logger: logger), approved: true)
        case .refused(let reason):
            outcome = ToolOutcome(
                callID: request.id, name: request.name, content: "Error: \(reason)",
                error: ToolError(.notApproved, reason))
        }
        try await host.toolResult(call, outcome)
        return outcome
    }

    private static func adding(_ total: TokenUsage?, _ more: TokenUsage) -> TokenUsage {
        guard let total else { return more }
        return TokenUsage(
            promptTokens: total.promptTokens + more.promptTokens,
            completionTokens: total.completionTokens + more.completionTokens,
            totalTokens: total.totalTokens + more.totalTokens)
    }

    /// The default system prompt; `channel` (`whatsapp`, `telegram`, `web`) shapes the style.
    public static func systemPrompt(channel: String?) -> String {
        var prompt =
            "You are Switchboard, a personal assistant. Answer helpfully and briefly. Use the tools when they help "
            + "(the time, date arithmetic, exact arithmetic, the user's Todoist tasks when connected); tools that "
            + "change something ask the user to approve first, and a rejected or expired call did not happen. "
            + "Never claim to have done something a tool result does not confirm."
        switch channel {
        case "whatsapp", "telegram":
            prompt += " You are writing in a chat app: plain text, short paragraphs, no tables."
        default:
            prompt += " Markdown is rendered."
        }
        return prompt
    }
}

extension ToolRegistry {
    /// The tools the assistant offers: the time, date arithmetic and the calculator, and the Todoist tools when a
    /// client (a token) is there.
    public static func standard(todoist: TodoistClient?, timeZone: TimeZone = TimeZone(identifier: "UTC")!)
        -> ToolRegistry
    {
        var tools: [any Tool] = [CurrentTimeTool(defaultTimeZone: timeZone), DateMathTool(), CalculatorTool()]
        if let todoist { tools += TodoistTools.all(client: todoist) }
        return ToolRegistry(tools)
    }
}
