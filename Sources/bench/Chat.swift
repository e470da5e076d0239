import AsyncHTTPClient
import EventLog
import Foundation
import Hummingbird
import Logging
import NIOCore

/// The web chat's latency: a message posted to `agent` (all roles, durable log) until the first streamed piece of
/// the reply reaches the browser's event stream, with the offline assistant and with a fake OpenAI-compatible
/// provider that streams at once; one chat, then 50 concurrent chats. Then Stop: a reply streaming from the fake
/// provider (which never ends it) is stopped, timed from the Stop's POST to the stream's `job.cancelled`.
extension Runner {
    func chat() async throws {
        let fake = try await FakeModelServer.start()
        defer { fake.stop() }
        for (variant, environment) in [
            ("offline", ["AI_PROVIDER": "offline"]),
            ("fake-provider", ["AI_BASE_URL": fake.baseURL, "AI_MODEL": "bench-model"]),
        ] {
            for chats in [1, 50] {
                let messages = chats == 1 ? 40 : 6
                try await chatRound(variant: variant, environment: environment, chats: chats, messages: messages)
            }
        }
        try await chatRound(
            variant: "stop", environment: ["AI_BASE_URL": fake.baseURL, "AI_MODEL": "bench-model"], chats: 1,
            messages: 40)
    }

    private func chatRound(variant: String, environment: [String: String], chats: Int, messages: Int) async throws {
        let data = scratch + "/chat-\(variant)-\(chats)"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let port = try freeLoopbackPort()
        let password = "bench-password"
        let agent = try AgentChild(
            name: "chat-1", data: data,
            environment: environment.merging(
                [
                    "AGENT_ROLE": "all", "PORT": "\(port)", "WEB_PASSWORD": password,
                    "CORE_CONCURRENCY": "\(min(64, max(4, chats)))",
                ]) { $1 })
        defer { agent.signal(SIGTERM) }
        let client = HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: HTTPClient.Configuration(
                redirectConfiguration: .disallow, timeout: .init(connect: .seconds(5), read: .seconds(120)),
                connectionPool: .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 256)))
        do {
            try await measure(
                client: client, port: port, password: password, variant: variant, chats: chats, messages: messages)
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }

    private func measure(
        client: HTTPClient, port: Int, password: String, variant: String, chats: Int, messages: Int
    ) async throws {
        let web = try await ChatClient.login(client: client, base: "http://127.0.0.1:\(port)", password: password)
        if variant == "stop" {
            let (stops, posts) = try await web.stopEach(id: "bench-stop", messages: messages)
            try report([
                "scenario": "chat", "variant": "stop", "concurrent_chats": chats, "messages": stops.count,
                "value": round(percentile(stops, 0.5)), "unit": "ms (p50, Stop posted → job.cancelled on SSE)",
                "p50_ms": round(percentile(stops, 0.5)), "p99_ms": round(percentile(stops, 0.99)),
                "baseline": "a message post's round trip in the same run (one durable write)",
                "post_p50_ms": round(percentile(posts, 0.5)), "post_p99_ms": round(percentile(posts, 0.99)),
            ])
            return
        }

        let start = RawLMDBBaseline.monotonicNanoseconds()
        let results = try await withThrowingTaskGroup(of: ([UInt64], [UInt64]).self) { group in
            for chat in 0..<chats {
                group.addTask {
                    try await web.converse(id: "bench-\(variant)-\(chats)-\(chat)", messages: messages)
                }
            }
            var firstToken: [UInt64] = []
            var posts: [UInt64] = []
            for try await (first, post) in group {
                firstToken += first
                posts += post
            }
            return (firstToken, posts)
        }
        let seconds = Double(RawLMDBBaseline.monotonicNanoseconds() - start) / 1e9
        try report([
            "scenario": "chat", "variant": variant, "concurrent_chats": chats, "messages": results.0.count,
            "value": round(percentile(results.0, 0.5)), "unit": "ms (p50, message posted → first token on SSE)",
            "p50_ms": round(percentile(results.0, 0.5)), "p99_ms": round(percentile(results.0, 0.99)),
            "post_p50_ms": round(percentile(results.1, 0.5)), "post_p99_ms": round(percentile(results.1, 0.99)),
            "replies_per_s": round(Double(results.0.count) / seconds, 1),
        ])
    }
}

/// A signed-in web client of a spawned agent.
struct ChatClient: Sendable {
    let client: HTTPClient
    let base: String
    let cookie: String
    let csrf: String

    /// Signs in; waits (up to 60 s) for the agent's server to answer first.
    static func login(client: HTTPClient, base: String, password: String) async throws -> ChatClient {
        let deadline = ContinuousClock.now + .seconds(60)
        var answer: HTTPClientResponse?
        while answer == nil {
            var login = HTTPClientRequest(url: base + "/login")
            login.method = .POST
            login.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            login.body = .bytes(ByteBuffer(string: "secret=\(password)"))
            do {
                answer = try await client.execute(login, timeout: .seconds(10))
            } catch {
                // The agent is still starting: its port is not open yet (it has no other way to tell).
                guard ContinuousClock.now < deadline else { throw BenchError("the agent did not answer: \(error)") }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        guard let answer, let cookie = answer.headers["Set-Cookie"].first?.split(separator: ";").first else {
            throw BenchError("sign-in refused")
        }
        var session = HTTPClientRequest(url: base + "/api/session")
        session.headers.add(name: "Cookie", value: String(cookie))
        let body = try await client.execute(session, timeout: .seconds(10)).body.collect(upTo: 1 << 16)
        struct Session: Decodable { var csrf: String }
        let csrf = try JSONDecoder().decode(Session.self, from: Data(body.readableBytesView)).csrf
        return ChatClient(client: client, base: base, cookie: String(cookie), csrf: csrf)
    }

    /// Holds the conversation's event stream open and sends `messages` messages one after another, each after the
    /// previous reply is final; returns the microseconds from each post to its reply's first `assistant.delta` on
    /// the stream, and each post's own round trip.
    func converse(id: String, messages: Int) async throws -> ([UInt64], [UInt64]) {
        var events = try await stream(id)
        var firstToken: [UInt64] = []
        var posts: [UInt64] = []
        for index in 0..<messages {
            let t0 = RawLMDBBaseline.monotonicNanoseconds()
            let jobID = try await post("message \(index): hello", to: id)
            posts.append((RawLMDBBaseline.monotonicNanoseconds() - t0) / 1000)
            var sawFirst = false
            while let event = try await events.next() {
                guard event.data.contains("\"\(jobID)\"") else { continue }
                if !sawFirst, event.name == "assistant.delta" {
                    firstToken.append((RawLMDBBaseline.monotonicNanoseconds() - t0) / 1000)
                    sawFirst = true
                }
                if event.name == "assistant.message", event.data.contains("\"final\":true") { break }
                if event.name == "job.dead" { throw BenchError("reply \(jobID) failed: \(event.data)") }
            }
        }
        return (firstToken, posts)
    }

    /// Sends `messages` messages whose replies never end by themselves, stops each once its first piece arrived,
    /// and returns the microseconds from each Stop's POST to its `job.cancelled` on the stream (the stream ending
    /// the reply), and each message post's round trip.
    func stopEach(id: String, messages: Int) async throws -> ([UInt64], [UInt64]) {
        var events = try await stream(id)
        var stops: [UInt64] = []
        var posts: [UInt64] = []
        for index in 0..<messages {
            let t0 = RawLMDBBaseline.monotonicNanoseconds()
            let jobID = try await post("stop me \(index)", to: id)
            posts.append((RawLMDBBaseline.monotonicNanoseconds() - t0) / 1000)
            var stoppedAt: UInt64?
            while let event = try await events.next() {
                guard event.data.contains("\"\(jobID)\"") else { continue }
                if stoppedAt == nil, event.name == "assistant.delta" {
                    stoppedAt = RawLMDBBaseline.monotonicNanoseconds()
                    try await send(["jobID": jobID], to: "/api/conversations/\(id)/stop", expect: 200)
                }
                if event.name == "job.cancelled", let stoppedAt {
                    stops.append((RawLMDBBaseline.monotonicNanoseconds() - stoppedAt) / 1000)
                    break
                }
                if event.name == "job.dead" || event.name == "job.completed" {
                    throw BenchError("reply \(jobID) ended before its Stop: \(event.name)")
                }
            }
        }
        return (stops, posts)
    }

    /// The conversation's event stream, held open.
    private func stream(_ id: String) async throws -> SSELines {
        var request = HTTPClientRequest(url: base + "/api/conversations/\(id)/events")
        request.headers.add(name: "Cookie", value: cookie)
        request.headers.add(name: "Accept", value: "text/event-stream")
        let response = try await client.execute(request, timeout: .seconds(600))
        guard response.status == .ok else { throw BenchError("event stream: \(response.status)") }
        return SSELines(response.body.makeAsyncIterator())
    }

    private func send(_ body: [String: String], to path: String, expect status: UInt) async throws {
        var request = HTTPClientRequest(url: base + path)
        request.method = .POST
        request.headers.add(name: "Cookie", value: cookie)
        request.headers.add(name: "X-CSRF-Token", value: csrf)
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(body)))
        let answer = try await client.execute(request, timeout: .seconds(30))
        let text = try await answer.body.collect(upTo: 1 << 16)
        guard answer.status.code == status else {
            throw BenchError("\(path): \(answer.status) \(String(buffer: text))")
        }
    }

    private func post(_ text: String, to conversation: String) async throws -> String {
        var request = HTTPClientRequest(url: base + "/api/conversations/\(conversation)/messages")
        request.method = .POST
        request.headers.add(name: "Cookie", value: cookie)
        request.headers.add(name: "X-CSRF-Token", value: csrf)
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(
            ByteBuffer(bytes: try JSONEncoder().encode(["clientID": UUID().uuidString, "text": text])))
        let answer = try await client.execute(request, timeout: .seconds(30))
        let body = try await answer.body.collect(upTo: 1 << 16)
        struct Accepted: Decodable { var jobID: String? }
        guard answer.status.code == 202,
            let jobID = try JSONDecoder().decode(Accepted.self, from: Data(body.readableBytesView)).jobID
        else { throw BenchError("post refused: \(answer.status) \(String(buffer: body))") }
        return jobID
    }
}

/// Server-sent events read from a response body: `event:` and `data:` lines, a blank line ends one.
struct SSELines {
    struct Event {
        var name = ""
        var data = ""
    }

    private var body: HTTPClientResponse.Body.AsyncIterator
    private var pending = ""

    init(_ body: HTTPClientResponse.Body.AsyncIterator) { self.body = body }

    mutating func next() async throws -> Event? {
        var event = Event()
        while true {
            while let newline = pending.firstIndex(of: "\n") {
                let line = String(pending[..<newline])
                pending = String(pending[pending.index(after: newline)...])
                if line.isEmpty {
                    if !event.name.isEmpty || !event.data.isEmpty { return event }
                    continue
                }
                if line.hasPrefix("event:") {
                    event.name = line.dropFirst(6).trimmingCharacters(in: .whitespaces)
                } else if line.hasPrefix("data:") {
                    event.data += line.dropFirst(5).trimmingCharacters(in: .whitespaces)
                }
            }
            guard let buffer = try await body.next() else { return nil }
            pending += String(buffer: buffer)
        }
    }
}

/// An OpenAI-compatible streaming server that answers every request at once with a short reply in 8 chunks — or,
/// for a request whose text says "stop me", with a reply that streams a piece every 20 ms and never ends (until the
/// client goes away, or a minute passed).
final class FakeModelServer: Sendable {
    let port: Int
    private let task: Task<Void, any Error>

    var baseURL: String { "http://127.0.0.1:\(port)/v1" }

    private init(port: Int, task: Task<Void, any Error>) {
        self.port = port
        self.task = task
    }

    static func start() async throws -> FakeModelServer {
        let router = Router()
        router.post("v1/chat/completions") { request, _ -> Response in
            var text = ""
            let chunk = { @Sendable (content: String, finish: String?) -> String in
                let reason = finish.map { "\"\($0)\"" } ?? "null"
                return "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"bench-model\","
                    + "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\(content)\"},\"finish_reason\":\(reason)}]}\n\n"
            }
            let asked = try await request.body.collect(upTo: 8 << 20)
            if String(buffer: asked).contains("stop me") {
                return Response(
                    status: .ok, headers: [.contentType: "text/event-stream"],
                    body: ResponseBody { writer in
                        for piece in 0..<3000 {
                            try await writer.write(ByteBuffer(string: chunk(" word\(piece)", nil)))
                            try await Task.sleep(for: .milliseconds(20))
                        }
                        try await writer.finish(nil)
                    })
            }
            for word in ["Hello", " from", " the", " bench", " model", ",", " streaming", "."] {
                text += chunk(word, nil)
            }
            text += chunk("", "stop") + "data: [DONE]\n\n"
            return Response(
                status: .ok, headers: [.contentType: "text/event-stream"],
                body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        let (stream, continuation) = AsyncStream<Int>.makeStream()
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                continuation.yield(channel.localAddress?.port ?? 0)
                continuation.finish()
            }, logger: Logger(label: "fake-model", factory: { _ in SwiftLogNoOpLogHandler() }))
        let task = Task { try await app.runService() }
        var iterator = stream.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else { throw BenchError("the fake model did not start") }
        return FakeModelServer(port: port, task: task)
    }

    func stop() { task.cancel() }
}

/// A free TCP port on 127.0.0.1 (bound, read, released; the agent binds it next).
func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw BenchError("no socket (errno \(errno))") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    guard bound == 0, named == 0 else { throw BenchError("no loopback port (errno \(errno))") }
    return Int(UInt16(bigEndian: address.sin_port))
}
