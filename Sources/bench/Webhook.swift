import AsyncHTTPClient
import EventLog
import Foundation
import Hummingbird
import Logging
import NIOCore
import Projections
import Workers

extension Runner {
    /// `POST /telegram/webhook` served by the agent's webhook route in this process, hit by 50 concurrent HTTP
    /// clients with distinct updates (each a new message that starts a reply job): accepted requests per second
    /// into the durable log, and the latency from sending a request to its answer — which is written only after
    /// the update's transaction committed.
    func webhook() async throws {
        let clients = 50
        let requests = 5_000
        let secret = "bench-secret"
        let engine = try openEngine("ours")
        let ingress = ChannelIngress(engine: engine, logger: logger)
        let route = TelegramWebhook(
            secret: ChannelSecret(secret),
            inbound: TelegramInbound(
                accountID: "default", access: ChannelAccess(channel: "telegram", policy: .open), chats: TelegramChats()),
            ingress: ingress, maxBodyBytes: 1 << 20, logger: logger)
        let router = Router()
        ChannelRoutes(telegram: route).add(to: router)
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                portContinuation.yield(channel.localAddress?.port ?? 0)
                portContinuation.finish()
            }, logger: logger)
        let server = Task { try await app.runService(gracefulShutdownSignals: []) }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw BenchError("the webhook server did not start") }
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = clients
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
        let url = "http://127.0.0.1:\(port)/telegram/webhook"
        func post(_ n: Int) async throws -> (status: UInt, nanoseconds: UInt64) {
            let chat = 10_000 + n % 500
            let body =
                #"{"update_id":\#(n),"message":{"message_id":\#(n),"date":1700000000,"from":{"id":\#(chat),"is_bot":false,"first_name":"Bench"},"chat":{"id":\#(chat),"type":"private"},"text":"hello number \#(n), how are you today?"}}"#
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "X-Telegram-Bot-Api-Secret-Token", value: secret)
            request.body = .bytes(ByteBuffer(string: body))
            let t0 = RawLMDBBaseline.monotonicNanoseconds()
            let response = try await client.execute(request, timeout: .seconds(60))
            _ = try await response.body.collect(upTo: 1 << 16)
            return (response.status.code, RawLMDBBaseline.monotonicNanoseconds() - t0)
        }
        // Warm the connections.
        for n in 0..<clients { _ = try await post(1_000_000 + n) }
        let startSeq = try engine.log.lastSeq()
        let startCommits = engine.log.commitCount
        let cpuStart = processCPUSeconds()
        let start = RawLMDBBaseline.monotonicNanoseconds()
        let results = try await withThrowingTaskGroup(of: [(UInt, UInt64)].self) { group in
            for c in 0..<clients {
                group.addTask {
                    var out: [(UInt, UInt64)] = []
                    var n = c
                    while n < requests {
                        let result = try await post(n)
                        out.append((result.status, result.nanoseconds))
                        n += clients
                    }
                    return out
                }
            }
            var all: [(UInt, UInt64)] = []
            for try await part in group { all += part }
            return all
        }
        let seconds = Double(RawLMDBBaseline.monotonicNanoseconds() - start) / 1e9
        let cpu = processCPUSeconds() - cpuStart
        let events = try engine.log.lastSeq() - startSeq
        let commits = engine.log.commitCount - startCommits
        try await client.shutdown()
        server.cancel()
        await engine.close()
        let accepted = results.filter { $0.0 == 200 }.count
        let latencies = results.map(\.1)
        try report([
            "scenario": Scenario.webhook.rawValue, "value": round(Double(accepted) / seconds), "unit": "requests/s",
            "p50_us": round(percentile(latencies, 0.5)), "p99_us": round(percentile(latencies, 0.99)),
            "requests": requests, "accepted": accepted, "clients": clients, "events": events, "commits": commits,
            "events_per_commit": round(Double(events) / Double(max(1, commits)), 1),
            "cpu_us_per_request": round(cpu / Double(requests) * 1e6, 1),
            "note": "one process serves HTTP, decides and commits; the clients run in the same process",
        ])
    }
}
