import AsyncHTTPClient
import EventLog
import Foundation
import Hummingbird
import Logging
import NIOCore
import Projections
import SwitchboardEvents
import Synchronization
import TestSupport
import Workers

/// A provider on 127.0.0.1 for the channel scenarios: WhatsApp Cloud's `POST /v21.0/<phone>/messages` and
/// Telegram's `POST /bot<token>/sendMessage`, answered after `latency`, each arrival timed; `hangNext` makes the
/// next call wait forever (a send in flight when its sender dies).
final class BenchProvider: Sendable {
    struct Arrival: Sendable {
        var recipient: String
        var nanoseconds: UInt64
    }

    /// What the routes record, shared with the server's handlers.
    final class Calls: Sendable {
        private struct State {
            var arrivals: [Arrival] = []
            var hangNext = false
            var waiters: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []
        }

        private let state = Mutex(State())

        var arrivals: [Arrival] { state.withLock { $0.arrivals } }
        func hangNext() { state.withLock { $0.hangNext = true } }

        /// Records a call; `true` when it must hang.
        func arrive(recipient: String) -> Bool {
            let (hang, ready) = state.withLock { state -> (Bool, [CheckedContinuation<Void, Never>]) in
                state.arrivals.append(
                    Arrival(recipient: recipient, nanoseconds: RawLMDBBaseline.monotonicNanoseconds()))
                let hang = state.hangNext
                state.hangNext = false
                let ready = state.waiters.filter { $0.count <= state.arrivals.count }.map(\.continuation)
                state.waiters.removeAll { $0.count <= state.arrivals.count }
                return (hang, ready)
            }
            for continuation in ready { continuation.resume() }
            return hang
        }

        func waitForArrivals(_ count: Int) async {
            await withCheckedContinuation { continuation in
                let ready = state.withLock { state -> Bool in
                    if state.arrivals.count >= count { return true }
                    state.waiters.append((count, continuation))
                    return false
                }
                if ready { continuation.resume() }
            }
        }
    }

    let port: Int
    let calls: Calls
    private let server: Task<Void, any Error>

    private init(port: Int, calls: Calls, server: Task<Void, any Error>) {
        self.port = port
        self.calls = calls
        self.server = server
    }

    var arrivals: [Arrival] { calls.arrivals }
    func hangNext() { calls.hangNext() }
    func waitForArrivals(_ count: Int) async { await calls.waitForArrivals(count) }
    func stop() { server.cancel() }

    static func start(latency: Duration, logger: Logger) async throws -> BenchProvider {
        let calls = Calls()
        let router = Router()
        @Sendable func json(_ text: String) -> Response {
            Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        @Sendable func field(_ body: ByteBuffer, _ name: String) -> String {
            let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any]
            return object?[name].map { "\($0)" } ?? ""
        }
        router.post("/v21.0/:phone/messages") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            if calls.arrive(recipient: field(body, "to")) { try await Task.sleep(for: .seconds(3600)) }
            try await Task.sleep(for: latency)
            return json(#"{"messaging_product":"whatsapp","messages":[{"id":"wamid.bench"}]}"#)
        }
        router.post("/:bot/sendMessage") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            if calls.arrive(recipient: field(body, "chat_id")) { try await Task.sleep(for: .seconds(3600)) }
            try await Task.sleep(for: latency)
            return json(#"{"ok":true,"result":{"message_id":1,"date":1700000000,"chat":{"id":1,"type":"private"}}}"#)
        }
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                continuation.yield(channel.localAddress?.port ?? 0)
                continuation.finish()
            }, logger: logger)
        let server = Task { try await app.runService(gracefulShutdownSignals: []) }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw BenchError("the fake provider did not start") }
        return BenchProvider(port: port, calls: calls, server: server)
    }
}

/// A free TCP port on 127.0.0.1 (bound once and released).
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
            Glibc.bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
        }
    }
    guard bound else { throw BenchError("no free port") }
    return Int(UInt16(bigEndian: address.sin_port))
}

extension Runner {
    /// Waits until something listens on `port` (the agent's HTTP server), for at most 30 s.
    func awaitListening(_ port: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if (try? RawConnection(port: port)) != nil { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw BenchError("nothing listens on port \(port)")
    }

    /// Hostile HTTP clients against a spawned agent's webhook port while a provider posts valid, signed WhatsApp
    /// notifications: the valid ones' latency beside the same without abuse, and the agent's descriptors and RSS
    /// before, during and after (docs/channels.md, "Connection limits").
    func webhookAbuse() async throws {
        let port = try freePort()
        let secret = "bench-app-secret"
        let data = scratch + "/abuse"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let agent = try AgentChild(
            name: "abused", data: data,
            environment: [
                "AGENT_ROLE": "whatsapp", "PORT": "\(port)", "WHATSAPP_CLOUD_ACCESS_TOKEN": "bench",
                "WHATSAPP_PHONE_NUMBER_ID": "1", "WHATSAPP_GRAPH_BASE_URL": "http://127.0.0.1:9/v21.0",
                "WHATSAPP_CLOUD_APP_SECRET": secret, "WHATSAPP_DM_POLICY": "open", "AI_PROVIDER": "offline",
                "HTTP_HEAD_TIMEOUT_SECONDS": "2", "HTTP_BODY_TIMEOUT_SECONDS": "2",
            ])
        defer { agent.signal(SIGTERM) }
        try await awaitListening(port)
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
        let counter = Mutex(0)
        func valid() async throws -> UInt64 {
            let n = counter.withLock { value -> Int in
                value += 1
                return value
            }
            let body = Array(
                (#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"1","phone_number_id":"1"},"contacts":[{"profile":{"name":"B"},"wa_id":"15550001"}],"messages":[{"from":"15550001","id":"wamid.bench.\#(n)","timestamp":"1749416383","type":"text","text":{"body":"hello \#(n)"}}]},"field":"messages"}]}]}"#)
                    .utf8)
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/whatsapp/webhook")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "X-Hub-Signature-256", value: WhatsAppWebhook.signature(of: body, secret: secret))
            request.body = .bytes(ByteBuffer(bytes: body))
            let t0 = RawLMDBBaseline.monotonicNanoseconds()
            let response = try await client.execute(request, timeout: .seconds(30))
            _ = try await response.body.collect(upTo: 1 << 16)
            guard response.status.code == 200 else { throw BenchError("a valid webhook got \(response.status.code)") }
            return RawLMDBBaseline.monotonicNanoseconds() - t0
        }
        for _ in 0..<20 { _ = try await valid() }
        var quiet: [UInt64] = []
        for _ in 0..<300 { quiet.append(try await valid()) }
        let before = try ProcessFigures.of(agent.pid)
        // The attack, on a thread of its own (its socket calls block): 1 000 early-answered requests
        // (`Connection: close`, 10 MiB announced, 256 KiB sent, never closed by the client), then 300 stalled bodies.
        let hostile = 1_000
        let stalledCount = 300
        let attack = Mutex<(ended: Int, stalledEnded: Int, peak: ProcessFigures?, done: Bool)>((0, 0, nil, false))
        let pid = agent.pid
        let thread = Thread {
            let body = [UInt8](repeating: UInt8(ascii: "a"), count: 256 * 1024)
            var held: [RawConnection] = []
            var ended = 0
            for _ in 0..<(hostile / 100) {
                var batch: [RawConnection] = []
                for _ in 0..<100 {
                    guard let connection = try? RawConnection(port: port) else { continue }
                    connection.send(
                        "POST /no-such-path HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \(10 << 20)\r\n"
                            + "Connection: close\r\n\r\n")
                    connection.send(body)
                    batch.append(connection)
                }
                ended += RawConnection.awaitClosed(batch, until: .now + .seconds(10))
                held += batch
            }
            let peak = try? ProcessFigures.of(pid)
            var stalled: [RawConnection] = []
            for _ in 0..<stalledCount {
                guard let connection = try? RawConnection(port: port) else { continue }
                connection.send("POST /whatsapp/webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n{")
                stalled.append(connection)
            }
            let stalledEnded = RawConnection.awaitClosed(stalled, until: .now + .seconds(20))
            for connection in held + stalled { connection.close() }
            attack.withLock { $0 = (ended, stalledEnded, peak, true) }
        }
        thread.start()
        var during: [UInt64] = []
        while !attack.withLock({ $0.done }) { during.append(try await valid()) }
        let outcome = attack.withLock { $0 }
        try await client.shutdown()
        var after = try ProcessFigures.of(agent.pid)
        let settleBy = ContinuousClock.now + .seconds(5)
        while after.fileDescriptors > before.fileDescriptors && ContinuousClock.now < settleBy {
            try await Task.sleep(for: .milliseconds(50))
            after = try ProcessFigures.of(agent.pid)
        }
        let quietP99 = percentile(quiet, 0.99) / 1000
        let duringP99 = percentile(during, 0.99) / 1000
        try report([
            "scenario": Scenario.webhookAbuse.rawValue, "value": round(duringP99),
            "unit": "ms (p99 of valid webhooks during the abuse)", "baseline": round(quietP99),
            "ratio": round(quietP99 / max(duringP99, 0.001), 3),
            "p50_ms": round(percentile(during, 0.5) / 1000), "valid_requests": during.count,
            "hostile_early_answered": hostile, "hostile_ended_by_server": outcome.ended,
            "stalled_bodies": stalledCount, "stalled_ended_by_server": outcome.stalledEnded,
            "fds_before": before.fileDescriptors, "fds_peak": outcome.peak?.fileDescriptors ?? -1,
            "fds_after": after.fileDescriptors, "rss_kib_before": before.residentKiB,
            "rss_kib_peak": outcome.peak?.residentKiB ?? -1, "rss_kib_after": after.residentKiB,
            "note": "baseline: the same valid webhooks without abuse; deadlines of 2 s for heads and bodies",
        ])
    }

    /// Replies leaving one WhatsApp account's outbound loop through a provider that answers in `latency`
    /// (100 ms): 1 000 replies to 1 000 recipients, one send at a time (the old loop, the baseline) and with the
    /// default `OUTBOUND_CONCURRENCY` of 16, under WhatsApp's 80/s account limit.
    func outbound() async throws {
        let provider = try await BenchProvider.start(latency: .milliseconds(100), logger: logger)
        defer { provider.stop() }
        var rates: [Int: Double] = [:]
        for concurrency in [1, 16] {
            let count = concurrency == 1 ? 200 : 1_000
            let data = scratch + "/outbound-\(concurrency)"
            try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
            let engine = try Switchboard(
                EventLogConfiguration(directory: data, writer: WriterIdentity(role: "bench", workerID: "bench")),
                logger: logger)
            _ = try await engine.enqueueDeliveries(
                (0..<count).map { n in
                    NewDelivery(
                        idempotencyKey: "o-\(n)", channel: "whatsapp", accountID: "default",
                        recipient: "1555\(concurrency)\(n)", conversationID: "c-\(n)", text: "reply \(n)")
                })
            let already = provider.arrivals.count
            let agent = try AgentChild(
                name: "wa-\(concurrency)", data: data,
                environment: [
                    "AGENT_ROLE": "whatsapp", "WHATSAPP_CLOUD_ACCESS_TOKEN": "bench", "WHATSAPP_PHONE_NUMBER_ID": "1",
                    "WHATSAPP_GRAPH_BASE_URL": "http://127.0.0.1:\(provider.port)/v21.0",
                    "OUTBOUND_CONCURRENCY": "\(concurrency)", "AI_PROVIDER": "offline",
                ])
            await provider.waitForArrivals(already + count)
            let times = provider.arrivals[already...].map(\.nanoseconds)
            let seconds = Double((times.max() ?? 0) - (times.min() ?? 0)) / 1e9
            rates[concurrency] = Double(count - 1) / max(seconds, 1e-9)
            agent.signal(SIGTERM)
            await engine.close()
        }
        let ours = rates[16] ?? 0
        let baseline = rates[1] ?? 0
        try report([
            "scenario": Scenario.outbound.rawValue, "value": round(ours, 1), "unit": "replies/s",
            "baseline": round(baseline, 1), "ratio": round(ours / max(baseline, 1e-9), 2),
            "provider_latency_ms": 100, "account_limit_per_s": 80, "concurrency": 16,
            "note": "baseline: OUTBOUND_CONCURRENCY=1 (one send at a time, the loop before issue 21); target >= 70/s",
        ])
    }

    /// A crash with a send in flight, beside the plain crash handoff: the holder of a Telegram account (TTL 1 s,
    /// claims visible for a minute) is SIGKILLed while its provider call hangs; measured from the kill to the
    /// standby's lease (the plain handoff) and to the same recipient's next message sent (the in-flight one).
    func failoverInFlight() async throws {
        let rounds = 10
        let provider = try await BenchProvider.start(latency: .zero, logger: logger)
        defer { provider.stop() }
        let data = scratch + "/in-flight"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let environment = [
            "AGENT_ROLE": "telegram", "AGENT_TEST_SHORT_LEASES": "1", "WHATSAPP_LEASE_TTL_MS": "1000",
            "WHATSAPP_HEARTBEAT_MS": "200", "TELEGRAM_BOT_TOKEN": "1:bench", "TELEGRAM_MODE": "off",
            "TELEGRAM_API_BASE_URL": "http://127.0.0.1:\(provider.port)", "DELIVERY_VISIBILITY_MS": "60000",
            "AI_PROVIDER": "offline",
        ]
        let engine = try Switchboard(
            EventLogConfiguration(directory: data, writer: WriterIdentity(role: "bench", workerID: "observer")),
            logger: logger)
        defer { closeBlocking(engine) }
        let log = engine.log
        let agents = HandoffAgents(runner: self, log: log, data: data, environment: environment, prefix: "tg")
        var holder = try agents.start()
        _ = try await agents.acquired(by: holder.name, from: 1)
        var toLease: [UInt64] = []
        var toNextSend: [UInt64] = []
        for round in 0..<rounds {
            let from = try log.lastSeq() + 1
            let standby = try agents.start()
            try await agents.contending(standby.name, from: from)
            let recipient = "\(9_000 + round)"
            func delivery(_ part: Int) -> NewDelivery {
                NewDelivery(
                    idempotencyKey: "f-\(round)-\(part)", channel: "telegram", accountID: "default",
                    recipient: recipient, conversationID: "c-\(recipient)", text: "part \(part)")
            }
            provider.hangNext()
            let arrived = provider.arrivals.count
            _ = try await engine.enqueueDelivery(delivery(0))
            let next = try await engine.enqueueDelivery(delivery(1)).deliveryID
            await provider.waitForArrivals(arrived + 1)
            let mark = try log.lastSeq() + 1
            let t0 = RawLMDBBaseline.monotonicNanoseconds()
            holder.child.signal(SIGKILL)
            _ = try await agents.acquired(by: standby.name, from: mark)
            toLease.append((RawLMDBBaseline.monotonicNanoseconds() - t0) / 1000)
            _ = try await awaitEvent(log, from: mark, "the recipient's next delivery.sent") { _, event in
                if case .deliverySent(let sent) = event { return sent.deliveryID == next }
                return false
            }
            toNextSend.append((RawLMDBBaseline.monotonicNanoseconds() - t0) / 1000)
            holder = standby
        }
        holder.child.signal(SIGTERM)
        try report([
            "scenario": Scenario.failoverInFlight.rawValue, "rounds": rounds, "ttl_ms": 1000,
            "value": round(percentile(toNextSend, 0.99)), "unit": "ms (p99, SIGKILL -> the recipient's next send)",
            "p50_ms": round(percentile(toNextSend, 0.5)),
            "plain_handoff_p50_ms": round(percentile(toLease, 0.5)),
            "plain_handoff_p99_ms": round(percentile(toLease, 0.99)),
            "claim_visibility_ms": 60000,
            "note": "before issue 21 the recipient waited for the dead claim's visibility (TTL + visibility)",
        ])
    }
}
