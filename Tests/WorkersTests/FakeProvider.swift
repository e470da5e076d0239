import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// A fake Telegram Bot API and WhatsApp Cloud API on 127.0.0.1 that records every send: `POST
/// /bot<token>/sendMessage` and `POST /v21.0/<phone-number-id>/messages`, answering with the real JSON shapes.
/// It also fakes an OpenAI-compatible model (`POST /v1/chat/completions`, scripted ``ModelReply``s streamed as
/// SSE, slowly when asked) and Todoist's API v1 (`POST /api/v1/tasks`, applying a write once per `X-Request-Id`).
final class FakeProvider: Sendable {
    struct Send: Sendable {
        var channel: String
        /// Telegram `chat_id` or WhatsApp `to`.
        var recipient: String
        var text: String
        /// The bot token in the path, or the bearer token.
        var credential: String
        /// When the request arrived.
        var at = ContinuousClock.now
    }

    /// What the next sends get.
    enum Behavior: Sendable {
        case accept
        /// Record the request, then never answer (the sender's timeout, or its death, decides).
        case hang
        /// Record the request and answer with this status and JSON body.
        case respond(status: Int, body: String)
        /// Record the request, and accept it after this delay (a slow provider).
        case delay(Duration)
    }

    /// A scripted answer of the fake model.
    enum ModelReply: Sendable {
        /// `text/event-stream`, each piece written separately, `delay` before each piece after the first.
        case stream([String], delay: Duration = .zero)
        /// The first piece at once, each later one after the gate opens once more.
        case gated([String], Gate)
        /// An HTTP status with a JSON body and extra headers.
        case status(Int, body: String, headers: [String: String] = [:])
    }

    /// A Todoist task the fake created.
    struct TodoistTask: Sendable, Equatable {
        var id: String
        var content: String
    }

    private struct State {
        var sends: [Send] = []
        var behavior = Behavior.accept
        var waiters: [(id: UInt64, count: Int, continuation: CheckedContinuation<Void, Never>)] = []
        var modelReplies: [ModelReply] = []
        var modelRequests: [String] = []
        var tasks: [TodoistTask] = []
        var todoistAnswers: [String: String] = [:]
        var todoistRequestIDs: [String] = []
    }

    static let todoistToken = "todo-token"

    var modelBaseURL: String { "http://127.0.0.1:\(port)/v1" }
    var todoistBaseURL: String { "http://127.0.0.1:\(port)/api/v1" }
    /// The JSON bodies of the model requests, in order.
    var modelRequests: [String] { state.withLock { $0.modelRequests } }
    var tasks: [TodoistTask] { state.withLock { $0.tasks } }
    var todoistRequestIDs: [String] { state.withLock { $0.todoistRequestIDs } }

    /// Queues the model's next answers.
    func script(_ replies: ModelReply...) { state.withLock { $0.modelReplies += replies } }

    private let state = Mutex(State())
    let port: Int
    private let task: Task<Void, any Error>

    var telegramBaseURL: String { "http://127.0.0.1:\(port)" }
    var graphBaseURL: String { "http://127.0.0.1:\(port)/v21.0" }

    private init(port: Int, task: Task<Void, any Error>) {
        self.port = port
        self.task = task
    }

    var sends: [Send] { state.withLock { $0.sends } }

    func behave(_ behavior: Behavior) { state.withLock { $0.behavior = behavior } }

    /// Waits until at least `count` sends were recorded, or fails after `seconds`.
    func waitForSends(_ count: Int, within seconds: Double = 10) async throws -> [Send] {
        let id = UInt64.random(in: 0...UInt64.max)
        try await within(seconds, "\(count) sends at the fake provider (have \(sends.count))") {
            await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    let ready = self.state.withLock { state -> Bool in
                        if state.sends.count >= count || Task.isCancelled { return true }
                        state.waiters.append((id, count, continuation))
                        return false
                    }
                    if ready { continuation.resume() }
                }
            } onCancel: {
                let waiter = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
                    guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                    return state.waiters.remove(at: index).continuation
                }
                waiter?.resume()
            }
        }
        guard sends.count >= count else { throw TestTimeout(what: "\(count) sends") }
        return sends
    }

    private func record(_ send: Send) -> Behavior {
        let (behavior, ready) = state.withLock { state -> (Behavior, [CheckedContinuation<Void, Never>]) in
            state.sends.append(send)
            let ready = state.waiters.filter { $0.count <= state.sends.count }.map(\.continuation)
            state.waiters.removeAll { $0.count <= state.sends.count }
            return (state.behavior, ready)
        }
        for continuation in ready { continuation.resume() }
        return behavior
    }

    func stop() { task.cancel() }

    static func start() async throws -> FakeProvider {
        let box = Mutex<FakeProvider?>(nil)
        let router = Router()
        let (portStream, portContinuation) = AsyncStream<Int>.makeStream()
        router.post("/:bot/sendMessage") { request, context -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            let json = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] ?? [:]
            let bot = context.parameters.get("bot") ?? ""
            let chat = json["chat_id"].map { "\($0)" } ?? ""
            let send = Send(
                channel: "telegram", recipient: chat, text: json["text"] as? String ?? "",
                credential: String(bot.dropFirst(3)))
            guard let provider = box.withLock({ $0 }) else { return Response(status: .serviceUnavailable) }
            let count = provider.sends.count
            switch provider.record(send) {
            case .accept: break
            case .hang: try await Task.sleep(for: .seconds(3600))
            case .delay(let duration): try await Task.sleep(for: duration)
            case .respond(let status, let body):
                return Response(
                    status: .init(code: status), headers: [.contentType: "application/json"],
                    body: .init(byteBuffer: ByteBuffer(string: body)))
            }
            let reply =
                #"{"ok":true,"result":{"message_id":\#(count + 1),"date":1700000000,"chat":{"id":\#(chat)},"text":"ok"}}"#
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: reply)))
        }
        router.post("/v21.0/:phone/messages") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            let json = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] ?? [:]
            let text = (json["text"] as? [String: Any])?["body"] as? String ?? ""
            let to = json["to"] as? String ?? ""
            let bearer = request.headers[.authorization].map { String($0.dropFirst("Bearer ".count)) } ?? ""
            let send = Send(channel: "whatsapp", recipient: to, text: text, credential: bearer)
            guard let provider = box.withLock({ $0 }) else { return Response(status: .serviceUnavailable) }
            let count = provider.sends.count
            switch provider.record(send) {
            case .accept: break
            case .hang: try await Task.sleep(for: .seconds(3600))
            case .delay(let duration): try await Task.sleep(for: duration)
            case .respond(let status, let body):
                return Response(
                    status: .init(code: status), headers: [.contentType: "application/json"],
                    body: .init(byteBuffer: ByteBuffer(string: body)))
            }
            let reply =
                #"{"messaging_product":"whatsapp","contacts":[{"input":"\#(to)","wa_id":"\#(to)"}],"messages":[{"id":"wamid.fake\#(count + 1)"}]}"#
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: reply)))
        }
        router.post("/v1/chat/completions") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            guard let provider = box.withLock({ $0 }) else { return Response(status: .serviceUnavailable) }
            let reply = provider.state.withLock { state -> ModelReply? in
                state.modelRequests.append(String(buffer: body))
                return state.modelReplies.isEmpty ? nil : state.modelReplies.removeFirst()
            }
            switch reply {
            case nil:
                return Response(
                    status: .badRequest, headers: [.contentType: "application/json"],
                    body: .init(byteBuffer: ByteBuffer(string: #"{"error":{"message":"no scripted reply"}}"#)))
            case .status(let code, let text, let extra):
                var headers: HTTPFields = [.contentType: "application/json"]
                for (name, value) in extra { headers[.init(name)!] = value }
                return Response(
                    status: .init(code: code), headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
            case .stream(let pieces, let delay):
                return Response(
                    status: .ok, headers: [.contentType: "text/event-stream"],
                    body: ResponseBody { writer in
                        for (position, piece) in pieces.enumerated() {
                            if position > 0, delay > .zero { try await Task.sleep(for: delay) }
                            try await writer.write(ByteBuffer(string: piece))
                        }
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
        router.post("/api/v1/tasks") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            @Sendable func json(_ status: HTTPResponse.Status, _ text: String) -> Response {
                Response(
                    status: status, headers: [.contentType: "application/json"],
                    body: .init(byteBuffer: ByteBuffer(string: text)))
            }
            guard request.headers[.authorization] == "Bearer \(todoistToken)" else {
                return json(.unauthorized, #"{"error":"Unauthorized"}"#)
            }
            guard let provider = box.withLock({ $0 }) else { return Response(status: .serviceUnavailable) }
            let fields = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] ?? [:]
            let content = fields["content"] as? String ?? ""
            let requestID = request.headers[.init("X-Request-Id")!]
            return provider.state.withLock { state in
                if let requestID {
                    state.todoistRequestIDs.append(requestID)
                    if let earlier = state.todoistAnswers[requestID] { return json(.ok, earlier) }
                }
                let task = TodoistTask(id: "t\(state.tasks.count + 1)", content: content)
                state.tasks.append(task)
                let answer = #"{"id":"\#(task.id)","content":"\#(content)","checked":false}"#
                if let requestID { state.todoistAnswers[requestID] = answer }
                return json(.ok, answer)
            }
        }
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                portContinuation.yield(channel.localAddress?.port ?? 0)
                portContinuation.finish()
            }, logger: Logger(label: "fake-provider", factory: { _ in SwiftLogNoOpLogHandler() }))
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var ports = portStream.makeAsyncIterator()
        guard let port = await ports.next() else { throw TestTimeout(what: "the fake provider to listen") }
        let provider = FakeProvider(port: port, task: task)
        box.withLock { $0 = provider }
        return provider
    }
}

extension FakeProvider.Behavior: Equatable {}

/// Opens one step at a time for a gated model reply.
final class Gate: Sendable {
    let stream: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    init() {
        (stream, continuation) = AsyncStream<Void>.makeStream()
    }

    func open(_ times: Int = 1) { for _ in 0..<times { continuation.yield() } }

    /// Ends the gated reply where it stands.
    func close() { continuation.finish() }
}

/// The OpenAI-compatible SSE wire format, for the fake model's scripts.
enum ModelSSE {
    static func data(_ json: String) -> String { "data: \(json)\n\n" }
    static let done = "data: [DONE]\n\n"

    static func escaped(_ text: String) -> String {
        let data = try! JSONSerialization.data(withJSONObject: [text], options: [.withoutEscapingSlashes])
        return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
    }

    static func content(_ text: String, model: String = "fake-model") -> String {
        data(
            #"{"id":"c1","object":"chat.completion.chunk","model":"\#(model)","choices":[{"index":0,"delta":{"content":\#(escaped(text))},"finish_reason":null}]}"#
        )
    }

    static func toolFragment(index: Int, id: String?, name: String?, arguments: String) -> String {
        var function = #""arguments":\#(escaped(arguments))"#
        if let name { function = #""name":"\#(name)","# + function }
        let head = id.map { #""id":"\#($0)","type":"function","# } ?? ""
        return data(
            #"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"tool_calls":[{"index":\#(index),\#(head)"function":{\#(function)}}]},"finish_reason":null}]}"#
        )
    }

    static func finish(_ reason: String = "stop") -> String {
        data(
            #"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"\#(reason)"}]}"#
        )
    }

    /// A whole text reply in these pieces.
    static func text(_ pieces: String...) -> [String] { pieces.map { content($0) } + [finish(), done] }
}

/// A bounded wait ran out.
struct TestTimeout: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}

/// Runs `body`, failing with ``TestTimeout`` when it takes longer than `seconds`. On the timeout the body is
/// cancelled and left behind, not awaited: a body stuck where cancellation cannot reach (a write queued behind a
/// frozen process's lock) must fail its test, not hang the whole run.
func within<T: Sendable>(
    _ seconds: Double, _ what: @autoclosure () -> String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let description = what()
    let race = TimeoutRace<T>()
    return try await withCheckedThrowingContinuation { continuation in
        race.waiter.withLock { $0 = continuation }
        let work = Task {
            let result: Result<T, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            guard let continuation = race.waiter.withLock({ $0.take() }) else { return }
            race.tasks.withLock { $0.timer }?.cancel()
            continuation.resume(with: result)
        }
        let timer = Task {
            try? await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
            guard !Task.isCancelled, let continuation = race.waiter.withLock({ $0.take() }) else { return }
            race.tasks.withLock { $0.work }?.cancel()
            continuation.resume(throwing: TestTimeout(what: description))
        }
        race.tasks.withLock { $0 = (work, timer) }
    }
}

/// ``within(_:_:_:)``'s state: the waiting caller, resumed once by whichever of the body and the timer ends first.
private final class TimeoutRace<T: Sendable>: Sendable {
    let waiter = Mutex<CheckedContinuation<T, any Error>?>(nil)
    let tasks = Mutex<(work: Task<Void, Never>?, timer: Task<Void, Never>?)>((nil, nil))
}
