import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// A fake Telegram Bot API on 127.0.0.1 speaking the real wire format: `POST /bot<token>/<method>` with a JSON body,
/// answered `{"ok":true,"result":…}` or `{"ok":false,"error_code":…,"description":…,"parameters":…}`.
///
/// It serves `getMe`, `getUpdates` (long polling with Telegram's offset rule: a call with offset N confirms — and
/// drops — every update below N), `sendMessage`, `sendChatAction`, `setWebhook`, `deleteWebhook` and
/// `getWebhookInfo`, checks the token, refuses `getUpdates` while a webhook is set (409), and plays scripted
/// faults per method.
final class FakeBotAPI: Sendable {
    /// A message the bot sent.
    struct Sent: Sendable, Equatable {
        var chatID: Int64
        var text: String
        var replyTo: Int64?
        var messageID: Int64
    }

    /// What the next call of a method gets instead of its normal answer.
    enum Fault: Sendable {
        /// Answer with this status and JSON body (nothing recorded).
        case respond(status: Int, body: String)
        /// Read the request, then never answer.
        case hang
    }

    struct State {
        var pending: [(id: Int64, json: String)] = []
        var nextUpdateID: Int64 = 5000
        var sent: [Sent] = []
        var chatActions: [(chat: Int64, action: String)] = []
        var calls: [String] = []
        var offsets: [Int64?] = []
        var faults: [String: [Fault]] = [:]
        var webhook: (url: String, secret: String)?
        /// chat id → the supergroup it became (sendMessage to it answers 400 with migrate_to_chat_id).
        var migrated: [Int64: Int64] = [:]
        /// Chats that blocked the bot (403).
        var blocked: Set<Int64> = []
        var nextMessageID: Int64 = 1
        var waiters: [(id: UInt64, ready: @Sendable (State) -> Bool, continuation: CheckedContinuation<Void, Never>)] =
            []
    }

    static let botID: Int64 = 777_000_111
    let token: String
    let port: Int
    private let state = Mutex(State())
    private let task: Task<Void, any Error>

    var baseURL: String { "http://127.0.0.1:\(port)" }

    private init(token: String, port: Int, task: Task<Void, any Error>) {
        self.token = token
        self.port = port
        self.task = task
    }

    func stop() { task.cancel() }

    // MARK: Test controls

    /// Queues an update (its `update_id` is assigned); returns the id.
    @discardableResult
    func push(_ field: String, _ object: String) -> Int64 {
        let id = state.withLock { state -> Int64 in
            state.nextUpdateID += 1
            state.pending.append((state.nextUpdateID, #"{"update_id":\#(state.nextUpdateID),"\#(field)":\#(object)}"#))
            return state.nextUpdateID
        }
        notify()
        return id
    }

    /// Queues a text message from `chat` (a private chat with the same user id).
    @discardableResult
    func pushText(_ text: String, chat: Int64, messageID: Int64, date: Int64 = 1_700_000_000) -> Int64 {
        let escaped = String(decoding: try! JSONEncoder().encode(text), as: UTF8.self)
        return push(
            "message",
            #"{"message_id":\#(messageID),"from":{"id":\#(chat),"is_bot":false,"first_name":"Alice","last_name":"Tester","username":"alice"},"chat":{"id":\#(chat),"first_name":"Alice","type":"private"},"date":\#(date),"text":\#(escaped)}"#
        )
    }

    /// Queues a text message from user `from` in group `group` (a supergroup), optionally replying to a message
    /// of the bot.
    @discardableResult
    func pushGroupText(
        _ text: String, group: Int64, from: Int64, messageID: Int64, replyToBot: Int64? = nil, name: String = "Bob"
    ) -> Int64 {
        let escaped = String(decoding: try! JSONEncoder().encode(text), as: UTF8.self)
        let reply =
            replyToBot.map {
                #","reply_to_message":{"message_id":\#($0),"from":{"id":\#(Self.botID),"is_bot":true,"first_name":"Switchboard"},"chat":{"id":\#(group),"type":"supergroup"},"date":1700000000}"#
            } ?? ""
        return push(
            "message",
            #"{"message_id":\#(messageID),"from":{"id":\#(from),"is_bot":false,"first_name":"\#(name)"},"chat":{"id":\#(group),"title":"Family","type":"supergroup"},"date":1700000000,"text":\#(escaped)\#(reply)}"#
        )
    }

    func fail(_ method: String, _ faults: Fault...) { state.withLock { $0.faults[method, default: []] += faults } }
    func migrate(_ chat: Int64, to supergroup: Int64) { state.withLock { $0.migrated[chat] = supergroup } }
    func block(_ chat: Int64) { state.withLock { _ = $0.blocked.insert(chat) } }

    var sent: [Sent] { state.withLock { $0.sent } }
    var chatActions: [(chat: Int64, action: String)] { state.withLock { $0.chatActions } }
    var calls: [String] { state.withLock { $0.calls } }
    /// The offsets `getUpdates` was called with, in order.
    var offsets: [Int64?] { state.withLock { $0.offsets } }
    var pendingUpdateIDs: [Int64] { state.withLock { $0.pending.map(\.id) } }
    var webhook: (url: String, secret: String)? { state.withLock { $0.webhook } }

    /// Waits until `count` messages were sent.
    @discardableResult
    func waitForSent(_ count: Int, within seconds: Double = 20) async throws -> [Sent] {
        try await waitUntil(within: seconds, "\(count) sendMessage calls (have \(sent.count))") {
            $0.sent.count >= count
        }
        return sent
    }

    /// Waits until `getUpdates` confirmed every update up to `id` (was called with a higher offset).
    func waitForConfirmation(of id: Int64, within seconds: Double = 20) async throws {
        try await waitUntil(within: seconds, "getUpdates with an offset above \(id)") { state in
            state.offsets.contains { ($0 ?? 0) > id }
        }
    }

    func waitUntil(within seconds: Double, _ what: String, _ ready: @escaping @Sendable (State) -> Bool) async throws {
        let id = UInt64.random(in: 0...UInt64.max)
        try await within(seconds, what) {
            await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    let now = self.state.withLock { state -> Bool in
                        if ready(state) || Task.isCancelled { return true }
                        state.waiters.append((id, ready, continuation))
                        return false
                    }
                    if now { continuation.resume() }
                }
            } onCancel: {
                let waiter = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
                    guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                    return state.waiters.remove(at: index).continuation
                }
                waiter?.resume()
            }
        }
        guard state.withLock({ ready($0) }) else { throw TestTimeout(what: what) }
    }

    private func notify() {
        let ready = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            let snapshot = state
            let ready = state.waiters.filter { $0.ready(snapshot) }
            state.waiters.removeAll { waiter in ready.contains { $0.id == waiter.id } }
            return ready.map(\.continuation)
        }
        for continuation in ready { continuation.resume() }
    }

    // MARK: The API

    static func ok(_ result: String) -> Response {
        json(200, #"{"ok":true,"result":\#(result)}"#)
    }

    static func error(_ code: Int, _ description: String, parameters: String? = nil) -> Response {
        json(
            code,
            #"{"ok":false,"error_code":\#(code),"description":"\#(description)"\#(parameters.map { ",\"parameters\":\($0)" } ?? "")}"#
        )
    }

    static func json(_ status: Int, _ body: String) -> Response {
        Response(
            status: .init(code: status), headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    private func handle(token presented: String, method: String, body: [String: Any]) async throws -> Response {
        let fault = state.withLock { state -> Fault? in
            state.calls.append(method)
            guard var queue = state.faults[method], !queue.isEmpty else { return nil }
            let first = queue.removeFirst()
            state.faults[method] = queue
            return first
        }
        notify()
        switch fault {
        case .respond(let status, let body)?: return Self.json(status, body)
        case .hang?:
            try await Task.sleep(for: .seconds(3600))
            return Self.error(500, "unreachable")
        case nil: break
        }
        guard presented == token else { return Self.error(401, "Unauthorized") }
        switch method {
        case "getMe":
            return Self.ok(
                #"{"id":\#(Self.botID),"is_bot":true,"first_name":"Switchboard","username":"switchboard_test_bot"}"#)
        case "getUpdates":
            return try await getUpdates(body)
        case "sendMessage":
            guard let chat = (body["chat_id"] as? NSNumber)?.int64Value, let text = body["text"] as? String else {
                return Self.error(400, "Bad Request: chat_id and text are required")
            }
            if text.utf16.count > 4096 { return Self.error(400, "Bad Request: message is too long") }
            if text.isEmpty { return Self.error(400, "Bad Request: message text is empty") }
            let replyTo = ((body["reply_parameters"] as? [String: Any])?["message_id"] as? NSNumber)?.int64Value
            let answer = state.withLock { state -> Response in
                if let new = state.migrated[chat] {
                    return Self.error(
                        400, "Bad Request: group chat was upgraded to a supergroup chat",
                        parameters: #"{"migrate_to_chat_id":\#(new)}"#)
                }
                if state.blocked.contains(chat) { return Self.error(403, "Forbidden: bot was blocked by the user") }
                let id = state.nextMessageID
                state.nextMessageID += 1
                state.sent.append(Sent(chatID: chat, text: text, replyTo: replyTo, messageID: id))
                return Self.ok(
                    #"{"message_id":\#(id),"date":1700000001,"chat":{"id":\#(chat),"type":"private"},"text":"sent"}"#)
            }
            notify()
            return answer
        case "sendChatAction":
            guard let chat = (body["chat_id"] as? NSNumber)?.int64Value, let action = body["action"] as? String else {
                return Self.error(400, "Bad Request: chat_id and action are required")
            }
            state.withLock { $0.chatActions.append((chat, action)) }
            notify()
            return Self.ok("true")
        case "setWebhook":
            let url = body["url"] as? String ?? ""
            state.withLock { $0.webhook = url.isEmpty ? nil : (url, body["secret_token"] as? String ?? "") }
            return Self.ok("true")
        case "deleteWebhook":
            state.withLock { $0.webhook = nil }
            return Self.ok("true")
        case "getWebhookInfo":
            let (url, pending) = state.withLock { ($0.webhook?.url ?? "", $0.pending.count) }
            return Self.ok(#"{"url":"\#(url)","has_custom_certificate":false,"pending_update_count":\#(pending)}"#)
        default:
            return Self.error(404, "Not Found: method not found")
        }
    }

    private func getUpdates(_ body: [String: Any]) async throws -> Response {
        let offset = (body["offset"] as? NSNumber)?.int64Value
        let timeout = (body["timeout"] as? NSNumber)?.intValue ?? 0
        let limit = (body["limit"] as? NSNumber)?.intValue ?? 100
        let conflict = state.withLock { state -> Bool in
            guard state.webhook == nil else { return true }
            state.offsets.append(offset)
            // An update is confirmed once getUpdates is called with an offset above its id.
            if let offset { state.pending.removeAll { $0.id < offset } }
            return false
        }
        notify()
        if conflict {
            return Self.error(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
            )
        }
        if timeout > 0, state.withLock({ $0.pending.isEmpty }) {
            // Long poll: answer when an update arrives or the timeout passes.
            try? await waitUntil(within: Double(timeout), "an update") { !$0.pending.isEmpty }
        }
        let updates = state.withLock { state in state.pending.prefix(limit).map(\.json) }
        return Self.ok("[" + updates.joined(separator: ",") + "]")
    }

    static func start(token: String = "\(botID):fake-bot-token") async throws -> FakeBotAPI {
        let box = Mutex<FakeBotAPI?>(nil)
        let router = Router()
        router.post("/:bot/:method") { request, context -> Response in
            let bytes = try await request.body.collect(upTo: 1 << 20)
            let body = (try? JSONSerialization.jsonObject(with: Data(bytes.readableBytesView))) as? [String: Any] ?? [:]
            let bot = context.parameters.get("bot") ?? ""
            guard bot.hasPrefix("bot"), let api = box.withLock({ $0 }) else {
                return FakeBotAPI.error(404, "Not Found")
            }
            return try await api.handle(
                token: String(bot.dropFirst(3)), method: context.parameters.get("method") ?? "", body: body)
        }
        let (portStream, portContinuation) = AsyncStream<Int>.makeStream()
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                portContinuation.yield(channel.localAddress?.port ?? 0)
                portContinuation.finish()
            }, logger: Logger(label: "fake-bot-api", factory: { _ in SwiftLogNoOpLogHandler() }))
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var ports = portStream.makeAsyncIterator()
        guard let port = await ports.next() else { throw TestTimeout(what: "the fake Bot API to listen") }
        let api = FakeBotAPI(token: token, port: port, task: task)
        box.withLock { $0 = api }
        return api
    }
}
