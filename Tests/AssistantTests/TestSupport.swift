import Assistant
import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization
import SwitchboardJSON

/// A bounded wait ran out.
struct TestTimeout: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}

/// Runs `body`, failing with ``TestTimeout`` when it takes longer than `seconds` (a bound, not a wait).
func within<T: Sendable>(
    _ seconds: Double, _ what: String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            throw TestTimeout(what: what)
        }
        defer { group.cancelAll() }
        guard let result = try await group.next() else { throw TestTimeout(what: what) }
        return result
    }
}

/// The result of an async body, so cleanup can run before a failure is rethrown.
func outcome(_ body: () async throws -> Void) async -> Result<Void, any Error> {
    do {
        try await body()
        return .success(())
    } catch {
        return .failure(error)
    }
}

/// A logger that drops everything.
let quietLogger = Logger(label: "assistant-tests", factory: { _ in SwiftLogNoOpLogHandler() })

/// Records every log line (message and metadata), to check what is (not) logged.
final class LogRecorder: Sendable {
    private let lines = Mutex<[String]>([])

    var all: [String] { lines.withLock { $0 } }

    func append(_ line: String) { lines.withLock { $0.append(line) } }

    var logger: Logger {
        var logger = Logger(label: "assistant-tests", factory: { _ in Handler(recorder: self) })
        logger.logLevel = .trace
        return logger
    }

    struct Handler: LogHandler {
        let recorder: LogRecorder
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
            recorder.append("\(event.message) \(merged.sorted { $0.key < $1.key })")
        }
    }
}

/// Records the waits a retrying client asks for instead of waiting.
final class SleepRecorder: Sendable {
    private let waits = Mutex<[Duration]>([])

    var all: [Duration] { waits.withLock { $0 } }

    var sleep: @Sendable (Duration) async throws -> Void {
        { duration in self.waits.withLock { $0.append(duration) } }
    }
}

/// Opens one step at a time for a gated response.
final class Gate: Sendable {
    let stream: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    init() {
        (stream, continuation) = AsyncStream<Void>.makeStream()
    }

    func open() { continuation.yield() }

    /// Ends the gated response where it stands.
    func close() { continuation.finish() }
}

/// Starts a Hummingbird app on 127.0.0.1 with a free port; returns the port and the task running it.
func startServer(_ router: Router<BasicRequestContext>) async throws -> (port: Int, task: Task<Void, any Error>) {
    let (ports, portContinuation) = AsyncStream<Int>.makeStream()
    let app = Application(
        router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
        onServerRunning: { channel in
            portContinuation.yield(channel.localAddress?.port ?? 0)
            portContinuation.finish()
        }, logger: quietLogger)
    let task = Task { try await app.runService(gracefulShutdownSignals: []) }
    let port = try await within(30, "the test server to listen") {
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw TestTimeout(what: "a port") }
        return port
    }
    return (port, task)
}

/// SSE framing helpers for the fake model server.
enum SSE {
    static func data(_ json: String) -> String { "data: \(json)\n\n" }
    static let done = "data: [DONE]\n\n"

    static func content(_ text: String, role: Bool = false) -> String {
        let escaped = JSONValue.string(text).jsonText
        let roleText = role ? #""role":"assistant","# : ""
        return data(
            #"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"#
                + roleText + #""content":\#(escaped)},"finish_reason":null}]}"#)
    }

    static func toolFragment(index: Int, id: String?, name: String?, arguments: String) -> String {
        var function: [String: JSONValue] = ["arguments": .string(arguments)]
        if let name { function["name"] = .string(name) }
        var call: [String: JSONValue] = ["index": .number(Double(index)), "function": .object(function)]
        if let id {
            call["id"] = .string(id)
            call["type"] = "function"
        }
        let chunk: JSONValue = [
            "id": "chatcmpl-1", "object": "chat.completion.chunk",
            "choices": [["index": 0, "delta": ["tool_calls": [.object(call)]], "finish_reason": nil]],
        ]
        return data(chunk.jsonText)
    }

    static func finish(_ reason: String) -> String {
        data(
            #"{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"\#(reason)"}]}"#
        )
    }

    static func usage(prompt: Int, completion: Int) -> String {
        data(
            #"{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":\#(prompt),"completion_tokens":\#(completion),"total_tokens":\#(prompt + completion)}}"#
        )
    }
}

/// A fake OpenAI-compatible server on 127.0.0.1 speaking the real wire format: `POST /v1/chat/completions`
/// answers each request with the next scripted reply (an SSE stream written piece by piece, a stream whose pieces
/// wait for a gate, or an HTTP error), and records every request.
final class FakeChatServer: Sendable {
    enum Reply: Sendable {
        /// `text/event-stream`, each piece written separately.
        case stream([String])
        /// The first piece at once, each later piece after the gate opens once more.
        case gated([String], Gate)
        /// A status with a JSON body and extra headers.
        case status(Int, body: String, headers: [String: String] = [:])
    }

    struct Received: Sendable {
        var model: String
        var authorization: String?
        var body: JSONValue
    }

    private struct State {
        var replies: [Reply] = []
        var received: [Received] = []
    }

    private let state = Mutex(State())
    private let task = Mutex<Task<Void, any Error>?>(nil)
    private let portBox = Mutex(0)

    var port: Int { portBox.withLock { $0 } }
    var baseURL: String { "http://127.0.0.1:\(port)/v1" }
    var received: [Received] { state.withLock { $0.received } }

    func enqueue(_ replies: Reply...) { state.withLock { $0.replies += replies } }

    static func start() async throws -> FakeChatServer {
        let server = FakeChatServer()
        let router = Router()
        router.post("/v1/chat/completions") { request, _ -> Response in
            var request = request
            let bytes = try await request.collectBody(upTo: 1 << 20)
            let body = JSONValue(parsing: String(buffer: bytes)) ?? .null
            let reply = server.state.withLock { state -> Reply? in
                state.received.append(
                    Received(
                        model: body["model"]?.stringValue ?? "", authorization: request.headers[.authorization],
                        body: body))
                return state.replies.isEmpty ? nil : state.replies.removeFirst()
            }
            switch reply {
            case nil:
                return Response(
                    status: .internalServerError, headers: [.contentType: "application/json"],
                    body: .init(byteBuffer: ByteBuffer(string: #"{"error":{"message":"no scripted reply"}}"#)))
            case .status(let code, let text, let extra):
                var headers: HTTPFields = [.contentType: "application/json"]
                for (name, value) in extra {
                    headers[.init(name)!] = value
                }
                return Response(
                    status: .init(code: code), headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
            case .stream(let pieces):
                return Response(
                    status: .ok, headers: [.contentType: "text/event-stream"],
                    body: ResponseBody { writer in
                        for piece in pieces { try await writer.write(ByteBuffer(string: piece)) }
                        try await writer.finish(nil)
                    })
            case .gated(let pieces, let gate):
                return Response(
                    status: .ok, headers: [.contentType: "text/event-stream"],
                    body: ResponseBody { writer in
                        var opens = gate.stream.makeAsyncIterator()
                        for (position, piece) in pieces.enumerated() {
                            if position > 0, await opens.next() == nil { break }
                            try await writer.write(ByteBuffer(string: piece))
                        }
                        try await writer.finish(nil)
                    })
            }
        }
        let (port, task) = try await startServer(router)
        server.portBox.withLock { $0 = port }
        server.task.withLock { $0 = task }
        return server
    }

    func stop() async {
        let task = self.task.withLock { $0 }
        task?.cancel()
        _ = await task?.result
    }
}

/// A fake Todoist API v1 on 127.0.0.1: `POST /api/v1/tasks`, `GET /api/v1/tasks` (cursor pages),
/// `POST /api/v1/tasks/{id}/close`, with bearer auth. Like Todoist, a write whose `X-Request-Id` was seen before
/// is not applied again: the first answer is returned.
final class FakeTodoistServer: Sendable {
    static let token = "todo-token"

    private struct State {
        var tasks: [TodoistTask] = []
        var closed: Set<String> = []
        var answered: [String: String] = [:]
        var requestIDs: [String] = []
        /// Apply the next create, then answer 500 (the answer is lost, the task exists).
        var failNextCreateAfterApplying = false
        var nextID = 1
    }

    private let state = Mutex(State())
    private let task = Mutex<Task<Void, any Error>?>(nil)
    private let portBox = Mutex(0)

    var baseURL: String { "http://127.0.0.1:\(portBox.withLock { $0 })/api/v1" }
    var tasks: [TodoistTask] { state.withLock { $0.tasks } }
    var closed: Set<String> { state.withLock { $0.closed } }
    var requestIDs: [String] { state.withLock { $0.requestIDs } }

    func failNextCreateAfterApplying() { state.withLock { $0.failNextCreateAfterApplying = true } }

    static func start(pageSize: Int = 2) async throws -> FakeTodoistServer {
        let server = FakeTodoistServer()
        let router = Router()
        @Sendable func json(_ status: HTTPResponse.Status, _ text: String) -> Response {
            Response(
                status: status, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        @Sendable func authorized(_ request: Request) -> Bool {
            request.headers[.authorization] == "Bearer \(token)"
        }
        router.post("/api/v1/tasks") { request, _ -> Response in
            guard authorized(request) else { return json(.unauthorized, #"{"error":"Unauthorized"}"#) }
            var request = request
            let body = JSONValue(parsing: String(buffer: try await request.collectBody(upTo: 1 << 20))) ?? .null
            guard let content = body["content"]?.stringValue, !content.isEmpty else {
                return json(.badRequest, #"{"error":"content is required"}"#)
            }
            let requestID = request.headers[.init("X-Request-Id")!]
            return server.state.withLock { state in
                if let requestID { state.requestIDs.append(requestID) }
                if let requestID, let earlier = state.answered[requestID] { return json(.ok, earlier) }
                var task = TodoistTask(id: "t\(state.nextID)", content: content)
                if let due = body["due_string"]?.stringValue { task.due = .init(date: nil, string: due) }
                state.nextID += 1
                state.tasks.append(task)
                let answer = JSONValue.object([
                    "id": .string(task.id), "content": .string(content), "checked": false, "priority": 1,
                    "description": "", "due": task.due.map { .object(["string": .string($0.string ?? "")]) } ?? .null,
                ]).jsonText
                if let requestID { state.answered[requestID] = answer }
                if state.failNextCreateAfterApplying {
                    state.failNextCreateAfterApplying = false
                    return json(.internalServerError, #"{"error":"Internal Server Error"}"#)
                }
                return json(.ok, answer)
            }
        }
        router.get("/api/v1/tasks") { request, _ -> Response in
            guard authorized(request) else { return json(.unauthorized, #"{"error":"Unauthorized"}"#) }
            let limit = min(Int(request.uri.queryParameters["limit"].map(String.init) ?? "") ?? 50, pageSize)
            let offset = Int(request.uri.queryParameters["cursor"].map(String.init) ?? "") ?? 0
            return server.state.withLock { state in
                let open = state.tasks.filter { !state.closed.contains($0.id) }
                let page = open.dropFirst(offset).prefix(limit)
                let next: JSONValue = offset + page.count < open.count ? .string("\(offset + page.count)") : .null
                let results = JSONValue.array(
                    page.map { .object(["id": .string($0.id), "content": .string($0.content), "checked": false]) })
                return json(.ok, JSONValue.object(["results": results, "next_cursor": next]).jsonText)
            }
        }
        router.post("/api/v1/tasks/{id}/close") { request, context -> Response in
            guard authorized(request) else { return json(.unauthorized, #"{"error":"Unauthorized"}"#) }
            let id = try context.parameters.require("id")
            return server.state.withLock { state in
                guard state.tasks.contains(where: { $0.id == id }) else {
                    return json(.notFound, #"{"error":"Not found"}"#)
                }
                state.closed.insert(id)
                return Response(status: .noContent)
            }
        }
        let (port, task) = try await startServer(router)
        server.portBox.withLock { $0 = port }
        server.task.withLock { $0 = task }
        return server
    }

    func stop() async {
        let task = self.task.withLock { $0 }
        task?.cancel()
        _ = await task?.result
    }
}
