import EventLog
import Foundation
import Projections
import SwitchboardEvents

/// An `agent` process started from the directory this `bench` runs from (build both: `swift build -c release`).
struct AgentChild {
    let process = Process()

    init(name: String, data: String, environment: [String: String]) throws {
        let directory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        let executable = directory.appendingPathComponent("agent")
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw BenchError("no agent next to bench at \(executable.path): build both (swift build -c release)")
        }
        process.executableURL = executable
        process.environment = ProcessInfo.processInfo.environment.merging(
            ["DATA_DIR": data, "WORKER_ID": name, "PORT": "0", "SNAPSHOT_EVERY": "0", "LOG_LEVEL": "warning"]
                .merging(environment) { $1 }
        ) { $1 }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    func signal(_ signal: Int32) {
        kill(process.processIdentifier, signal)
        process.waitUntilExit()
    }
}

/// Agents of one role started one after another on one log, and the lease events a handoff waits for.
final class HandoffAgents {
    let runner: Runner
    let log: EventLog
    let data: String
    let environment: [String: String]
    let prefix: String
    /// Each agent in a directory of its own under `data` (the log is on PostgreSQL: nothing on disk is shared).
    let separateDirectories: Bool
    private var serial = 0

    init(
        runner: Runner, log: EventLog, data: String, environment: [String: String], prefix: String,
        separateDirectories: Bool = false
    ) {
        self.runner = runner
        self.log = log
        self.data = data
        self.environment = environment
        self.prefix = prefix
        self.separateDirectories = separateDirectories
    }

    /// Starts the next agent (`<prefix>-<n>`).
    func start() throws -> (name: String, child: AgentChild) {
        serial += 1
        let name = "\(prefix)-\(serial)"
        var directory = data
        if separateDirectories {
            directory = data + "/" + name
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        return (name, try AgentChild(name: name, data: directory, environment: environment))
    }

    /// The `lease.acquired` of `name` from `seq` on.
    func acquired(by name: String, from seq: UInt64) async throws -> Record {
        try await runner.awaitEvent(log, from: seq, "\(name)'s lease.acquired") { _, event in
            if case .leaseAcquired(let acquired) = event { return acquired.ownerWorkerID == name }
            return false
        }.record
    }

    /// Waits until `name` contends (its `lease.denied`) from `seq` on.
    func contending(_ name: String, from seq: UInt64) async throws {
        _ = try await runner.awaitEvent(log, from: seq, "\(name)'s lease.denied") { _, event in
            if case .leaseDenied(let denied) = event { return denied.requesterWorkerID == name }
            return false
        }
    }
}

/// Closes the engine from a `defer` in async code (the blocking close, from a synchronous context).
func closeBlocking(_ engine: Switchboard) { engine.close() }

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension Runner {
    /// Waits for the first record from `seq` on whose event matches, for at most `seconds`.
    func awaitEvent(
        _ log: EventLog, from seq: UInt64, within seconds: Double = 30, _ what: String,
        _ matches: @escaping @Sendable (Record, SwitchboardEvent) -> Bool
    ) async throws -> (record: Record, event: SwitchboardEvent) {
        try await withThrowingTaskGroup(of: (Record, SwitchboardEvent)?.self) { group in
            group.addTask {
                for try await record in log.tail(from: seq) {
                    if let event = try record.event(), matches(record, event) { return (record, event) }
                }
                return nil
            }
            group.addTask {
                try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let found = first else {
                throw BenchError("timed out waiting for \(what)")
            }
            return found
        }
    }

    /// Graceful and crash handoff of the WhatsApp lease between agent processes.
    func failover() async throws { try await failover(.failover, database: nil) }

    /// The same handoffs with the log in `database`'s schema when given (every agent then in a directory of its
    /// own, sharing only the database); the lines then say `"backend": "postgres"`.
    func failover(_ scenario: Scenario, database: (url: String, schema: String)?) async throws {
        let rounds = 20
        let ttlMilliseconds = 1_000
        let data = scratch + "/failover"
        var environment = [
            "AGENT_ROLE": "whatsapp", "AGENT_TEST_SHORT_LEASES": "1", "WHATSAPP_LEASE_TTL_MS": "\(ttlMilliseconds)",
            "WHATSAPP_HEARTBEAT_MS": "200", "WHATSAPP_CLOUD_ACCESS_TOKEN": "bench",
            "WHATSAPP_PHONE_NUMBER_ID": "1", "WHATSAPP_GRAPH_BASE_URL": "http://127.0.0.1:9/v21.0",
        ]
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        var extra: [String: Any] = [:]
        let engine: Switchboard
        if let database {
            environment.merge(
                ["EVENTLOG_BACKEND": "postgres", "DATABASE_URL": database.url, "EVENTLOG_SCHEMA": database.schema]
            ) { $1 }
            engine = try openPostgresEngine(url: database.url, schema: database.schema, directory: data + "/observer")
            extra["backend"] = "postgres"
        } else {
            engine = try Switchboard(
                EventLogConfiguration(directory: data, writer: WriterIdentity(role: "bench", workerID: "observer")),
                logger: logger)
        }
        defer { closeBlocking(engine) }
        let log = engine.log
        let agents = HandoffAgents(
            runner: self, log: log, data: data, environment: environment, prefix: "wa",
            separateDirectories: database != nil)
        func start() throws -> (name: String, child: AgentChild) { try agents.start() }
        func acquired(by name: String, from seq: UInt64) async throws -> Record {
            try await agents.acquired(by: name, from: seq)
        }
        func contending(_ name: String, from seq: UInt64) async throws { try await agents.contending(name, from: seq) }
        var holder = try start()
        _ = try await acquired(by: holder.name, from: 1)
        var graceful: [UInt64] = []  // released -> acquired, log clock, microseconds
        var gracefulWall: [UInt64] = []  // SIGTERM sent -> acquisition seen here
        var crash: [UInt64] = []  // expiry -> acquired, log clock
        var crashWall: [UInt64] = []  // SIGKILL -> acquisition seen here
        for round in 0..<(2 * rounds) {
            let from = try log.lastSeq() + 1
            let standby = try start()
            try await contending(standby.name, from: from)
            let mark = try log.lastSeq() + 1
            let t0 = RawLMDBBaseline.monotonicNanoseconds()
            if round < rounds {
                holder.child.signal(SIGTERM)
                let released = try await awaitEvent(log, from: mark, "lease.released") { _, event in
                    if case .leaseReleased = event { return true }
                    return false
                }
                let taken = try await acquired(by: standby.name, from: mark)
                gracefulWall.append((RawLMDBBaseline.monotonicNanoseconds() - t0) / 1000)
                graceful.append(UInt64(max(0, taken.timestamp.microseconds - released.record.timestamp.microseconds)))
            } else {
                holder.child.signal(SIGKILL)
                guard let dead = try engine.lease("whatsapp/default") else { throw BenchError("no lease") }
                let taken = try await acquired(by: standby.name, from: mark)
                crashWall.append((RawLMDBBaseline.monotonicNanoseconds() - t0) / 1000)
                crash.append(UInt64(max(0, taken.timestamp.microseconds - dead.expiresAt.microseconds)))
            }
            holder = standby
        }
        holder.child.signal(SIGTERM)
        try report(
            extra.merging([
                "scenario": scenario.rawValue, "case": "graceful", "rounds": rounds,
                "value": round(percentile(graceful, 0.99)), "unit": "ms (p99, lease.released -> lease.acquired)",
                "p50_ms": round(percentile(graceful, 0.5)), "p99_ms": round(percentile(graceful, 0.99)),
                "sigterm_to_acquired_p50_ms": round(percentile(gracefulWall, 0.5)),
                "sigterm_to_acquired_p99_ms": round(percentile(gracefulWall, 0.99)),
                "original_ms": 3000, "target_p99_ms": 100,
            ]) { $1 })
        try report(
            extra.merging([
                "scenario": scenario.rawValue, "case": "crash", "rounds": rounds, "ttl_ms": ttlMilliseconds,
                "value": round(percentile(crash, 0.99)), "unit": "ms after expiry (p99, by the log clock)",
                "p50_ms": round(percentile(crash, 0.5)), "p99_ms": round(percentile(crash, 0.99)),
                "sigkill_to_acquired_p50_ms": round(percentile(crashWall, 0.5)),
                "sigkill_to_acquired_p99_ms": round(percentile(crashWall, 0.99)),
                "original_ms": "TTL + up to 3000", "target": "<= TTL + 100 ms",
            ]) { $1 })
    }

    /// RSS and CPU of an idle agent running the core, the HTTP surface and a held Telegram lease.
    func agentIdle() async throws {
        let data = scratch + "/idle"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let agent = try AgentChild(
            name: "idle-1", data: data,
            environment: [
                "AGENT_ROLE": "all", "ENABLE_WHATSAPP": "false", "TELEGRAM_BOT_TOKEN": "1:bench",
                "TELEGRAM_API_BASE_URL": "http://127.0.0.1:9", "TELEGRAM_MODE": "off",
            ])
        defer { agent.signal(SIGTERM) }
        try await Task.sleep(for: .seconds(2))  // settle after start
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        func cpuSeconds() throws -> Double {
            let stat = try String(contentsOfFile: "/proc/\(agent.pid)/stat", encoding: .utf8)
            let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
            // After the command: state is field 3, utime 14 and stime 15 (1-based), so indexes 11 and 12 here.
            guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else {
                throw BenchError("unreadable /proc stat")
            }
            return (user + system) / ticks
        }
        /// A numeric field of a /proc file (`kB` values in kB).
        func field(_ file: String, _ name: String) throws -> Double {
            let text = try String(contentsOfFile: "/proc/\(agent.pid)/\(file)", encoding: .utf8)
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }),
                let value = Double(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "")
            else { throw BenchError("no \(name) in /proc/\(agent.pid)/\(file)") }
            return value
        }
        let seconds = 10.0
        let before = try cpuSeconds()
        try await Task.sleep(for: .seconds(seconds))
        let cpu = (try cpuSeconds() - before) / seconds * 100
        try report([
            "scenario": Scenario.agentIdle.rawValue, "value": round(try field("status", "VmRSS") / 1024, 1),
            "unit": "MB RSS",
            // RSS is mostly clean pages of the binary and of the shared Swift and Foundation libraries (shared by
            // every agent on the host); the process's own memory is the anonymous part.
            "rss_anon_mb": round(try field("status", "RssAnon") / 1024, 1),
            "rss_file_mb": round(try field("status", "RssFile") / 1024, 1),
            "pss_mb": round(try field("smaps_rollup", "Pss") / 1024, 1),
            "threads": Int(try field("status", "Threads")),
            "cpu_percent": round(cpu, 2), "seconds": seconds, "target_rss_mb": 30,
        ])
    }
}
