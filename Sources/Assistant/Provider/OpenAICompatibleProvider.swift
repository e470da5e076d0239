import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import SwitchboardJSON

/// A ``ChatProvider`` over an OpenAI-compatible `POST {AI_BASE_URL}/chat/completions` with `"stream": true`
/// (OpenAI, llama.cpp's `llama-server`, Ollama's `/v1`, vLLM).
///
/// Retries and fallback: a retryable failure (``ChatProviderError/retryable``) is retried up to
/// `settings.retry.maxRetries` times with exponential backoff and jitter, honouring Retry-After; then, and after a
/// failure that another model may not have (a rejected request, a context too long, a malformed stream), the next
/// model of ``ProviderSettings/models(for:)`` is tried. `auth`, `billing` and `content_filter` end the request:
/// another model on the same key fails the same way. Retries and fallbacks happen only **before the first event**
/// of the reply was yielded: a stream that fails midway ends with its error, so the consumer never sees a reply
/// twice. The provider only streams; it never runs a tool, so retrying never repeats a side effect.
public struct OpenAICompatibleProvider: ChatProvider {
    public let settings: ProviderSettings
    private let client: HTTPClient
    private let logger: Logger
    private let sleep: @Sendable (Duration) async throws -> Void
    private let jitter: @Sendable () -> Double

    public var name: String { "openai-compatible" }

    /// - Parameters:
    ///   - httpClient: the client to send with; ``makeHTTPClient(settings:)`` builds one with the settings'
    ///     timeouts (its owner shuts it down).
    ///   - sleep: waits between retries (tests record the waits instead).
    ///   - jitter: a random fraction in 0...1 for the backoff's jitter.
    public init(
        settings: ProviderSettings, httpClient: HTTPClient, logger: Logger,
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) },
        jitter: @escaping @Sendable () -> Double = { Double.random(in: 0...1) }
    ) {
        self.settings = settings
        self.client = httpClient
        self.logger = logger
        self.sleep = sleep
        self.jitter = jitter
    }

    /// A client whose connect timeout is the settings' request timeout and whose read timeout (the longest silence
    /// between two reads) is the stream idle timeout. The caller owns it and shuts it down.
    public static func makeHTTPClient(settings: ProviderSettings) -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(
            connect: settings.requestTimeout.timeAmount, read: settings.streamIdleTimeout.timeAmount)
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    public func stream(_ request: ChatRequest) -> AsyncThrowingStream<ChatStreamEvent, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    try await run(request, continuation: continuation)
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    private func run(
        _ request: ChatRequest, continuation: AsyncThrowingStream<ChatStreamEvent, any Error>.Continuation
    ) async throws {
        let models = settings.models(for: request.tier)
        var lastError = ChatProviderError(.unknown, "no model configured")
        for (position, model) in models.enumerated() {
            if position > 0 {
                logger.info(
                    "assistant provider falling back",
                    metadata: [
                        "provider.model": "\(model)", "provider.failed_model": "\(models[position - 1])",
                        "provider.error.code": "\(lastError.code.rawValue)",
                    ])
            }
            var retry = 0
            while true {
                try Task.checkCancellation()
                var yielded = false
                do {
                    try await attempt(request, model: model) { event in
                        if !yielded {
                            yielded = true
                            continuation.yield(.model(model))
                        }
                        continuation.yield(event)
                    }
                    return
                } catch let error as ChatProviderError {
                    var error = error
                    error.model = model
                    // A server may echo the key in its error text; it goes no further.
                    if let key = settings.apiKey?.reveal(), !key.isEmpty {
                        error.message = error.message.replacingOccurrences(of: key, with: "<redacted>")
                    }
                    // Part of the reply is out: trying again would show it twice.
                    if yielded { throw error }
                    lastError = error
                    guard error.retryable, retry < settings.retry.maxRetries else { break }
                    let wait = settings.retry.delay(
                        retry: retry, retryAfter: error.retryAfter, jitterFraction: jitter())
                    logger.info(
                        "assistant provider retrying",
                        metadata: [
                            "provider.model": "\(model)", "provider.error.code": "\(error.code.rawValue)",
                            "provider.retry": "\(retry + 1)", "provider.delay_ms": "\(wait.wholeMilliseconds)",
                        ])
                    try await sleep(wait)
                    retry += 1
                }
            }
            guard lastError.code.triesFallback else { throw lastError }
        }
        throw lastError
    }

    /// One request to one model; `emit` gets the events as they are parsed.
    private func attempt(
        _ request: ChatRequest, model: String, emit: (ChatStreamEvent) -> Void
    ) async throws {
        var http = HTTPClientRequest(url: settings.baseURL + "/chat/completions")
        http.method = .POST
        http.headers.add(name: "Content-Type", value: "application/json")
        http.headers.add(name: "Accept", value: "text/event-stream")
        if let key = settings.apiKey { http.headers.add(name: "Authorization", value: "Bearer \(key.reveal())") }
        let body: Data
        do {
            body = try JSONEncoder().encode(WireRequest(request, model: model, includeUsage: settings.includeUsage))
        } catch {
            throw ChatProviderError(.badRequest, "the request could not be encoded: \(error)")
        }
        http.body = .bytes(ByteBuffer(bytes: body))

        let response: HTTPClientResponse
        do {
            response = try await client.execute(http, timeout: settings.requestTimeout.timeAmount, logger: logger)
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw ChatProviderError(transportErrorCode(error), "request failed: \(error)")
        }
        guard response.status == .ok else {
            let text: String
            do {
                text = String(buffer: try await response.body.collect(upTo: 64 << 10))
            } catch {
                text = ""
            }
            let wire = WireError.parse(text)
            let message = wire?.message ?? (text.isEmpty ? response.status.reasonPhrase : String(text.prefix(500)))
            let code = ProviderErrorClassifier.classify(
                status: Int(response.status.code), errorCode: wire?.code ?? wire?.type, message: message)
            throw ChatProviderError(
                code, message, status: Int(response.status.code), retryAfter: parseRetryAfter(response.headers))
        }
        // A JSON answer to a streaming request is an error some proxies send with 200, or a server that ignored
        // `"stream": true`: either way not a stream.
        if let type = response.headers.first(name: "content-type")?.lowercased(), type.contains("application/json") {
            let text = String(buffer: (try? await response.body.collect(upTo: 64 << 10)) ?? ByteBuffer())
            if let wire = WireError.parse(text) {
                let code = ProviderErrorClassifier.classify(
                    status: nil, errorCode: wire.code ?? wire.type, message: wire.message)
                throw ChatProviderError(code == .unknown ? .server : code, wire.message, status: 200)
            }
            throw ChatProviderError(
                .malformedStream, "the server answered with JSON instead of an event stream: \(text.prefix(200))",
                status: 200)
        }

        var parser = ServerSentEventParser()
        var accumulator = CompletionAccumulator()
        let decoder = JSONDecoder()
        var sawDone = false
        func handle(_ event: ServerSentEvent) throws {
            let data = event.data.trimmingCharacters(in: .whitespaces)
            if data.hasPrefix("[DONE]") {
                sawDone = true
                return
            }
            let chunk: CompletionChunk
            do {
                chunk = try decoder.decode(CompletionChunk.self, from: Data(data.utf8))
            } catch {
                throw ChatProviderError(.malformedStream, "a stream chunk is not valid JSON: \(data.prefix(200))")
            }
            for event in try accumulator.accept(chunk) { emit(event) }
        }
        do {
            for try await buffer in response.body {
                let events: [ServerSentEvent]
                do {
                    events = try parser.feed(buffer.readableBytesView)
                } catch {
                    throw ChatProviderError(.malformedStream, "a stream line exceeds \(parser.maxLineBytes) bytes")
                }
                for event in events {
                    try handle(event)
                    if sawDone { break }
                }
                if sawDone { break }
            }
            if !sawDone, let last = parser.finish() { try handle(last) }
        } catch let error as ChatProviderError {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw ChatProviderError(transportErrorCode(error), "the stream broke: \(error)")
        }
        guard sawDone || accumulator.finished else {
            throw ChatProviderError(.network, "the stream ended before [DONE]")
        }
        for event in try accumulator.end() { emit(event) }
    }
}

extension ChatProviderError.Code {
    /// Whether another model may succeed where this failure happened: yes after retryable failures (retries spent),
    /// a rejected request (an unknown model), a context too long, a malformed stream; not after `auth`, `billing`
    /// or `content_filter`.
    public var triesFallback: Bool {
        switch self {
        case .auth, .billing, .contentFilter: false
        case .rateLimited, .server, .timeout, .network, .badRequest, .contextTooLong, .malformedStream, .unknown: true
        }
    }
}

/// The JSON body of a chat completion request.
struct WireRequest: Encodable {
    struct StreamOptions: Encodable {
        var includeUsage: Bool
        enum CodingKeys: String, CodingKey { case includeUsage = "include_usage" }
    }

    struct Message: Encodable {
        var role: String
        var content: String?
        var toolCalls: [ToolCall]?
        var toolCallID: String?

        enum CodingKeys: String, CodingKey {
            case role, content
            case toolCalls = "tool_calls"
            case toolCallID = "tool_call_id"
        }
    }

    struct ToolCall: Encodable {
        struct Function: Encodable {
            var name: String
            var arguments: String
        }
        var id: String
        var type = "function"
        var function: Function
    }

    struct Tool: Encodable {
        struct Function: Encodable {
            var name: String
            var description: String
            var parameters: JSONValue
        }
        var type = "function"
        var function: Function
    }

    var model: String
    var messages: [Message]
    var stream = true
    var streamOptions: StreamOptions?
    var tools: [Tool]?
    var maxTokens: Int?
    var temperature: Double?

    enum CodingKeys: String, CodingKey {
        case model, messages, stream, tools, temperature
        case streamOptions = "stream_options"
        case maxTokens = "max_tokens"
    }

    init(_ request: ChatRequest, model: String, includeUsage: Bool) {
        self.model = model
        messages = request.messages.map { message in
            Message(
                role: message.role.rawValue,
                content: message.content.isEmpty && !message.toolCalls.isEmpty ? nil : message.content,
                toolCalls: message.toolCalls.isEmpty
                    ? nil
                    : message.toolCalls.map {
                        ToolCall(id: $0.id, function: .init(name: $0.name, arguments: $0.arguments))
                    },
                toolCallID: message.toolCallID)
        }
        streamOptions = includeUsage ? StreamOptions(includeUsage: true) : nil
        tools =
            request.tools.isEmpty
            ? nil
            : request.tools.map {
                Tool(function: .init(name: $0.name, description: $0.description, parameters: $0.parameters))
            }
        maxTokens = request.maxTokens
        temperature = request.temperature
    }
}
