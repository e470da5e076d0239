import AsyncHTTPClient
import Logging

/// Why a model stopped.
public enum FinishReason: String, Sendable, Hashable, Codable {
    case stop
    case length
    case toolCalls = "tool_calls"
    case contentFilter = "content_filter"
    case functionCall = "function_call"
    /// A reason this library does not know (kept as `unknown`; the raw text is logged).
    case unknown

    /// Maps the wire value; anything unrecognised is `unknown`.
    public init(wire: String) {
        self = FinishReason(rawValue: wire) ?? .unknown
    }
}

/// Token counts a server reported for one completion.
public struct TokenUsage: Sendable, Hashable, Codable {
    public var promptTokens: Int
    public var completionTokens: Int
    public var totalTokens: Int

    public init(promptTokens: Int, completionTokens: Int, totalTokens: Int) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.totalTokens = totalTokens
    }
}

/// One event of a streamed completion, in the order the model produced it.
///
/// A stream yields `model` once (the model that answers, after any retries and fallbacks), then text deltas and
/// completed tool calls, then `finish` once, then `usage` when the server reported it; then it ends.
public enum ChatStreamEvent: Sendable, Hashable {
    /// The model answering this request (the primary, or a fallback when the primary failed before answering).
    case model(String)
    /// A fragment of the reply's text.
    case textDelta(String)
    /// A tool call, complete: its fragments joined by index and id.
    case toolCall(ToolCallRequest)
    /// The model finished, with its reason.
    case finish(FinishReason)
    /// Token usage, if the server reported it.
    case usage(TokenUsage)
}

/// A source of streamed chat completions: an OpenAI-compatible server, or the offline assistant.
public protocol ChatProvider: Sendable {
    /// A short name for logs and for the `modelUsed` of a reply.
    var name: String { get }

    /// Streams the completion of `request`. The stream throws a ``ChatProviderError`` when the provider fails;
    /// cancelling the consuming task cancels the request.
    func stream(_ request: ChatRequest) -> AsyncThrowingStream<ChatStreamEvent, any Error>
}

/// A whole completion, collected from a stream.
public struct ChatCompletion: Sendable, Hashable {
    public var model: String
    public var text: String
    public var toolCalls: [ToolCallRequest]
    public var finishReason: FinishReason?
    public var usage: TokenUsage?

    public init(
        model: String = "", text: String = "", toolCalls: [ToolCallRequest] = [], finishReason: FinishReason? = nil,
        usage: TokenUsage? = nil
    ) {
        self.model = model
        self.text = text
        self.toolCalls = toolCalls
        self.finishReason = finishReason
        self.usage = usage
    }
}

/// The provider the settings ask for: the OpenAI-compatible provider when `AI_BASE_URL` is set, the offline
/// assistant otherwise.
public func makeChatProvider(settings: ProviderSettings?, httpClient: HTTPClient, logger: Logger) -> any ChatProvider {
    guard let settings else { return OfflineAssistant() }
    return OpenAICompatibleProvider(settings: settings, httpClient: httpClient, logger: logger)
}

extension ChatProvider {
    /// Runs `request` and collects the whole completion.
    public func complete(_ request: ChatRequest) async throws -> ChatCompletion {
        var completion = ChatCompletion()
        for try await event in stream(request) {
            switch event {
            case .model(let model): completion.model = model
            case .textDelta(let text): completion.text += text
            case .toolCall(let call): completion.toolCalls.append(call)
            case .finish(let reason): completion.finishReason = reason
            case .usage(let usage): completion.usage = usage
            }
        }
        return completion
    }
}
