import Foundation
import Hummingbird
import NIOCore
import Synchronization

/// Releases a held stream one step at a time (the test decides when the next chunk goes out).
final class StreamGate: Sendable {
    private struct State {
        var credits = 0
        var open = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    /// Lets the next held chunk go.
    func release() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter else {
                state.credits += 1
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    /// Lets every remaining chunk go (and any later wait return at once).
    func open() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.open = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Waits for one release (one waiter at a time); returns at once when the gate was opened for good.
    fileprivate func pass() async {
        await withCheckedContinuation { continuation in
            let go = state.withLock { state -> Bool in
                if state.open { return true }
                if state.credits > 0 {
                    state.credits -= 1
                    return true
                }
                state.waiter = continuation
                return false
            }
            if go { continuation.resume() }
        }
    }
}

/// A fake OpenAI-compatible model on 127.0.0.1: `POST /v1/chat/completions` with `stream: true` answers with real
/// SSE chunks (`choices[].delta.content`, `delta.tool_calls`, `finish_reason`, `data: [DONE]`). What it answers
/// is decided per request by the test's `respond` closure (from the request's messages), so extra requests the
/// assistant might make do not shift a script. Every request is recorded.
final class FakeModelServer: Sendable {
    struct Message: Sendable, CustomStringConvertible {
        var role: String
        var content: String
        var toolCallID: String?

        var description: String { "\(role): \(content.prefix(200))" }
    }

    struct Request: Sendable {
        var model: String
        var messages: [Message]
        var toolNames: [String]
        var stream: Bool

        /// The newest message.
        var last: Message? { messages.last }
        /// The newest user message's text.
        var lastUserText: String { messages.last { $0.role == "user" }?.content ?? "" }
    }

    enum Reply: Sendable {
        /// Text in these pieces: with a gate, the first piece goes at once and each later piece, then the end of
        /// the stream, waits for one `release()`.
        case text([String], gate: StreamGate? = nil)
        /// Text in these pieces, stopped at the token limit (finish reason `length`).
        case cut([String])
        /// One tool call (arguments as JSON text), finish reason `tool_calls`.
        case toolCall(id: String, name: String, arguments: String)
        /// An HTTP error with an OpenAI-style error body.
        case error(status: Int, message: String)
    }

    private let requestsBox = Mutex<[Request]>([])
    private let respond: @Sendable (Request) -> Reply
    private let task = Mutex<Task<Void, any Error>?>(nil)
    private let portBox = Mutex(0)

    private init(respond: @escaping @Sendable (Request) -> Reply) { self.respond = respond }

    /// The API root to give as `AI_BASE_URL`.
    var baseURL: String { "http://127.0.0.1:\(portBox.withLock { $0 })/v1" }
    var requests: [Request] { requestsBox.withLock { $0 } }

    static func start(respond: @escaping @Sendable (Request) -> Reply) async throws -> FakeModelServer {
        let server = FakeModelServer(respond: respond)
        let router = Router()
        router.post("/v1/chat/completions") { request, _ -> Response in
            let bytes = try await request.body.collect(upTo: 8 << 20)
            let parsed = Self.parse(Data(bytes.readableBytesView))
            server.requestsBox.withLock { $0.append(parsed) }
            switch server.respond(parsed) {
            case .error(let status, let message):
                let body = ["error": ["message": message, "type": "server_error"]]
                return Response(
                    status: .init(code: status), headers: [.contentType: "application/json"],
                    body: .init(byteBuffer: ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body))))
            case .text(let pieces, let gate):
                return Self.events(
                    [Self.chunk(["role": "assistant", "content": pieces.first ?? ""])]
                        + pieces.dropFirst().map { Self.chunk(["content": $0]) }
                        + [Self.chunk([:], finish: "stop") + Self.usage + "data: [DONE]\n\n"],
                    gate: gate)
            case .cut(let pieces):
                return Self.events(
                    [Self.chunk(["role": "assistant", "content": pieces.first ?? ""])]
                        + pieces.dropFirst().map { Self.chunk(["content": $0]) }
                        + [Self.chunk([:], finish: "length") + Self.usage + "data: [DONE]\n\n"],
                    gate: nil)
            case .toolCall(let id, let name, let arguments):
                let call: [String: Any] = [
                    "index": 0, "id": id, "type": "function", "function": ["name": name, "arguments": arguments],
                ]
                return Self.events(
                    [
                        Self.chunk(["role": "assistant", "content": NSNull(), "tool_calls": [call]])
                            + Self.chunk([:], finish: "tool_calls") + Self.usage + "data: [DONE]\n\n"
                    ], gate: nil)
            }
        }
        let (port, task) = try await startTestServer(router, name: "fake-model")
        server.portBox.withLock { $0 = port }
        server.task.withLock { $0 = task }
        return server
    }

    func stop() { task.withLock { $0 }?.cancel() }

    /// A `text/event-stream` response writing each event separately; with a gate, every event after the first
    /// waits for a release.
    private static func events(_ events: [String], gate: StreamGate?) -> Response {
        Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: ResponseBody { writer in
                for (position, event) in events.enumerated() {
                    if position > 0, let gate { await gate.pass() }
                    try await writer.write(ByteBuffer(string: event))
                }
                try await writer.finish(nil)
            })
    }

    private static func chunk(_ delta: [String: Any], finish: String? = nil) -> String {
        let object: [String: Any] = [
            "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": "fake-model",
            "choices": [["index": 0, "delta": delta, "finish_reason": finish.map { $0 as Any } ?? NSNull()]],
        ]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return "data: \(String(decoding: data, as: UTF8.self))\n\n"
    }

    private static let usage =
        #"data: {"id":"chatcmpl-fake","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}"#
        + "\n\n"

    private static func parse(_ data: Data) -> Request {
        let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        let messages = (json["messages"] as? [[String: Any]] ?? []).map { message in
            var text = message["content"] as? String ?? ""
            // Content parts (`[{type: text, text: …}]`) are joined.
            if let parts = message["content"] as? [[String: Any]] {
                text = parts.compactMap { $0["text"] as? String }.joined()
            }
            return Message(
                role: message["role"] as? String ?? "", content: text, toolCallID: message["tool_call_id"] as? String)
        }
        let tools = (json["tools"] as? [[String: Any]] ?? []).compactMap {
            ($0["function"] as? [String: Any])?["name"] as? String
        }
        return Request(
            model: json["model"] as? String ?? "", messages: messages, toolNames: tools,
            stream: json["stream"] as? Bool ?? false)
    }
}

/// A fake Todoist on 127.0.0.1: the API v1 (`POST /api/v1/tasks`, `GET /api/v1/tasks`,
/// `POST /api/v1/tasks/{id}/close`, bearer auth, `X-Request-Id` deduplication as Todoist does) and the OAuth flow
/// (`GET /oauth/authorize` redirects straight back with a code, as if the user agreed; `POST /oauth/access_token`
/// exchanges it for the token).
final class FakeTodoist: Sendable {
    static let token = "todo-token"
    static let code = "fake-oauth-code"

    struct TodoTask: Sendable, Equatable {
        var id: String
        var content: String
        var completed = false
    }

    struct Exchange: Sendable {
        var clientID: String
        var clientSecret: String
        var code: String
    }

    private struct State {
        var tasks: [TodoTask] = []
        var answered: [String: String] = [:]
        var exchanges: [Exchange] = []
        var authorizeQueries: [[String: String]] = []
        var nextID = 1
    }

    private let state = Mutex(State())
    private let server = Mutex<Task<Void, any Error>?>(nil)
    private let portBox = Mutex(0)
    /// Where the authorize page sends the browser back when the request names no `redirect_uri`.
    let redirectURI: Mutex<String?>

    private init(redirectURI: String?) { self.redirectURI = Mutex(redirectURI) }

    var origin: String { "http://127.0.0.1:\(portBox.withLock { $0 })" }
    /// `TODOIST_BASE_URL`.
    var apiBaseURL: String { origin + "/api/v1" }
    var authorizeURL: String { origin + "/oauth/authorize" }
    var tokenURL: String { origin + "/oauth/access_token" }

    var tasks: [TodoTask] { state.withLock { $0.tasks } }
    var exchanges: [Exchange] { state.withLock { $0.exchanges } }
    var authorizeQueries: [[String: String]] { state.withLock { $0.authorizeQueries } }

    static func start(redirectURI: String? = nil) async throws -> FakeTodoist {
        let fake = FakeTodoist(redirectURI: redirectURI)
        let router = Router()
        @Sendable func json(_ status: HTTPResponse.Status, _ object: Any) -> Response {
            let data = (try? JSONSerialization.data(withJSONObject: object)) ?? Data()
            return Response(
                status: status, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        @Sendable func authorized(_ request: Request) -> Bool {
            request.headers[.authorization] == "Bearer \(token)"
        }
        router.post("/api/v1/tasks") { request, _ -> Response in
            guard authorized(request) else { return json(.unauthorized, ["error": "Unauthorized"]) }
            let bytes = try await request.body.collect(upTo: 1 << 20)
            let body = (try? JSONSerialization.jsonObject(with: Data(bytes.readableBytesView))) as? [String: Any]
            guard let content = body?["content"] as? String, !content.isEmpty else {
                return json(.badRequest, ["error": "content is required"])
            }
            let requestID = request.headers[.init("X-Request-Id")!]
            let answer = fake.state.withLock { state -> String in
                if let requestID, let earlier = state.answered[requestID] { return earlier }
                let task = TodoTask(id: "t\(state.nextID)", content: content)
                state.nextID += 1
                state.tasks.append(task)
                let object: [String: Any] = [
                    "id": task.id, "content": content, "checked": false, "priority": 1, "description": "",
                    "due": NSNull(),
                ]
                let text = String(
                    decoding: (try? JSONSerialization.data(withJSONObject: object)) ?? Data(), as: UTF8.self)
                if let requestID { state.answered[requestID] = text }
                return text
            }
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: answer)))
        }
        router.get("/api/v1/tasks") { request, _ -> Response in
            guard authorized(request) else { return json(.unauthorized, ["error": "Unauthorized"]) }
            let open = fake.state.withLock { $0.tasks.filter { !$0.completed } }
            let results = open.map { ["id": $0.id, "content": $0.content, "checked": false] as [String: Any] }
            return json(.ok, ["results": results, "next_cursor": NSNull()])
        }
        router.post("/api/v1/tasks/{id}/close") { request, context -> Response in
            guard authorized(request) else { return json(.unauthorized, ["error": "Unauthorized"]) }
            let id = try context.parameters.require("id")
            let found = fake.state.withLock { state -> Bool in
                guard let index = state.tasks.firstIndex(where: { $0.id == id }) else { return false }
                state.tasks[index].completed = true
                return true
            }
            return found ? Response(status: .noContent) : json(.notFound, ["error": "Not found"])
        }
        router.get("/oauth/authorize") { request, _ -> Response in
            var query: [String: String] = [:]
            for (name, value) in request.uri.queryParameters { query[String(name)] = String(value) }
            fake.state.withLock { $0.authorizeQueries.append(query) }
            guard let back = query["redirect_uri"] ?? fake.redirectURI.withLock({ $0 }),
                var components = URLComponents(string: back)
            else { return Response(status: .badRequest) }
            components.queryItems =
                (components.queryItems ?? []) + [URLQueryItem(name: "code", value: code)]
                + (query["state"].map { [URLQueryItem(name: "state", value: $0)] } ?? [])
            return Response(status: .found, headers: [.location: components.string ?? back])
        }
        router.post("/oauth/access_token") { request, _ -> Response in
            let bytes = try await request.body.collect(upTo: 1 << 20)
            let text = String(buffer: bytes)
            var form: [String: String] = [:]
            if let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] {
                for (name, value) in object { form[name] = "\(value)" }
            } else {
                for pair in text.split(separator: "&") {
                    let parts = pair.split(separator: "=", maxSplits: 1).map {
                        String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String($0)
                    }
                    if parts.count == 2 { form[parts[0]] = parts[1] }
                }
            }
            let exchange = Exchange(
                clientID: form["client_id"] ?? "", clientSecret: form["client_secret"] ?? "", code: form["code"] ?? "")
            fake.state.withLock { $0.exchanges.append(exchange) }
            guard exchange.code == code else { return json(.badRequest, ["error": "invalid_grant"]) }
            return json(.ok, ["access_token": token, "token_type": "Bearer"])
        }
        let (port, task) = try await startTestServer(router, name: "fake-todoist")
        fake.portBox.withLock { $0 = port }
        fake.server.withLock { $0 = task }
        return fake
    }

    func stop() { server.withLock { $0 }?.cancel() }
}
