import AsyncHTTPClient
import EventLog
import Foundation
import Hummingbird
import Logging
import NIOCore
import Projections
import Prometheus
import ServiceLifecycle
import Synchronization
import TestSupport
import Workers

/// A wall clock the test moves.
final class TestClock: Sendable {
    private let now = Mutex(Date())
    var date: Date { now.withLock { $0 } }
    func advance(_ seconds: Double) { now.withLock { $0 += seconds } }
}

/// An HTTP answer, body read whole.
struct WebAnswer {
    var status: Int
    var headers: [(name: String, value: String)]
    var body: String

    func header(_ name: String) -> String? { headers.first { $0.name.lowercased() == name.lowercased() }?.value }
    func headers(_ name: String) -> [String] {
        headers.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
    }
    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
    }
}

/// An owner's signed-in browser: its session cookie and CSRF token.
struct WebLogin {
    var cookie: String
    var csrf: String
    var headers: [(String, String)] { [("Cookie", "\(WebAuth.cookieName)=\(cookie)")] }
}

/// One server-sent event as a client parses it.
struct SSEEvent: Sendable, Equatable {
    var id: UInt64?
    var event: String
    var data: String
}

/// The web chat on a real Hummingbird server on 127.0.0.1 (a free port) over a real LMDB log in a temporary
/// directory, and an AsyncHTTPClient that does not follow redirects.
final class WebHarness: Sendable {
    let directory: TemporaryDirectory
    let log: TestLog
    let chat: WebChat
    let port: Int
    let clock: TestClock
    let client: HTTPClient
    private let task: Task<Void, any Error>

    var engine: Switchboard { log.engine }
    var base: String { "http://127.0.0.1:\(port)" }

    private init(
        directory: TemporaryDirectory, log: TestLog, chat: WebChat, port: Int, clock: TestClock,
        task: Task<Void, any Error>
    ) {
        self.directory = directory
        self.log = log
        self.chat = chat
        self.port = port
        self.clock = clock
        self.task = task
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    static let password = "correct horse battery"

    static func start(
        _ environment: [String: String] = ["WEB_PASSWORD": password], heartbeat: Duration = .seconds(15),
        httpClient: HTTPClient = .shared
    ) async throws -> WebHarness {
        let directory = TemporaryDirectory()
        let log = try TestLog(directory.path)
        let logger = Logger(label: "web-test", factory: { _ in SwiftLogNoOpLogHandler() })
        let settings = try WebSettings(
            environment: environment, dataDirectory: directory.path, host: "127.0.0.1", port: 0)
        let clock = TestClock()
        let store = try SessionStore(backend: .log, engine: log.engine)
        let chat = try WebChat(
            engine: log.engine, settings: settings, sessionStore: store, httpClient: httpClient, heartbeat: heartbeat,
            clock: { clock.date }, logger: logger)
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = HTTPSurface.application(
            host: "127.0.0.1", port: 0, engine: log.engine,
            status: WorkerStatus(role: "web", workerID: "web-test", instance: "test"),
            registry: PrometheusCollectorRegistry(), web: chat,
            onListening: { port in
                continuation.yield(port)
                continuation.finish()
            }, logger: logger)
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw TestTimeout(what: "the web server's port") }
        return WebHarness(directory: directory, log: log, chat: chat, port: port, clock: clock, task: task)
    }

    func stop() async {
        chat.shutdown.fire()
        task.cancel()
        _ = await task.result
        try? await client.shutdown()
        log.close()
    }

    /// Runs `body` with a started harness and stops it afterwards, whether `body` threw or not.
    static func with(
        _ environment: [String: String] = ["WEB_PASSWORD": password], heartbeat: Duration = .seconds(15),
        httpClient: HTTPClient = .shared, _ body: (WebHarness) async throws -> Void
    ) async throws {
        let harness = try await start(environment, heartbeat: heartbeat, httpClient: httpClient)
        let result: Result<Void, any Error>
        do {
            try await body(harness)
            result = .success(())
        } catch {
            result = .failure(error)
        }
        await harness.stop()
        try result.get()
    }

    func request(
        _ method: String, _ path: String, headers: [(String, String)] = [], body: String? = nil
    ) async throws -> WebAnswer {
        var request = HTTPClientRequest(url: base + path)
        request.method = .init(rawValue: method)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await client.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 8 << 20)
        return WebAnswer(
            status: Int(response.status.code), headers: response.headers.map { ($0.name, $0.value) },
            body: String(buffer: bytes))
    }

    func get(_ path: String, _ login: WebLogin? = nil, headers: [(String, String)] = []) async throws -> WebAnswer {
        try await request("GET", path, headers: (login?.headers ?? []) + headers)
    }

    /// A JSON POST with the session's cookie and CSRF token.
    func postJSON(_ path: String, _ login: WebLogin?, _ body: String, csrf: Bool = true) async throws -> WebAnswer {
        var headers = login?.headers ?? []
        headers.append(("Content-Type", "application/json"))
        if csrf, let login { headers.append(("X-CSRF-Token", login.csrf)) }
        return try await request("POST", path, headers: headers, body: body)
    }

    func loginAttempt(_ secret: String, headers: [(String, String)] = []) async throws -> WebAnswer {
        let form = "secret=\(secret.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")&next=%2F"
        return try await request(
            "POST", "/login", headers: [("Content-Type", "application/x-www-form-urlencoded")] + headers, body: form)
    }

    /// Signs in and reads the CSRF token from `/api/session`.
    func login(_ secret: String = password) async throws -> WebLogin {
        let answer = try await loginAttempt(secret)
        guard answer.status == 303, let setCookie = answer.header("Set-Cookie"),
            let value = setCookie.split(separator: ";").first?.split(separator: "=", maxSplits: 1).last
        else { throw TestTimeout(what: "a session cookie (got \(answer.status))") }
        var login = WebLogin(cookie: String(value), csrf: "")
        let session = try await get("/api/session", login)
        login.csrf = session.json["csrf"] as? String ?? ""
        return login
    }

    /// Opens the event stream of `conversationID` and reads events until `until` says stop (or `seconds` pass).
    func events(
        _ conversationID: String, _ login: WebLogin, headers: [(String, String)] = [], query: String = "",
        within seconds: Double = 20, until: @escaping @Sendable ([SSEEvent], _ comments: Int) -> Bool
    ) async throws -> (events: [SSEEvent], comments: Int, ended: Bool) {
        var request = HTTPClientRequest(url: base + "/api/conversations/\(conversationID)/events" + query)
        for (name, value) in login.headers + headers { request.headers.add(name: name, value: value) }
        let client = client
        let prepared = request
        return try await within(seconds, "events of \(conversationID)") {
            let response = try await client.execute(prepared, timeout: .seconds(Int64(seconds)))
            guard response.status == .ok else { throw TestTimeout(what: "an event stream (\(response.status))") }
            var parser = SSEParser()
            for try await chunk in response.body {
                parser.feed(String(buffer: chunk))
                if until(parser.events, parser.comments) { return (parser.events, parser.comments, false) }
            }
            return (parser.events, parser.comments, true)
        }
    }
}

/// Parses `text/event-stream` text as a browser does (fields `id`, `event`, `data`; `:` comments).
struct SSEParser {
    var events: [SSEEvent] = []
    var comments = 0
    private var pending = ""
    private var id: UInt64?
    private var event = "message"
    private var data: [String] = []

    mutating func feed(_ text: String) {
        pending += text
        while let newline = pending.firstIndex(of: "\n") {
            let line = String(pending[..<newline])
            pending.removeSubrange(...newline)
            if line.isEmpty {
                if !data.isEmpty { events.append(SSEEvent(id: id, event: event, data: data.joined(separator: "\n"))) }
                id = nil
                event = "message"
                data = []
            } else if line.hasPrefix(":") {
                comments += 1
            } else {
                let parts = line.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
                let value = parts.count > 1 ? String(parts[1].drop { $0 == " " }) : ""
                switch parts[0] {
                case "id": id = UInt64(value)
                case "event": event = value
                case "data": data.append(value)
                default: break
                }
            }
        }
    }
}
