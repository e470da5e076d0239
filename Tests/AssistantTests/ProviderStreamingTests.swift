import Assistant
import AsyncHTTPClient
import Foundation
import Logging
import Testing

/// The OpenAI-compatible provider against a fake server on 127.0.0.1 speaking the real wire format.
@Suite struct ProviderStreamingTests {
    static let key = "sk-test-secret-123"

    /// Runs `body` with a fresh fake server, a provider on it and the recorder of its waits.
    func withProvider(
        fallbacks: [String] = ["backup"], maxRetries: Int = 2, idleTimeout: Duration = .seconds(10),
        logger: Logger = quietLogger,
        _ body: @escaping @Sendable (FakeChatServer, OpenAICompatibleProvider, SleepRecorder) async throws -> Void
    ) async throws {
        let server = try await FakeChatServer.start()
        let settings = ProviderSettings(
            baseURL: server.baseURL, apiKey: Secret(Self.key), model: "main", fallbackModels: fallbacks,
            retry: RetryPolicy(
                maxRetries: maxRetries, baseDelay: .milliseconds(100), maxDelay: .seconds(30), jitter: 0.2),
            requestTimeout: .seconds(10), streamIdleTimeout: idleTimeout)
        let client = OpenAICompatibleProvider.makeHTTPClient(settings: settings)
        let sleeps = SleepRecorder()
        let provider = OpenAICompatibleProvider(
            settings: settings, httpClient: client, logger: logger, sleep: sleeps.sleep, jitter: { 0 })
        let result = await outcome {
            try await within(60, "the provider test") { try await body(server, provider, sleeps) }
        }
        try await client.shutdown()
        await server.stop()
        try result.get()
    }

    static let hello = ChatRequest(messages: [.system("You are helpful."), .user("Say hello")])

    static func collect(_ provider: some ChatProvider, _ request: ChatRequest = hello) async throws
        -> [ChatStreamEvent]
    {
        var events: [ChatStreamEvent] = []
        for try await event in provider.stream(request) { events.append(event) }
        return events
    }

    static func failure(_ provider: some ChatProvider, _ request: ChatRequest = hello) async
        -> (events: [ChatStreamEvent], error: ChatProviderError?)
    {
        var events: [ChatStreamEvent] = []
        do {
            for try await event in provider.stream(request) { events.append(event) }
            return (events, nil)
        } catch {
            return (events, error as? ChatProviderError)
        }
    }

    @Test func plainTextStreamsDeltasThenFinishThenUsage() async throws {
        try await withProvider { server, provider, sleeps in
            server.enqueue(
                .stream([
                    SSE.content("Hel", role: true), SSE.content("lo, "), SSE.content("world"), SSE.finish("stop"),
                    SSE.usage(prompt: 12, completion: 3), SSE.done,
                ]))
            let events = try await Self.collect(provider)
            #expect(
                events == [
                    .model("main"), .textDelta("Hel"), .textDelta("lo, "), .textDelta("world"), .finish(.stop),
                    .usage(TokenUsage(promptTokens: 12, completionTokens: 3, totalTokens: 15)),
                ])
            let request = try #require(server.received.first)
            #expect(request.authorization == "Bearer \(Self.key)")
            #expect(request.body["stream"] == .bool(true))
            #expect(request.body["stream_options"]?["include_usage"] == .bool(true))
            #expect(
                request.body["messages"] == [
                    ["role": "system", "content": "You are helpful."], ["role": "user", "content": "Say hello"],
                ])
            #expect(sleeps.all.isEmpty)
        }
    }

    @Test func toolCallFragmentsAreJoinedByIndexAndID() async throws {
        try await withProvider { server, provider, _ in
            // Two parallel calls interleaved by index, a third that reuses index 0 with a new id (as some
            // Ollama-compatible servers do), and an SSE line split across two writes.
            let split = SSE.toolFragment(index: 0, id: nil, name: nil, arguments: "ope/Lisbon\"}")
            let middle = split.index(split.startIndex, offsetBy: 25)
            server.enqueue(
                .stream([
                    SSE.toolFragment(index: 0, id: "call_a", name: "get_current_time", arguments: ""),
                    SSE.toolFragment(index: 0, id: nil, name: nil, arguments: "{\"time_zone\": \"Eur"),
                    SSE.toolFragment(index: 1, id: "call_b", name: "calculate", arguments: "{\"expression\":"),
                    String(split[..<middle]), String(split[middle...]),
                    SSE.toolFragment(index: 1, id: nil, name: nil, arguments: " \"17*3\"}"),
                    SSE.toolFragment(index: 0, id: "call_c", name: "todoist_list_tasks", arguments: "{}"),
                    SSE.finish("tool_calls"), SSE.done,
                ]))
            let tools = [CalculatorTool().definition, CurrentTimeTool().definition]
            let events = try await Self.collect(
                provider, ChatRequest(messages: [.user("time and 17*3?")], tools: tools))
            #expect(
                events == [
                    .model("main"),
                    .toolCall(
                        .init(id: "call_a", name: "get_current_time", arguments: #"{"time_zone": "Europe/Lisbon"}"#)),
                    .toolCall(.init(id: "call_b", name: "calculate", arguments: #"{"expression": "17*3"}"#)),
                    .toolCall(.init(id: "call_c", name: "todoist_list_tasks", arguments: "{}")),
                    .finish(.toolCalls),
                ])
            let sent = try #require(server.received.first?.body["tools"])
            #expect(
                sent == [
                    [
                        "type": "function",
                        "function": [
                            "name": "calculate", "description": .string(CalculatorTool().description),
                            "parameters": CalculatorTool().parameters,
                        ],
                    ],
                    [
                        "type": "function",
                        "function": [
                            "name": "get_current_time", "description": .string(CurrentTimeTool().description),
                            "parameters": CurrentTimeTool().parameters,
                        ],
                    ],
                ])
        }
    }

    @Test func toolResultsGoBackAsToolMessages() async throws {
        try await withProvider { server, provider, _ in
            server.enqueue(.stream([SSE.content("It is 51."), SSE.finish("stop"), SSE.done]))
            let request = ChatRequest(messages: [
                .user("17*3?"),
                .assistant(
                    "", toolCalls: [.init(id: "call_b", name: "calculate", arguments: #"{"expression":"17*3"}"#)]),
                .tool(callID: "call_b", "17*3 = 51"),
            ])
            _ = try await Self.collect(provider, request)
            let messages = try #require(server.received.first?.body["messages"])
            #expect(
                messages == [
                    ["role": "user", "content": "17*3?"],
                    [
                        "role": "assistant",
                        "tool_calls": [
                            [
                                "id": "call_b", "type": "function",
                                "function": ["name": "calculate", "arguments": #"{"expression":"17*3"}"#],
                            ]
                        ],
                    ],
                    ["role": "tool", "content": "17*3 = 51", "tool_call_id": "call_b"],
                ])
        }
    }

    @Test func anErrorMidStreamEndsTheStreamWithoutARetry() async throws {
        try await withProvider { server, provider, sleeps in
            server.enqueue(
                .stream([
                    SSE.content("Partial ", role: true),
                    SSE.data(#"{"error":{"message":"upstream overloaded","type":"server_error","code":null}}"#),
                ]))
            let (events, error) = await Self.failure(provider)
            #expect(events == [.model("main"), .textDelta("Partial ")])
            let failure = try #require(error)
            #expect(failure.code == .server)
            #expect(failure.message.contains("upstream overloaded"))
            #expect(failure.model == "main")
            // Part of the reply was out: no retry, no fallback (the consumer would see it twice).
            #expect(server.received.count == 1)
            #expect(sleeps.all.isEmpty)
        }
    }

    @Test func aRateLimitIsRetriedAfterRetryAfterThenSucceeds() async throws {
        let logs = LogRecorder()
        try await withProvider(logger: logs.logger) { server, provider, sleeps in
            server.enqueue(
                .status(
                    429,
                    body: #"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#,
                    headers: ["Retry-After": "2"]),
                .stream([SSE.content("ok"), SSE.finish("stop"), SSE.done]))
            let events = try await Self.collect(provider)
            #expect(events == [.model("main"), .textDelta("ok"), .finish(.stop)])
            #expect(server.received.map(\.model) == ["main", "main"])
            // The server asked for 2 s, more than the 100 ms backoff: the wait is the server's.
            #expect(sleeps.all == [.seconds(2)])
        }
        #expect(logs.all.contains { $0.contains("assistant provider retrying") && $0.contains("rate_limited") })
        #expect(!logs.all.contains { $0.contains(Self.key) })
    }

    @Test func serverErrorsBackOffExponentiallyThenFallBack() async throws {
        let logs = LogRecorder()
        try await withProvider(logger: logs.logger) { server, provider, sleeps in
            let overloaded = FakeChatServer.Reply.status(503, body: #"{"error":{"message":"overloaded"}}"#)
            server.enqueue(
                overloaded, overloaded, overloaded,
                .stream([SSE.content("from backup"), SSE.finish("stop"), SSE.done]))
            let events = try await Self.collect(provider)
            #expect(events == [.model("backup"), .textDelta("from backup"), .finish(.stop)])
            #expect(server.received.map(\.model) == ["main", "main", "main", "backup"])
            #expect(sleeps.all == [.milliseconds(100), .milliseconds(200)])
        }
        let fallback = try #require(logs.all.first { $0.hasPrefix("assistant provider falling back") })
        #expect(fallback.contains("backup") && fallback.contains("server"))
    }

    @Test func unauthorizedIsNeitherRetriedNorFallenBack() async throws {
        try await withProvider { server, provider, sleeps in
            server.enqueue(
                .status(
                    401,
                    body:
                        #"{"error":{"message":"Incorrect API key provided: \#(Self.key)","type":"invalid_request_error","code":"invalid_api_key"}}"#
                ))
            let (events, error) = await Self.failure(provider)
            #expect(events.isEmpty)
            let failure = try #require(error)
            #expect(failure.code == .auth)
            #expect(failure.status == 401)
            #expect(!failure.retryable)
            #expect(failure.message == "Incorrect API key provided: <redacted>")
            #expect(!failure.description.contains(Self.key))
            #expect(server.received.count == 1)
            #expect(sleeps.all.isEmpty)
        }
    }

    @Test func aSlowStreamDeliversEachDeltaAsItArrives() async throws {
        try await withProvider { server, provider, _ in
            let gate = Gate()
            server.enqueue(
                .gated(
                    [SSE.content("one "), SSE.content("two "), SSE.content("three"), SSE.finish("stop") + SSE.done],
                    gate))
            var iterator = provider.stream(Self.hello).makeAsyncIterator()
            var received: [ChatStreamEvent?] = []
            received.append(try await iterator.next())
            // Each delta arrives while the server holds the rest back: nothing is buffered to the end.
            received.append(try await iterator.next())
            #expect(received == [.model("main"), .textDelta("one ")])
            gate.open()
            received.append(try await iterator.next())
            #expect(received.last == .textDelta("two "))
            gate.open()
            received.append(try await iterator.next())
            #expect(received.last == .textDelta("three"))
            gate.open()
            received.append(try await iterator.next())
            received.append(try await iterator.next())
            #expect(received.suffix(2) == [.finish(.stop), nil])
        }
    }

    @Test func aStreamSilentLongerThanTheIdleTimeoutFailsAsTimeout() async throws {
        try await withProvider(fallbacks: [], maxRetries: 0, idleTimeout: .seconds(1)) { server, provider, _ in
            let gate = Gate()  // never opened
            server.enqueue(.gated([SSE.content("first "), SSE.content("never")], gate))
            let (events, error) = await Self.failure(provider)
            // The first chunk normally arrives well within the second; on a machine loaded enough to delay even the
            // response head past it, the same timeout comes before any event, which is just as right.
            #expect(events == [.model("main"), .textDelta("first ")] || events.isEmpty)
            #expect(error?.code == .timeout)
            #expect(error?.retryable == true)
            gate.close()
        }
    }

    @Test func malformedJSONInAChunkIsAClearError() async throws {
        try await withProvider(fallbacks: []) { server, provider, sleeps in
            server.enqueue(.stream([SSE.data(#"{"choices":[{"index":0,"delta":{"content":"x"#), SSE.done]))
            let (events, error) = await Self.failure(provider)
            #expect(events.isEmpty)
            let failure = try #require(error)
            #expect(failure.code == .malformedStream)
            #expect(failure.message.contains("not valid JSON"))
            #expect(failure.message.contains(#"{"choices""#))
            #expect(server.received.count == 1)
            #expect(sleeps.all.isEmpty)
        }
    }

    @Test func toolCallsFinishedWithStopAreReportedAsToolCalls() async throws {
        try await withProvider { server, provider, _ in
            server.enqueue(
                .stream([
                    SSE.toolFragment(index: 0, id: "call_1", name: "calculate", arguments: #"{"expression":"2+2"}"#),
                    SSE.finish("stop"), SSE.done,
                ]))
            let completion = try await provider.complete(ChatRequest(messages: [.user("2+2?")]))
            #expect(completion.model == "main")
            #expect(
                completion.toolCalls == [.init(id: "call_1", name: "calculate", arguments: #"{"expression":"2+2"}"#)])
            #expect(completion.finishReason == .toolCalls)
        }
    }

    @Test func cancellingTheConsumerEndsTheStream() async throws {
        try await withProvider { server, provider, _ in
            let gate = Gate()  // the rest never comes
            server.enqueue(.gated([SSE.content("first "), SSE.content("never")], gate))
            let (firsts, firstContinuation) = AsyncStream<ChatStreamEvent>.makeStream()
            let consumer = Task {
                var seen: [ChatStreamEvent] = []
                for try await event in provider.stream(Self.hello) {
                    seen.append(event)
                    if case .textDelta = event { firstContinuation.yield(event) }
                }
                return seen
            }
            var iterator = firsts.makeAsyncIterator()
            #expect(await iterator.next() == .textDelta("first "))
            consumer.cancel()
            // The consumer ends (by its cancellation, not a timeout) while the server still holds the rest back.
            let result = await consumer.result
            if case .success(let seen) = result { #expect(seen == [.model("main"), .textDelta("first ")]) }
            gate.close()
        }
    }

    @Test func anErrorBeforeAnyContentIsRetried() async throws {
        try await withProvider { server, provider, sleeps in
            server.enqueue(
                .stream([SSE.data(#"{"error":{"message":"model is loading","type":"server_error"}}"#)]),
                .stream([SSE.content("ready"), SSE.finish("stop"), SSE.done]))
            let events = try await Self.collect(provider)
            #expect(events == [.model("main"), .textDelta("ready"), .finish(.stop)])
            #expect(server.received.count == 2)
            #expect(sleeps.all == [.milliseconds(100)])
        }
    }

    @Test func aStreamCutBeforeDoneIsANetworkFailure() async throws {
        try await withProvider(fallbacks: [], maxRetries: 1) { server, provider, sleeps in
            // Cut before anything was said: retried. Cut after text went out: the error ends the stream.
            server.enqueue(.stream([": nothing yet\n\n"]), .stream([SSE.content("half a rep")]))
            let (events, error) = await Self.failure(provider)
            #expect(events == [.model("main"), .textDelta("half a rep")])
            #expect(error?.code == .network)
            #expect(error?.message == "the stream ended before [DONE]")
            #expect(server.received.count == 2)
            #expect(sleeps.all.count == 1)
        }
    }

    @Test func aJSONAnswerToAStreamingRequestIsNotAStream() async throws {
        try await withProvider(fallbacks: []) { server, provider, _ in
            server.enqueue(
                .status(200, body: #"{"id":"x","object":"chat.completion","choices":[{"message":{"content":"hi"}}]}"#))
            let (_, error) = await Self.failure(provider)
            #expect(error?.code == .malformedStream)
            #expect(error?.message.hasPrefix("the server answered with JSON instead of an event stream") == true)
            #expect(server.received.count == 1)
        }
    }

    @Test func withoutSettingsTheOfflineAssistantAnswers() async throws {
        let http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
        let offline = makeChatProvider(settings: nil, httpClient: http, logger: quietLogger)
        let settings = ProviderSettings(baseURL: "http://127.0.0.1:1/v1", model: "m")
        let online = makeChatProvider(settings: settings, httpClient: http, logger: quietLogger)
        try await http.shutdown()
        #expect(offline.name == "offline")
        #expect(online.name == "openai-compatible")
        #expect(ReplyText.final("  \n ") == ReplyText.emptyFallback)
        #expect(ReplyText.final(" Hello!\n") == "Hello!")
    }

    @Test func theLiteTierAsksTheLiteModelFirst() async throws {
        let settings = ProviderSettings(
            baseURL: "http://127.0.0.1:1/v1", model: "standard", liteModel: "lite", fallbackModels: ["power", "lite"])
        #expect(settings.models(for: .lite) == ["lite", "standard", "power"])
        #expect(settings.models(for: .standard) == ["standard", "power", "lite"])
    }

    @Test func aRefusedConnectionIsANetworkErrorAndRetryable() async throws {
        // Port 1 on loopback: nothing listens there, and no other test's server can take it (a port freed by a
        // stopped server could be bound again by one starting in parallel).
        let settings = ProviderSettings(
            baseURL: "http://127.0.0.1:1/v1", model: "main",
            retry: RetryPolicy(maxRetries: 1, baseDelay: .milliseconds(10)),
            // A refused connection fails at once; the timeout only bounds the test (500 ms was hit first under load).
            requestTimeout: .seconds(10))
        // The client as `makeHTTPClient` builds it, but failing each attempt when the connection is refused. By
        // default AsyncHTTPClient retries a refused connection inside one attempt until the connect timeout (37 s
        // for this test's two attempts), and a retry still connecting at that moment ends as `connectTimeout`.
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(10))
        configuration.connectionPool.retryConnectionEstablishment = false
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
        let sleeps = SleepRecorder()
        let provider = OpenAICompatibleProvider(
            settings: settings, httpClient: client, logger: quietLogger, sleep: sleeps.sleep, jitter: { 0 })
        let (_, error) = try await within(60, "a refused connection") { await Self.failure(provider) }
        try await client.shutdown()
        #expect(error?.code == .network)
        #expect(sleeps.all.count == 1)
    }
}
