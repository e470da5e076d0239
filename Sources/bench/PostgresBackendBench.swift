import EventLog
import EventLogPostgres
import Foundation
import Projections

// Our log on the PostgreSQL backend (issue 26), on a server started as `peers` starts it (PostgresPeer: fsync on,
// synchronous_commit on, a Unix socket in the scratch directory).

extension PostgresPeer {
    /// The server's Unix socket as a `DATABASE_URL`.
    var databaseURL: String { "postgres://postgres@/postgres?host=\(directory)&port=\(port)" }

    /// The `peers` job cycle (the `job-cycle` scenario's loop) on our log in schema `switchboard` of this server:
    /// the server started, the schema dropped, a checkpoint, the log opened, then timed.
    func switchboardRound(_ round: Int, workers: Int, cycles: Int, runner: Runner) async throws -> PeerRound {
        let server = try startServer(log: "\(directory)/switchboard-\(round).log")
        defer { stopServer(server) }
        _ = try psql("DROP SCHEMA IF EXISTS switchboard CASCADE; CHECKPOINT;")
        guard let postmaster = postmasterPID else { throw BenchError("no postmaster.pid") }
        let engine = try runner.openPostgresEngine(
            url: databaseURL, schema: "switchboard", directory: "\(directory)/switchboard-\(round)")
        let walBefore = try walCounters()
        let serverStart = PostgresPeer.clusterCPUSeconds(postmaster)
        let cpuStart = processCPUSeconds()
        let machine = MachineCPU()
        let start = RawLMDBBaseline.monotonicNanoseconds()
        let completed: Int
        do {
            completed = try await runJobCycles(engine, workers: workers, cycles: cycles, prefix: "p")
        } catch {
            await engine.close()
            throw error
        }
        let seconds = Double(RawLMDBBaseline.monotonicNanoseconds() - start) / 1e9
        let cpu = processCPUSeconds() - cpuStart
        let serverCPU = PostgresPeer.clusterCPUSeconds(postmaster) - serverStart
        let commits = engine.log.commitCount
        await engine.close()
        let walAfter = try walCounters()
        var details = machine.since(measured: cpu + serverCPU)
        details["server_cpu_percent"] = serverCPU / seconds * 100
        details["process_cpu_percent"] = cpu / seconds * 100
        details["server_us_per_cycle"] = serverCPU / Double(max(1, completed)) * 1e6
        details["process_us_per_cycle"] = cpu / Double(max(1, completed)) * 1e6
        details["cycles_per_commit"] = Double(completed) / Double(max(1, commits))
        details["commits_per_second"] = Double(commits) / seconds
        if walAfter.syncs > walBefore.syncs {
            details["commits_per_wal_sync"] = Double(commits) / (walAfter.syncs - walBefore.syncs)
        }
        details["wal_bytes_per_cycle"] = (walAfter.bytes - walBefore.bytes) / Double(max(1, completed))
        return PeerRound(
            cyclesPerSecond: Double(completed) / seconds, cycles: completed, seconds: seconds, details: details)
    }
}

/// A `bench job-worker --wait-for-go` child: it opens its log, says `ready`, and starts on `go`.
final class JobWorkerChild {
    let process = Process()
    private let output = Pipe()
    private let input = Pipe()
    private var buffer = Data()

    init(_ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.arguments = ["job-worker", "--wait-for-go"] + arguments
        process.standardOutput = output
        process.standardInput = input
        try process.run()
    }

    /// Blocks until the child's log is open.
    func waitReady() throws {
        while !String(decoding: buffer, as: UTF8.self).contains("ready\n") {
            let chunk = output.fileHandleForReading.availableData
            guard !chunk.isEmpty else { throw BenchError("a job-worker exited before it was ready") }
            buffer.append(chunk)
        }
    }

    func go() { input.fileHandleForWriting.write(Data("go\n".utf8)) }

    /// Reads to the end and waits for the exit: the cycles completed, the writer's commits and the seconds from
    /// `go` to the last cycle.
    func finish() throws -> (cycles: Int, commits: Int, seconds: Double) {
        buffer.append(output.fileHandleForReading.readDataToEndOfFile())
        process.waitUntilExit()
        var fields: [String: Double] = [:]
        for line in String(decoding: buffer, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let value = Double(parts[1]) { fields[String(parts[0])] = value }
        }
        guard process.terminationStatus == 0, let cycles = fields["cycles"], let seconds = fields["seconds"] else {
            throw BenchError("a job-worker exited \(process.terminationStatus) without its counts")
        }
        return (Int(cycles), Int(fields["commits"] ?? 0), seconds)
    }
}

extension Runner {
    /// A Switchboard engine on the PostgreSQL log in `schema` at `url`; `directory` holds local files only.
    func openPostgresEngine(url: String, schema: String, directory: String) throws -> Switchboard {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var configuration = EventLogConfiguration(
            directory: directory, writer: WriterIdentity(role: "bench", workerID: "bench-1"))
        configuration.backend = .postgres(try PostgresURL(url), schema: schema)
        return try Switchboard(configuration, logger: logger)
    }

    /// `writer-processes`: the job cycle from 1, 2 and 4 processes on one log, `jobWorkers` workers in all split
    /// between them, `processCycles` cycles in all; on PostgreSQL (each process its own writer connection, read
    /// pool and listener) and on LMDB (one directory), interleaved, `peerRounds` rounds, medians.
    func writerProcesses() async throws {
        let (peer, server) = try startPostgres()
        defer { peer.stopServer(server) }
        guard let postmaster = peer.postmasterPID else { throw BenchError("no postmaster.pid") }
        let counts = [1, 2, 4]
        var runs: [String: [ProcessRun]] = [:]
        for round in 1...peerRounds {
            for count in counts {
                for backend in ["lmdb", "postgres"] {
                    let name = "\(backend)-\(count)-\(round)"
                    let run: ProcessRun
                    if backend == "postgres" {
                        _ = try peer.psql("DROP SCHEMA IF EXISTS wp CASCADE; CHECKPOINT;")
                        try await openPostgresEngine(
                            url: peer.databaseURL, schema: "wp", directory: scratch + "/" + name
                        )
                        .close()
                        let walBefore = try peer.walCounters()
                        let serverStart = PostgresPeer.clusterCPUSeconds(postmaster)
                        run = try processRun(
                            count, ["--database-url", peer.databaseURL, "--schema", "wp"],
                            directory: scratch + "/" + name)
                        var details = run.details
                        let walAfter = try peer.walCounters()
                        let serverCPU = PostgresPeer.clusterCPUSeconds(postmaster) - serverStart
                        details["server_us_per_cycle"] = serverCPU / Double(max(1, run.cycles)) * 1e6
                        if walAfter.syncs > walBefore.syncs {
                            details["commits_per_wal_sync"] = Double(run.commits) / (walAfter.syncs - walBefore.syncs)
                        }
                        runs["\(backend)-\(count)", default: []].append(
                            ProcessRun(cycles: run.cycles, commits: run.commits, seconds: run.seconds, details: details)
                        )
                    } else {
                        try await openEngine(name).close()
                        run = try processRun(count, [], directory: scratch + "/" + name)
                        runs["\(backend)-\(count)", default: []].append(run)
                    }
                    try? FileManager.default.removeItem(atPath: scratch + "/" + name)
                }
            }
        }
        for count in counts {
            let lmdb = runs["lmdb-\(count)"] ?? []
            let postgres = runs["postgres-\(count)"] ?? []
            let value = median(postgres.map(\.cyclesPerSecond))
            let baseline = median(lmdb.map(\.cyclesPerSecond))
            var fields: [String: Any] = [
                "scenario": Scenario.writerProcesses.rawValue, "processes": count, "unit": "cycles/s",
                "value": round(value), "commands_per_second": round(value * 3),
                "rounds": postgres.map { round($0.cyclesPerSecond) }, "baseline": round(baseline),
                "baseline_rounds": lmdb.map { round($0.cyclesPerSecond) },
                "baseline_commands_per_second": round(baseline * 3), "ratio": round(value / max(baseline, 0.001), 3),
                "workers_per_process": jobWorkers / count, "cycles_per_run": postgres.map(\.cycles),
                "commits_per_second": postgres.map { round(Double($0.commits) / $0.seconds) },
                "baseline_commits_per_second": lmdb.map { round(Double($0.commits) / $0.seconds) },
                "version": peer.version,
                "note": "value: PostgreSQL (fsync on, synchronous_commit on); baseline: LMDB, durable, one directory; "
                    + "3 commands per cycle (enqueue, claim, complete); time from go to each process's last cycle",
            ]
            for key in Set(postgres.flatMap(\.details.keys)) {
                fields[key] = postgres.map { round($0.details[key] ?? 0, 1) }
            }
            try report(fields)
        }
    }

    /// One run of `count` job-worker processes, started, ready, then let go together.
    private func processRun(_ count: Int, _ arguments: [String], directory: String) throws -> ProcessRun {
        let workers = max(1, jobWorkers / count)
        let cycles = max(1, processCycles / (workers * count))
        let children = try (0..<count).map { index in
            try JobWorkerChild(
                ["--dir", directory, "--name", "w\(index)", "--workers", "\(workers)", "--cycles", "\(cycles)"]
                    + arguments)
        }
        for child in children { try child.waitReady() }
        let cpuStart = childrenCPUSeconds()
        for child in children { child.go() }
        let results = try children.map { try $0.finish() }
        let cpu = childrenCPUSeconds() - cpuStart
        let done = results.map(\.cycles).reduce(0, +)
        let commits = results.map(\.commits).reduce(0, +)
        let seconds = results.map(\.seconds).max() ?? 0
        return ProcessRun(
            cycles: done, commits: commits, seconds: seconds,
            details: [
                "cycles_per_commit": Double(done) / Double(max(1, commits)),
                "process_us_per_cycle": cpu / Double(max(1, done)) * 1e6,
            ])
    }
}

/// One run of `writer-processes`.
struct ProcessRun {
    var cycles: Int
    var commits: Int
    var seconds: Double
    var details: [String: Double] = [:]
    var cyclesPerSecond: Double { Double(cycles) / max(seconds, 1e-9) }
}

extension Runner {
    /// A PostgreSQL server of the `peers` scenario's settings in the scratch directory, started; stop it with
    /// `peer.stopServer(server)`.
    func startPostgres() throws -> (peer: PostgresPeer, server: Process) {
        guard let bin = PostgresPeer.locate() else {
            throw BenchError("initdb, pg_ctl, postgres, psql and pgbench not found (apt-get install postgresql)")
        }
        let peer = try PostgresPeer(bin: bin, directory: scratch + "/postgres", workers: jobWorkers)
        return (peer, try peer.startServer(log: "\(peer.directory)/server.log"))
    }

    /// `failover-postgres`: the `failover` scenario on a PostgreSQL log, the server started as `peers` starts it.
    func failoverPostgres() async throws {
        let (peer, server) = try startPostgres()
        defer { peer.stopServer(server) }
        try await failover(.failoverPostgres, database: (peer.databaseURL, "failover"))
    }
}
