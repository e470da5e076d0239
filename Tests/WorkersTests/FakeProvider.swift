import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// A fake Telegram Bot API and WhatsApp Cloud API on 127.0.0.1 that records every send: `POST
/// /bot<token>/sendMessage` and `POST /v21.0/<phone-number-id>/messages`, answering with the real JSON shapes.
final class FakeProvider: Sendable {
    struct Send: Sendable {
        var channel: String
        /// Telegram `chat_id` or WhatsApp `to`.
        var recipient: String
        var text: String
        /// The bot token in the path, or the bearer token.
        var credential: String
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

    private struct State {
        var sends: [Send] = []
        var behavior = Behavior.accept
        var waiters: [(id: UInt64, count: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }

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

/// A bounded wait ran out.
struct TestTimeout: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}

/// Runs `body`, failing with ``TestTimeout`` when it takes longer than `seconds` (the body is cancelled).
func within<T: Sendable>(
    _ seconds: Double, _ what: @autoclosure () -> String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let description = what()
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw TestTimeout(what: description) }
        return value
    }
}
