// Benchmarks of the event log, each beside a raw LMDB C-API baseline measured in the same run.
// Output contract: one JSON object per line with at least `scenario`, `value`, `unit`, and where a baseline
// exists `baseline` and `ratio` (ours ÷ baseline, higher is better); latencies as `p50_us`/`p99_us`.
import ArgumentParser
import EventLog
import EventLogPostgres
import SwitchboardEvents
import Foundation
import Logging
import Projections

@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Event-log benchmarks with a raw LMDB baseline in the same run.",
        subcommands: [List.self, Run.self, TailReader.self, JobWorker.self, SidecarBridgeCommand.self])
}

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Names the scenarios.")
    func run() {
        for scenario in Scenario.allCases { print("\(scenario.rawValue)\t\(scenario.summary)") }
    }
}

enum Scenario: String, CaseIterable, ExpressibleByArgument {
    case appendDurable = "append-durable"
    case groupCommit = "group-commit-64"
    case tailLatency = "tail-latency"
    case scan = "scan"
    case storage = "storage"
    case jobCycle = "job-cycle"
    case jobCycle4 = "job-cycle-4proc"
    case leaseOps = "lease-ops"
    case rebuild = "rebuild"
    case replay = "replay-1m"
    case failover = "failover"
    case failoverInFlight = "failover-in-flight"
    case failoverPostgres = "failover-postgres"
    case linkedDevice = "linked-device"
    case agentIdle = "agent-idle"
    case webhook = "webhook"
    case webhookAbuse = "webhook-abuse"
    case outbound = "outbound"
    case chat = "chat"
    case claimBacklog = "claim-backlog"
    case peers = "peers"
    case writerProcesses = "writer-processes"

    var summary: String {
        switch self {
        case .appendDurable: "durable append, one record per commit: ops/s and commit latency (target >= 0.8x raw)"
        case .groupCommit: "64 concurrent appenders, durable group commit: events/s (target >= 100k/s, >= 0.5x raw)"
        case .tailLatency: "commit to delivery in another process, doorbell-woken: p50/p99 (target p99 <= 1 ms)"
        case .scan: "full scan of 1,000,000 records with decode and checksum: events/s (target >= 1M/s)"
        case .storage: "stored bytes per event vs payload bytes, and vs raw LMDB storing the payload alone"
        case .jobCycle:
            "enqueue -> claim -> complete, durable, 64 concurrent workers in one process (target >= 20k cycles/s)"
        case .jobCycle4: "the same job cycle from 4 processes on one log: cycles/s in total"
        case .leaseOps: "lease acquire + renew, 64 resources, durable: ops/s"
        case .rebuild: "rebuild of all projections from seq 1 into a scratch environment: events/s (target >= 500k/s)"
        case .replay: "on a generated 1,000,000-event log: replay state --at (a few s) and audit duplicates (<= 10 s)"
        case .failover:
            "whatsapp lease handoff between agent processes, 20 graceful (SIGTERM) and 20 crash (SIGKILL) rounds: "
                + "p50/p99 (targets graceful p99 < 100 ms, crash <= TTL + 100 ms; the original: ~3 s, TTL + 3 s)"
        case .failoverPostgres:
            "the failover scenario with the log on PostgreSQL (a server started as in peers): agents in directories of "
                + "their own sharing only the database, 20 graceful and 20 crash rounds, p50/p99"
        case .failoverInFlight:
            "a Telegram holder SIGKILLed during a send (TTL 1 s, claims visible 60 s), 10 rounds: SIGKILL -> the "
                + "recipient's next send, p50/p99, beside SIGKILL -> the standby's lease (target: within TTL + 1 s)"
        case .linkedDevice:
            "the WhatsApp linked device between agent processes (TTL 1 s, heartbeat 200 ms), 10 rounds each: a "
                + "holder that cannot renew -> its sidecar gone (< TTL), SIGTERM -> gone (well under the heartbeat) "
                + "-> the next holder's sidecar, SIGKILL -> gone and -> the next one (TTL + 100 ms)"
        case .webhookAbuse:
            "1 000 early-answered 10 MiB requests never closed by the client and 300 stalled bodies against an agent: "
                + "p99 of valid webhooks during the abuse (baseline: without it), the agent's fds and RSS before/after"
        case .outbound:
            "1 000 WhatsApp replies to 1 000 recipients through a provider answering in 100 ms: replies/s with "
                + "OUTBOUND_CONCURRENCY=16 (baseline: one send at a time; target >= 70/s under the 80/s limit)"
        case .agentIdle:
            "an idle agent (AGENT_ROLE=all, a Telegram lease held): RSS and CPU over 10 s (target < 30 MB, ~0%)"
        case .webhook:
            "Telegram webhook over HTTP from 50 concurrent clients into the durable log: accepted requests/s, "
                + "p50/p99 request -> response (written after the commit)"
        case .claimBacklog:
            "claim cost inside the write transaction with 100 to 100,000 waiting: a blocked recipient, a busy "
                + "conversation, jobs in backoff, claims running (target: the 100,000 figure within 2x of the 100 one)"
        case .peers:
            "the job cycle beside Redis Streams (AOF, appendfsync always) and a PostgreSQL SKIP LOCKED queue "
                + "(pgbench, fsync on), servers started from the installed packages: cycles/s, 3 rounds interleaved"
        case .writerProcesses:
            "the job cycle from 1, 2 and 4 processes on one log, each with its own writer and connections, on "
                + "PostgreSQL (a server started as in peers) beside LMDB, interleaved: cycles/s and commands/s"
        case .chat:
            "web message posted → first streamed token on the chat's SSE stream, offline and fake provider: p50/p99, 1 "
                + "and 50 chats; then Stop posted → job.cancelled on the stream (p50/p99, fake provider)"
        }
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Runs one scenario, or all.")

    @Argument(help: "A scenario name from `bench list`, or `all`.")
    var name: String

    @Option(help: "Scratch directory for the environments (removed afterwards).")
    var scratch: String = NSTemporaryDirectory() + "switchboard-bench"

    @Option(help: "Records for the scan scenario.")
    var scanRecords = 1_000_000

    @Option(help: "Concurrent workers of the job-cycle scenario.")
    var jobWorkers = 64

    @Option(help: "Rebuilds of the same log in the rebuild scenario (the fastest is reported).")
    var rebuildRepeat = 1

    @Option(help: "Job cycles per worker and round in the peers scenario, for each system (job-cycle: 19200 in all).")
    var peerCycles = 300

    @Option(help: "Rounds of the peers scenario (ours, Redis, PostgreSQL in turn; medians are reported).")
    var peerRounds = 3

    @Option(help: "Job cycles per run of writer-processes, shared by its workers (--job-workers in all).")
    var processCycles = 6_400

    @Option(help: "How the peers scenario drives Redis: events (one thread, poll(2)) or threads (one per worker).")
    var peerRedisClient = RedisClientMode.events

    func run() async throws {
        let scenarios: [Scenario]
        if name == "all" {
            scenarios = Scenario.allCases
        } else if let scenario = Scenario(rawValue: name) {
            scenarios = [scenario]
        } else {
            throw ValidationError("unknown scenario \(name); see `bench list`")
        }
        let runner = Runner(
            scratch: scratch, scanRecords: scanRecords, jobWorkers: jobWorkers, rebuildRepeat: max(1, rebuildRepeat),
            peerCycles: max(1, peerCycles), peerRounds: max(1, peerRounds), redisClient: peerRedisClient,
            processCycles: max(1, processCycles))
        for scenario in scenarios {
            try? FileManager.default.removeItem(atPath: scratch)
            try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            try await runner.run(scenario)
        }
    }
}

/// `bench tail-reader`: the other process of the tail-latency scenario. Prints `seq monotonic-ns` per record.
struct TailReader: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Internal: the reading process of tail-latency.")
    @Option var dir: String
    @Option var from: UInt64
    @Option var count: Int

    func run() async throws {
        let log = try EventLog(
            EventLogConfiguration(directory: dir, writer: WriterIdentity(role: "bench", workerID: "tail-reader")),
            logger: Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() }))
        var lines: [String] = []
        lines.reserveCapacity(count)
        emit("ready")
        var received = 0
        for try await record in log.tail(from: from) {
            lines.append("\(record.seq) \(RawLMDBBaseline.monotonicNanoseconds())")
            received += 1
            if received == count { break }
        }
        await log.close()
        emit(lines.joined(separator: "\n"))
    }
}

func emit(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    bytes.withUnsafeBytes { _ = write(1, $0.baseAddress, $0.count) }
}

/// A payload the size of a typical job or delivery event (about 200 bytes of JSON).
let benchPayload = Array(
    ("{\"conversationID\":\"whatsapp/default/+15550001234\",\"idempotencyKey\":\"msg-0001:0\","
        + "\"jobID\":\"6f1c2a9e-2c57-4d8e-9a51-0c7f3b1e9d42\",\"kind\":\"reply\",\"maxAttempts\":3,"
        + "\"priority\":0,\"text\":\"hello there, how are you today?\"}").utf8)

func benchEvent() -> PendingEvent { PendingEvent(type: "bench.event", payload: benchPayload) }

struct Runner {
    let scratch: String
    let scanRecords: Int
    let jobWorkers: Int
    let rebuildRepeat: Int
    let peerCycles: Int
    let peerRounds: Int
    let redisClient: RedisClientMode
    let processCycles: Int
    let logger = Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() })

    func openLog(_ name: String, durability: Durability = .durable) throws -> EventLog {
        var configuration = EventLogConfiguration(
            directory: scratch + "/" + name, writer: WriterIdentity(role: "bench", workerID: "bench-1"))
        configuration.durability = durability
        configuration.initialMapSize = 4 << 30
        return try EventLog(configuration, logger: logger)
    }

    func run(_ scenario: Scenario) async throws {
        switch scenario {
        case .appendDurable: try await appendDurable()
        case .groupCommit: try await groupCommit()
        case .tailLatency: try await tailLatency()
        case .scan: try await scan()
        case .storage: try await storage()
        case .jobCycle: try await jobCycle()
        case .jobCycle4: try await jobCycleProcesses()
        case .leaseOps: try await leaseOps()
        case .rebuild: try await rebuild()
        case .replay: try await replayOneMillion()
        case .failover: try await failover()
        case .failoverInFlight: try await failoverInFlight()
        case .failoverPostgres: try await failoverPostgres()
        case .linkedDevice: try await linkedDevice()
        case .webhookAbuse: try await webhookAbuse()
        case .outbound: try await outbound()
        case .agentIdle: try await agentIdle()
        case .webhook: try await webhook()
        case .chat: try await chat()
        case .claimBacklog: try await claimBacklog()
        case .peers: try await peers()
        case .writerProcesses: try await writerProcesses()
        }
    }

    func report(_ fields: [String: Any]) throws {
        let data = try JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])
        emit(String(decoding: data, as: UTF8.self))
    }

    func percentile(_ values: [UInt64], _ p: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let index = min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))
        return Double(sorted[index]) / 1000
    }

    func round(_ x: Double, _ places: Int = 2) -> Double {
        let m = pow(10, Double(places))
        return (x * m).rounded() / m
    }
}

/// `bench job-worker`: one process of the job-cycle-4proc and writer-processes scenarios. Runs `--workers`
/// concurrent enqueue -> claim -> complete loops of `--cycles` each, then prints its cycle count and its writer's
/// commits. With `--database-url` the log is on PostgreSQL (`--dir` is then unused); with `--wait-for-go` it reads
/// a line from stdin after `ready` before it starts.
struct JobWorker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Internal: a process of job-cycle-4proc.")
    @Option var dir: String
    @Option var name: String
    @Option var workers: Int = 16
    @Option var cycles: Int = 500
    @Option var databaseURL: String?
    @Option var schema: String = PostgresSchema.defaultName
    @Flag var waitForGo = false

    func run() async throws {
        var configuration = EventLogConfiguration(directory: dir, writer: WriterIdentity(role: "bench", workerID: name))
        if let databaseURL { configuration.backend = .postgres(try PostgresURL(databaseURL), schema: schema) }
        let engine = try Switchboard(
            configuration, logger: Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() }))
        emit("ready")
        if waitForGo { _ = readLine() }
        let start = RawLMDBBaseline.monotonicNanoseconds()
        let done = try await runJobCycles(engine, workers: workers, cycles: cycles, prefix: name)
        let seconds = Double(RawLMDBBaseline.monotonicNanoseconds() - start) / 1e9
        emit("cycles \(done)")
        emit("commits \(engine.log.commitCount)")
        emit("seconds \(seconds)")
        await engine.close()
    }
}

/// `workers` concurrent loops, each enqueueing a job in its own conversation, claiming the next job and
/// completing it under its token. Returns the completed cycles.
/// User + system CPU time of this process so far (all threads), in seconds.
func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

func runJobCycles(_ engine: Switchboard, workers: Int, cycles: Int, prefix: String) async throws -> Int {
    try await withThrowingTaskGroup(of: Int.self) { group in
        for w in 0..<workers {
            group.addTask {
                var completed = 0
                for c in 0..<cycles {
                    _ = try await engine.enqueueJob(
                        NewJob(idempotencyKey: "\(prefix)-\(w)-\(c)", conversationID: "\(prefix)-conv-\(w)-\(c)"))
                    guard let claim = try await engine.claimJob() else { continue }
                    if case .accepted = try await engine.completeJob(claim.job.jobID, token: claim.token) {
                        completed += 1
                    }
                }
                return completed
            }
        }
        return try await group.reduce(0, +)
    }
}
