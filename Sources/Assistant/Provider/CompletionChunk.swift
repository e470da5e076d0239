import Foundation
import SwitchboardJSON

/// The wire shapes of an OpenAI-compatible streamed completion (`chat.completion.chunk`), decoding only what the
/// provider uses; unknown members are ignored.
struct CompletionChunk: Decodable, Sendable {
    struct Choice: Decodable, Sendable {
        var index: Int?
        var delta: Delta?
        var finishReason: String?

        enum CodingKeys: String, CodingKey {
            case index, delta
            case finishReason = "finish_reason"
        }
    }

    struct Delta: Decodable, Sendable {
        var content: String?
        var toolCalls: [ToolCallFragment]?

        enum CodingKeys: String, CodingKey {
            case content
            case toolCalls = "tool_calls"
        }
    }

    struct ToolCallFragment: Decodable, Sendable {
        struct Function: Decodable, Sendable {
            var name: String?
            var arguments: String?
        }

        var index: Int?
        var id: String?
        var function: Function?
    }

    struct Usage: Decodable, Sendable {
        var promptTokens: Int?
        var completionTokens: Int?
        var totalTokens: Int?

        enum CodingKeys: String, CodingKey {
            case promptTokens = "prompt_tokens"
            case completionTokens = "completion_tokens"
            case totalTokens = "total_tokens"
        }
    }

    var choices: [Choice]?
    var usage: Usage?
    var error: WireError?
}

/// An error body, in the shapes servers send it: `{"error":{"message":…,"type":…,"code":…}}` (OpenAI, vLLM,
/// llama.cpp, where `code` is a string or a number) or `{"error":"…"}` (Ollama's native wording).
struct WireError: Decodable, Sendable {
    var message: String
    var type: String?
    var code: String?

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
            message = text
            return
        }
        let object = try container.decode([String: JSONValue].self)
        message = object["message"]?.stringValue ?? "no message"
        type = object["type"]?.stringValue
        switch object["code"] {
        case .string(let text)?: code = text
        case let number?: code = number.intValue.map(String.init) ?? number.doubleValue.map { String(Int($0)) }
        case nil: code = nil
        }
    }

    /// Reads an error body (`{"error": …}`), `nil` when the body is not one.
    static func parse(_ body: String) -> WireError? {
        struct Envelope: Decodable { var error: WireError }
        return try? JSONDecoder().decode(Envelope.self, from: Data(body.utf8)).error
    }
}

/// Turns decoded chunks into ``ChatStreamEvent``s: text deltas pass through as they come; tool-call fragments are
/// joined by their `index`, and by `id` when a server reuses an index for a new call (some Ollama-compatible
/// servers send every parallel call at index 0); the joined calls are emitted, in order, when the choice finishes.
struct CompletionAccumulator: Sendable {
    private struct PendingCall: Sendable {
        var index: Int
        var id: String?
        var name = ""
        var arguments = ""
    }

    private var calls: [PendingCall] = []
    private(set) var finished = false

    /// The events `chunk` completes.
    mutating func accept(_ chunk: CompletionChunk) throws(ChatProviderError) -> [ChatStreamEvent] {
        if let error = chunk.error {
            let code = ProviderErrorClassifier.classify(
                status: nil, errorCode: error.code ?? error.type, message: error.message)
            throw ChatProviderError(code == .unknown ? .server : code, "error in stream: \(error.message)")
        }
        var events: [ChatStreamEvent] = []
        // One completion is asked for (n = 1): choice 0 is the reply.
        for choice in chunk.choices ?? [] where (choice.index ?? 0) == 0 {
            if let text = choice.delta?.content, !text.isEmpty { events.append(.textDelta(text)) }
            for fragment in choice.delta?.toolCalls ?? [] { join(fragment) }
            if let reason = choice.finishReason {
                events.append(contentsOf: try finish(FinishReason(wire: reason)))
            }
        }
        if let usage = chunk.usage {
            let prompt = usage.promptTokens ?? 0
            let completion = usage.completionTokens ?? 0
            events.append(
                .usage(
                    TokenUsage(
                        promptTokens: prompt, completionTokens: completion,
                        totalTokens: usage.totalTokens ?? prompt + completion)))
        }
        return events
    }

    /// The events left when the stream ends (`[DONE]`) without a finish reason: the pending tool calls and a finish.
    mutating func end() throws(ChatProviderError) -> [ChatStreamEvent] {
        guard !finished else { return [] }
        return try finish(calls.isEmpty ? .stop : .toolCalls)
    }

    private mutating func join(_ fragment: CompletionChunk.ToolCallFragment) {
        let index = fragment.index ?? 0
        let last = calls.lastIndex { $0.index == index }
        let startsNewCall: Bool
        if let last, let id = fragment.id, !id.isEmpty {
            startsNewCall = calls[last].id != nil && calls[last].id != id
        } else {
            startsNewCall = last == nil
        }
        if startsNewCall {
            calls.append(PendingCall(index: index))
        }
        let position = startsNewCall ? calls.count - 1 : last ?? calls.count - 1
        if let id = fragment.id, !id.isEmpty { calls[position].id = id }
        if let name = fragment.function?.name { calls[position].name += name }
        if let arguments = fragment.function?.arguments { calls[position].arguments += arguments }
    }

    private mutating func finish(_ reason: FinishReason) throws(ChatProviderError) -> [ChatStreamEvent] {
        guard !finished else { return [] }
        finished = true
        var events: [ChatStreamEvent] = []
        for (position, call) in calls.enumerated() {
            guard !call.name.isEmpty else {
                throw ChatProviderError(.malformedStream, "tool call at index \(call.index) has no function name")
            }
            let arguments = call.arguments.trimmingCharacters(in: .whitespacesAndNewlines)
            events.append(
                .toolCall(
                    ToolCallRequest(
                        id: call.id ?? "call_\(position)", name: call.name,
                        arguments: arguments.isEmpty ? "{}" : arguments)))
        }
        // Some servers (Ollama among them) say `stop` after tool calls: the calls decide.
        let reason = !calls.isEmpty && reason == .stop ? .toolCalls : reason
        calls.removeAll()
        events.append(.finish(reason))
        return events
    }
}
