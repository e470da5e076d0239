import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization
import Workers

/// A fake Meta Graph API (WhatsApp Cloud) on 127.0.0.1 with the real shapes: `POST /v21.0/<phone-number-id>/messages`
/// (bearer token; texts answered with a `wamid`, typing indicators with `{"success":true}`), `GET
/// /v21.0/<phone-number-id>` (the number's display name), Meta's error bodies, and scripted faults.
final class FakeGraphAPI: Sendable {
    struct Sent: Sendable, Equatable {
        var to: String
        var text: String
        var contextID: String?
        var wamid: String
        /// The template it went out as (`name/language`), `nil` for free text.
        var template: String?
    }

    enum Fault: Sendable {
        /// Answer with this status and JSON body.
        case respond(status: Int, body: String)
        /// Read the request, then never answer (a timeout after the body was sent).
        case hang
    }

    struct State {
        var sent: [Sent] = []
        var typing: [String] = []
        var faults: [String: [Fault]] = [:]
        var probes = 0
        var nextID = 1
        /// Every typing indicator (`typing:<message id>`) and text (`sent:<to>`), in the order they arrived.
        var calls: [String] = []
        /// How long each messages call takes before it is answered.
        var latency: Duration = .zero
        var waiters: [(id: UInt64, count: Int, continuation: CheckedContinuation<Void, Never>)] = []
        /// Recipients whose 24-hour window is closed: free text to them is refused with 131047, templates pass.
        var windowClosed: Set<String> = []
    }

    let token: String
    let phoneNumberID: String
    let port: Int
    private let state = Mutex(State())
    private let task: Task<Void, any Error>

    var baseURL: String { "http://127.0.0.1:\(port)/v21.0" }

    private init(token: String, phoneNumberID: String, port: Int, task: Task<Void, any Error>) {
        self.token = token
        self.phoneNumberID = phoneNumberID
        self.port = port
        self.task = task
    }

    func stop() { task.cancel() }

    var sent: [Sent] { state.withLock { $0.sent } }
    /// Closes `recipient`'s 24-hour window: texts are refused as the Cloud API does (131047).
    func closeWindow(_ recipient: String) { state.withLock { _ = $0.windowClosed.insert(recipient) } }
    var typing: [String] { state.withLock { $0.typing } }
    var probes: Int { state.withLock { $0.probes } }
    var calls: [String] { state.withLock { $0.calls } }

    /// Makes every later messages call take `latency` before its answer (a slow provider).
    func slow(_ latency: Duration) { state.withLock { $0.latency = latency } }

    /// Scripts the next answers of `messages` or `phone` (the GET of the number).
    func fail(_ path: String, _ faults: Fault...) { state.withLock { $0.faults[path, default: []] += faults } }

    static func metaError(_ code: Int, _ message: String, status: Int = 400) -> Fault {
        .respond(
            status: status,
            body:
                #"{"error":{"message":"(#\#(code)) \#(message)","type":"OAuthException","code":\#(code),"error_data":{"messaging_product":"whatsapp","details":"\#(message)"},"fbtrace_id":"AbCdEf"}}"#
        )
    }

    @discardableResult
    func waitForSent(_ count: Int, within seconds: Double = 20) async throws -> [Sent] {
        let id = UInt64.random(in: 0...UInt64.max)
        try await within(seconds, "\(count) WhatsApp sends (have \(sent.count))") {
            await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    let now = self.state.withLock { state -> Bool in
                        if state.sent.count >= count || Task.isCancelled { return true }
                        state.waiters.append((id, count, continuation))
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
        guard sent.count >= count else { throw TestTimeout(what: "\(count) WhatsApp sends") }
        return sent
    }

    static func json(_ status: Int, _ body: String) -> Response {
        Response(
            status: .init(code: status), headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    private func fault(_ path: String) -> Fault? {
        state.withLock { state in
            guard var queue = state.faults[path], !queue.isEmpty else { return nil }
            let first = queue.removeFirst()
            state.faults[path] = queue
            return first
        }
    }

    private func authorized(_ request: Request) -> Bool {
        request.headers[.authorization] == "Bearer \(token)"
    }

    static let invalidToken = json(
        401,
        #"{"error":{"message":"Invalid OAuth access token - Cannot parse access token","type":"OAuthException","code":190,"fbtrace_id":"Ab"}}"#
    )

    private func messages(_ request: Request, phone: String, body: [String: Any]) async throws -> Response {
        switch fault("messages") {
        case .respond(let status, let body)?: return Self.json(status, body)
        case .hang?:
            try await Task.sleep(for: .seconds(3600))
            return Self.json(500, "{}")
        case nil: break
        }
        guard authorized(request) else { return Self.invalidToken }
        guard phone == phoneNumberID else {
            return Self.json(
                400,
                #"{"error":{"message":"Unsupported post request. Object with ID '\#(phone)' does not exist","type":"GraphMethodException","code":100}}"#
            )
        }
        guard body["messaging_product"] as? String == "whatsapp" else {
            return Self.json(
                400, #"{"error":{"message":"(#100) The parameter messaging_product is required.","code":100}}"#)
        }
        // `calls` are in the order the requests arrived; the answer then takes `latency`.
        let latency = state.withLock { $0.latency }
        if body["status"] as? String == "read", let id = body["message_id"] as? String {
            state.withLock {
                $0.typing.append(id)
                $0.calls.append("typing:\(id)")
            }
            if latency > .zero { try await Task.sleep(for: latency) }
            return Self.json(200, #"{"success":true}"#)
        }
        guard let to = body["to"] as? String else {
            return Self.json(400, #"{"error":{"message":"(#100) Invalid parameter","code":100}}"#)
        }
        var templateName: String?
        let text: String
        switch body["type"] as? String {
        case "text":
            guard let body = (body["text"] as? [String: Any])?["body"] as? String else {
                return Self.json(400, #"{"error":{"message":"(#100) Invalid parameter","code":100}}"#)
            }
            if state.withLock({ $0.windowClosed.contains(to) }) {
                return Self.json(
                    400,
                    #"{"error":{"message":"(#131047) Re-engagement message","type":"OAuthException","code":131047,"error_data":{"messaging_product":"whatsapp","details":"Message failed to send because more than 24 hours have passed since the customer last replied to this number."},"fbtrace_id":"Afake"}}"#
                )
            }
            text = body
        case "template":
            // Meta's rules for a body parameter: no line break or tab, at most four spaces in a row (132018).
            let template = body["template"] as? [String: Any]
            let language = (template?["language"] as? [String: Any])?["code"] as? String
            let parameter =
                ((template?["components"] as? [[String: Any]])?.first?["parameters"] as? [[String: Any]])?.first?[
                    "text"] as? String
            guard let name = template?["name"] as? String, let language, let parameter,
                !parameter.contains(where: { $0.isNewline || $0 == "\t" }), !parameter.contains("     ")
            else {
                return Self.json(
                    400,
                    #"{"error":{"message":"(#132018) There was an issue with the parameters in your template.","code":132018}}"#
                )
            }
            templateName = "\(name)/\(language)"
            text = parameter
        default:
            return Self.json(400, #"{"error":{"message":"(#100) Invalid parameter","code":100}}"#)
        }
        if text.count > 4096 {
            return Self.json(
                400,
                #"{"error":{"message":"(#100) Param text['body'] must be at most 4096 characters long.","code":100}}"#)
        }
        let contextID = (body["context"] as? [String: Any])?["message_id"] as? String
        let (wamid, ready) = state.withLock { state -> (String, [CheckedContinuation<Void, Never>]) in
            let wamid = "wamid.HBgLMTU1NTAwMDAwMDEVAgARGBI\(state.nextID)"
            state.nextID += 1
            state.sent.append(Sent(to: to, text: text, contextID: contextID, wamid: wamid, template: templateName))
            state.calls.append("sent:\(to)")
            let ready = state.waiters.filter { $0.count <= state.sent.count }.map(\.continuation)
            state.waiters.removeAll { $0.count <= state.sent.count }
            return (wamid, ready)
        }
        for continuation in ready { continuation.resume() }
        if latency > .zero { try await Task.sleep(for: latency) }
        return Self.json(
            200,
            #"{"messaging_product":"whatsapp","contacts":[{"input":"\#(to)","wa_id":"\#(to)"}],"messages":[{"id":"\#(wamid)"}]}"#
        )
    }

    private func phone(_ request: Request, phone: String) async throws -> Response {
        state.withLock { $0.probes += 1 }
        switch fault("phone") {
        case .respond(let status, let body)?: return Self.json(status, body)
        case .hang?:
            try await Task.sleep(for: .seconds(3600))
            return Self.json(500, "{}")
        case nil: break
        }
        guard authorized(request) else { return Self.invalidToken }
        return Self.json(
            200, #"{"display_phone_number":"+1 555-010-0999","verified_name":"Switchboard Test","id":"\#(phone)"}"#)
    }

    static func start(token: String = "EAAG-fake-graph-token", phoneNumberID: String = "109900001") async throws
        -> FakeGraphAPI
    {
        let box = Mutex<FakeGraphAPI?>(nil)
        let router = Router()
        router.post("/:version/:phone/messages") { request, context -> Response in
            let bytes = try await request.body.collect(upTo: 1 << 20)
            let body = (try? JSONSerialization.jsonObject(with: Data(bytes.readableBytesView))) as? [String: Any] ?? [:]
            guard let api = box.withLock({ $0 }) else { return FakeGraphAPI.json(503, "{}") }
            return try await api.messages(request, phone: context.parameters.get("phone") ?? "", body: body)
        }
        router.get("/:version/:phone") { request, context -> Response in
            guard let api = box.withLock({ $0 }) else { return FakeGraphAPI.json(503, "{}") }
            return try await api.phone(request, phone: context.parameters.get("phone") ?? "")
        }
        let (portStream, portContinuation) = AsyncStream<Int>.makeStream()
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                portContinuation.yield(channel.localAddress?.port ?? 0)
                portContinuation.finish()
            }, logger: Logger(label: "fake-graph-api", factory: { _ in SwiftLogNoOpLogHandler() }))
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var ports = portStream.makeAsyncIterator()
        guard let port = await ports.next() else { throw TestTimeout(what: "the fake Graph API to listen") }
        let api = FakeGraphAPI(token: token, phoneNumberID: phoneNumberID, port: port, task: task)
        box.withLock { $0 = api }
        return api
    }
}

/// Posts to a webhook route the way the providers do.
struct WebhookClient: Sendable {
    let baseURL: String
    let client: HTTPClient

    init(baseURL: String, client: HTTPClient = .shared) {
        self.baseURL = baseURL
        self.client = client
    }

    struct Answer: Sendable {
        var status: Int
        var body: String
        /// The `Allow` header, when the answer has one.
        var allow: String? = nil
    }

    /// A request without a body with any method, e.g. `PUT /whatsapp/webhook`.
    func send(_ method: String, _ path: String) async throws -> Answer {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .init(rawValue: method)
        let response = try await client.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        return Answer(
            status: Int(response.status.code), body: String(buffer: bytes), allow: response.headers.first(name: "Allow")
        )
    }

    func post(
        _ path: String, body: [UInt8], headers: [(String, String)] = [], contentType: String? = "application/json"
    ) async throws -> Answer {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .POST
        if let contentType { request.headers.add(name: "Content-Type", value: contentType) }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: body))
        let response = try await client.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        return Answer(status: Int(response.status.code), body: String(buffer: bytes))
    }

    func get(_ pathAndQuery: String) async throws -> Answer {
        let request = HTTPClientRequest(url: baseURL + pathAndQuery)
        let response = try await client.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        return Answer(status: Int(response.status.code), body: String(buffer: bytes))
    }

    /// A Telegram update with the secret token header.
    func telegram(_ json: String, secret: String?) async throws -> Answer {
        try await post(
            "/telegram/webhook", body: Array(json.utf8),
            headers: secret.map { [("X-Telegram-Bot-Api-Secret-Token", $0)] } ?? [])
    }

    /// A WhatsApp notification signed over its raw bytes.
    func whatsapp(_ json: String, secret: String?) async throws -> Answer {
        let body = Array(json.utf8)
        return try await post(
            "/whatsapp/webhook", body: body,
            headers: secret.map { [("X-Hub-Signature-256", WhatsAppWebhook.signature(of: body, secret: $0))] } ?? [])
    }
}
