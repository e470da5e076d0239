import Assistant
import Foundation
import Testing

@Suite struct ServerSentEventParserTests {
    static let stream =
        ": keep-alive comment\r\n"
        + "data: {\"a\":1}\r\n\r\n"
        + "event: note\ndata: line one\ndata:line two\n\n"
        + "data: caf\u{E9} \u{1F600}\rid: 7\rretry: 10\r\r"
        + "data: [DONE]\n\n"

    static let expected = [
        ServerSentEvent(data: "{\"a\":1}"),
        ServerSentEvent(event: "note", data: "line one\nline two"),
        ServerSentEvent(data: "caf\u{E9} \u{1F600}"),
        ServerSentEvent(data: "[DONE]"),
    ]

    func parse(_ chunks: [[UInt8]]) throws -> [ServerSentEvent] {
        var parser = ServerSentEventParser()
        var events: [ServerSentEvent] = []
        for chunk in chunks { events += try parser.feed(chunk) }
        if let last = parser.finish() { events.append(last) }
        return events
    }

    @Test func parsesTheWholeStreamAtOnce() throws {
        #expect(try parse([Array(Self.stream.utf8)]) == Self.expected)
    }

    @Test func parsesTheStreamOneByteAtATime() throws {
        // Splits every CRLF and the multi-byte characters too.
        #expect(try parse(Array(Self.stream.utf8).map { [$0] }) == Self.expected)
    }

    @Test(arguments: [2, 3, 5, 7, 11, 13])
    func parsesTheStreamInChunksOfAnySize(size: Int) throws {
        let bytes = Array(Self.stream.utf8)
        let chunks = stride(from: 0, to: bytes.count, by: size).map { Array(bytes[$0..<min($0 + size, bytes.count)]) }
        #expect(try parse(chunks) == Self.expected)
    }

    @Test func aLastEventWithoutItsBlankLineIsDispatchedAtTheEnd() throws {
        #expect(try parse([Array("data: a\n\ndata: [DONE]".utf8)]) == [.init(data: "a"), .init(data: "[DONE]")])
    }

    @Test func aLineLongerThanTheLimitIsRefused() throws {
        var parser = ServerSentEventParser(maxLineBytes: 8)
        #expect(throws: ServerSentEventParser.LineTooLong.self) { try parser.feed(Array("data: 0123456789".utf8)) }
    }
}

@Suite struct ProviderErrorClassificationTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var status: Int?
        var code: String?
        var message: String
        var expected: ChatProviderError.Code
        var testDescription: String { "\(status.map(String.init) ?? "-") \(message) -> \(expected)" }
    }

    static let cases: [Case] = [
        Case(status: 429, message: "slow down", expected: .rateLimited),
        Case(status: nil, message: "Resource_exhausted: quota exceeded", expected: .rateLimited),
        Case(status: 401, code: "invalid_api_key", message: "Incorrect API key", expected: .auth),
        Case(status: 403, message: "nope", expected: .auth),
        Case(status: 402, message: "Payment Required", expected: .billing),
        Case(status: 400, message: "messages: field required", expected: .badRequest),
        Case(status: 404, message: "model 'x' not found", expected: .badRequest),
        Case(
            status: 400, code: "context_length_exceeded", message: "This model's maximum context length is 8192",
            expected: .contextTooLong),
        Case(status: 400, message: "the request exceeds the available context size", expected: .contextTooLong),
        Case(status: 500, message: "Internal Server Error", expected: .server),
        Case(status: 503, message: "", expected: .server),
        Case(status: nil, message: "The server is overloaded", expected: .server),
        Case(status: 408, message: "", expected: .timeout),
        Case(status: nil, message: "deadline exceeded", expected: .timeout),
        Case(status: nil, message: "ECONNRESET", expected: .network),
        Case(status: nil, message: "blocked by safety system", expected: .contentFilter),
        Case(status: nil, message: "something odd", expected: .unknown),
    ]

    @Test(arguments: cases)
    func classifies(_ test: Case) {
        #expect(
            ProviderErrorClassifier.classify(status: test.status, errorCode: test.code, message: test.message)
                == test.expected)
    }

    @Test func onlyTransientFailuresAreRetryable() {
        let retryable: Set<ChatProviderError.Code> = [.rateLimited, .server, .timeout, .network]
        let all: [ChatProviderError.Code] = [
            .rateLimited, .auth, .billing, .badRequest, .contextTooLong, .contentFilter, .server, .timeout, .network,
            .malformedStream, .unknown,
        ]
        for code in all { #expect(code.retryable == retryable.contains(code), "\(code)") }
    }

    @Test(
        arguments: [
            (0, nil, 0.0, Duration.milliseconds(1000)),
            (1, nil, 0.0, .milliseconds(2000)),
            (4, nil, 0.0, .milliseconds(16000)),
            (6, nil, 0.0, .seconds(30)),
            (0, Duration.seconds(5), 0.0, .seconds(5)),
            (0, .seconds(120), 0.0, .seconds(30)),
            (0, nil, 1.0, .milliseconds(1200)),
            (1, nil, 0.5, .milliseconds(2200)),
        ] as [(Int, Duration?, Double, Duration)])
    func backoffDoublesUpToTheCapWithJitter(retry: Int, retryAfter: Duration?, jitter: Double, expected: Duration) {
        #expect(RetryPolicy().delay(retry: retry, retryAfter: retryAfter, jitterFraction: jitter) == expected)
    }
}

@Suite struct ProviderSettingsTests {
    @Test func noBaseURLMeansNoProvider() throws {
        #expect(try ProviderSettings.fromEnvironment([:]) == nil)
    }

    @Test func readsEverySetting() throws {
        let settings = try #require(
            try ProviderSettings.fromEnvironment([
                "AI_BASE_URL": "http://127.0.0.1:8080/v1/", "AI_GATEWAY_API_KEY": "gw-key", "AI_MODEL": "qwen",
                "AI_LITE_MODEL": "smol", "AI_FALLBACK_MODEL": "big, bigger", "AI_CONTEXT_WINDOW": "8192",
                "AI_MAX_RETRIES": "1", "AI_STREAM_USAGE": "false",
            ]))
        #expect(settings.baseURL == "http://127.0.0.1:8080/v1")
        #expect(settings.apiKey?.reveal() == "gw-key")
        #expect(settings.models(for: .lite) == ["smol", "qwen", "big", "bigger"])
        #expect(settings.contextWindow == 8192)
        #expect(settings.retry.maxRetries == 1)
        #expect(!settings.includeUsage)
    }

    @Test func aiAPIKeyWinsOverTheGatewayKey() throws {
        let settings = try ProviderSettings.fromEnvironment([
            "AI_BASE_URL": "https://api.openai.com/v1", "AI_MODEL": "gpt", "AI_API_KEY": "a", "AI_GATEWAY_API_KEY": "b",
        ])
        #expect(settings?.apiKey?.reveal() == "a")
    }

    @Test(
        arguments: [
            (["AI_BASE_URL": "localhost:8080"], "AI_BASE_URL"),
            (["AI_BASE_URL": "ftp://host/v1", "AI_MODEL": "m"], "AI_BASE_URL"),
            (["AI_BASE_URL": "http://127.0.0.1:8080/v1"], "AI_MODEL"),
            (["AI_MODEL": "m"], "AI_BASE_URL"),
            (["AI_BASE_URL": "http://h/v1", "AI_MODEL": "m", "AI_CONTEXT_WINDOW": "big"], "AI_CONTEXT_WINDOW"),
            (["AI_BASE_URL": "http://h/v1", "AI_MODEL": "m", "AI_MAX_RETRIES": "-1"], "AI_MAX_RETRIES"),
            (["AI_BASE_URL": "http://h/v1", "AI_MODEL": "m", "AI_STREAM_USAGE": "maybe"], "AI_STREAM_USAGE"),
            (["TODOIST_API_BASE_URL": "not a url", "TODOIST_API_TOKEN": "t"], "TODOIST_API_BASE_URL"),
        ] as [([String: String], String)])
    func aBadSettingNamesItsVariable(environment: [String: String], variable: String) {
        let error = #expect(throws: AssistantSettingsError.self) {
            _ = try ProviderSettings.fromEnvironment(environment)
            _ = try TodoistSettings.fromEnvironment(environment)
        }
        #expect(error?.variable == variable)
    }

    @Test func keysNeverShowInDescriptions() throws {
        let settings = try #require(
            try ProviderSettings.fromEnvironment([
                "AI_BASE_URL": "http://h/v1", "AI_MODEL": "m", "AI_API_KEY": "sk-very-secret",
            ]))
        let todoist = TodoistSettings(token: Secret("todo-secret"))
        for text in [
            "\(settings)", String(describing: settings), String(reflecting: settings.apiKey as Any),
            "\(todoist)", "\(todoist.token)",
        ] {
            #expect(!text.contains("sk-very-secret"))
            #expect(!text.contains("todo-secret"))
        }
    }
}
