import ArgumentParser
import EventLog
import Foundation
import Projections
import Synchronization

// MARK: - PostgreSQL

/// A PostgreSQL job queue claimed with `FOR UPDATE SKIP LOCKED`, driven by pgbench. The cluster is created once in
/// `directory`; each round starts it, recreates the table, runs pgbench and stops it.
struct PostgresPeer {
    let bin: String
    let version: String
    let directory: String
    /// `postgres` when we are root (initdb and postgres refuse root), else nil (ourselves).
    let user: String?
    let port: UInt16
    let threads: Int

    static let tools = ["initdb", "pg_ctl", "postgres", "psql", "pgbench"]

    /// The newest /usr/lib/postgresql/<version>/bin with all the tools, else the directory of `pg_ctl` on PATH if
    /// all the tools are there.
    static func locate() -> String? {
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [])
            .compactMap { name in Double(name).map { (name, $0) } }
            .sorted { $0.1 > $1.1 }
        var candidates = versions.map { "\(root)/\($0.0)/bin" }
        if let pgCtl = findExecutable("pg_ctl") {
            candidates.append(
                URL(fileURLWithPath: pgCtl).resolvingSymlinksInPath().deletingLastPathComponent().path)
        }
        return candidates.first { bin in
            tools.allSatisfy { FileManager.default.isExecutableFile(atPath: "\(bin)/\($0)") }
        }
    }

    init(bin: String, directory: String, workers: Int) throws {
        self.bin = bin
        self.directory = directory
        threads = max(1, min(workers, ProcessInfo.processInfo.activeProcessorCount))
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if geteuid() == 0 {
            guard let account = getpwnam("postgres") else {
                throw BenchError("running as root and there is no postgres user to run the server as")
            }
            user = "postgres"
            guard chown(directory, account.pointee.pw_uid, account.pointee.pw_gid) == 0 else {
                throw BenchError("chown \(directory): errno \(errno)")
            }
            // The server's user must reach its directory through ours.
            chmod(URL(fileURLWithPath: directory).deletingLastPathComponent().path, 0o755)
        } else {
            user = nil
        }
        let output = try runTool("\(bin)/postgres", ["--version"], directory: directory)
        // "postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)"
        let words = output.split(whereSeparator: \.isWhitespace)
        version =
            words.firstIndex(of: "(PostgreSQL)").flatMap {
                words.indices.contains($0 + 1) ? String(words[$0 + 1]) : nil
            }
            ?? output.trimmingCharacters(in: .whitespacesAndNewlines)
        port = UInt16(try freeLoopbackPort())
        try runTool(
            "\(bin)/initdb",
            ["-D", "\(directory)/data", "--auth=trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"],
            user: user, directory: directory)
        // Unix socket only (in our directory); durable commits; everything else Debian's defaults.
        let settings = """

            # bench peers
            listen_addresses = ''
            port = \(port)
            unix_socket_directories = '\(directory)'
            fsync = on
            synchronous_commit = on
            full_page_writes = on
            max_connections = \(max(100, workers + 10))

            """
        let configuration = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(directory)/data/postgresql.conf"))
        try configuration.seekToEnd()
        try configuration.write(contentsOf: Data(settings.utf8))
        try configuration.close()
        let payload = String(decoding: benchPayload, as: UTF8.self).replacingOccurrences(of: "'", with: "''")
        let script = """
            INSERT INTO jobs (status, payload) VALUES ('ready', '\(payload)');
            WITH claimed AS (UPDATE jobs SET status = 'claimed', claimed_by = :client_id, claimed_at = now() WHERE id = (SELECT id FROM jobs WHERE status = 'ready' ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING id) SELECT coalesce(max(id), 0) AS job_id FROM claimed \\gset
            UPDATE jobs SET status = 'done', done_at = now() WHERE id = :job_id AND status = 'claimed';

            """
        try Data(script.utf8).write(to: URL(fileURLWithPath: "\(directory)/cycle.sql"))
    }

    func psql(_ sql: String) throws -> String {
        try runTool(
            "\(bin)/psql",
            [
                "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", directory, "-p", "\(port)", "-U", "postgres",
                "-d", "postgres", "-c", sql,
            ],
            directory: directory)
    }

    /// Starts `postgres -D data` as a child (through `runuser` when root) and waits until its postmaster.pid says
    /// it is ready. Not `pg_ctl start`: the daemon it leaves behind inherits the descriptor by which Foundation's
    /// `Process` learns that its child exited, so waiting for pg_ctl would wait for the server.
    func startServer(log: String) throws -> Process {
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        guard let output = FileHandle(forWritingAtPath: log) else { throw BenchError("cannot write \(log)") }
        defer { try? output.close() }
        let process = try makeProcess("\(bin)/postgres", ["-D", "\(directory)/data"], user: user, directory: directory)
        process.standardOutput = output
        process.standardError = output
        try? FileManager.default.removeItem(atPath: "\(directory)/data/postmaster.pid")
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        while true {
            // postmaster.pid's 8th line is the server's status: starting, ready, stopping.
            let lines =
                (try? String(contentsOfFile: "\(directory)/data/postmaster.pid", encoding: .utf8))?
                .split(separator: "\n", omittingEmptySubsequences: false) ?? []
            if lines.count > 7, lines[7].trimmingCharacters(in: .whitespaces) == "ready" { return process }
            let tail = { String(((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").suffix(800)) }
            guard process.isRunning else { throw BenchError("postgres exited at start: \(tail())") }
            guard Date() < deadline else {
                stopServer(process)
                throw BenchError("postgres not ready within 60 s: \(tail())")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    /// Fast shutdown (SIGINT to the postmaster: clients disconnected, a shutdown checkpoint), then immediate
    /// (SIGQUIT), then SIGKILL, each given time to finish.
    func stopServer(_ process: Process) {
        let postmaster = postmasterPID ?? process.processIdentifier
        for (signal, seconds) in [(SIGINT, 60.0), (SIGQUIT, 10.0), (SIGKILL, 10.0)] where process.isRunning {
            kill(postmaster, signal)
            if signal == SIGKILL { kill(process.processIdentifier, SIGKILL) }
            let deadline = Date().addingTimeInterval(seconds)
            while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        }
        if process.isRunning {
            note("peers: postgres (pid \(postmaster)) did not stop")
        } else {
            process.waitUntilExit()
        }
    }

    var postmasterPID: Int32? {
        guard let text = try? String(contentsOfFile: "\(directory)/data/postmaster.pid", encoding: .utf8) else {
            return nil
        }
        return text.split(separator: "\n").first.flatMap { Int32($0.trimmingCharacters(in: .whitespaces)) }
    }

    /// The server's processes: the postmaster and its children (backends, WAL writer, checkpointer…).
    static func cluster(_ postmaster: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return [postmaster]
            + entries.compactMap { Int32($0) }.filter { pid in
                procStat(pid).map { $0.count > 1 && Int32($0[1]) == postmaster } ?? false
            }
    }

    /// CPU seconds of the whole cluster so far: its live processes and the exited backends (the postmaster waits
    /// for them, so their time is in its children's time).
    static func clusterCPUSeconds(_ postmaster: Int32) -> Double {
        processCPUSeconds(of: postmaster, children: true)
            + cluster(postmaster).dropFirst().map { processCPUSeconds(of: $0) }.reduce(0, +)
    }

    func round(_ round: Int, workers: Int, cycles: Int) throws -> PeerRound {
        let logPath = "\(directory)/server-\(round).log"
        let server = try startServer(log: logPath)
        defer { stopServer(server) }
        _ = try psql(
            """
            DROP TABLE IF EXISTS jobs;
            CREATE TABLE jobs (
                id bigserial PRIMARY KEY, status text NOT NULL, payload text NOT NULL, claimed_by int,
                created_at timestamptz NOT NULL DEFAULT now(), claimed_at timestamptz, done_at timestamptz);
            CREATE INDEX jobs_ready ON jobs (id) WHERE status = 'ready';
            CHECKPOINT;
            """)
        guard let postmaster = postmasterPID else { throw BenchError("no postmaster.pid") }
        let walBefore = try walCounters()
        let cpu = PostgresPeer.clusterCPUSeconds(postmaster)
        let clientCPU = childrenCPUSeconds()
        let machine = MachineCPU()
        let sampler = StateSampler(interval: .milliseconds(50)) { PostgresPeer.cluster(postmaster) }
        let start = RawLMDBBaseline.monotonicNanoseconds()
        let output: String
        do {
            output = try runTool(
                "\(bin)/pgbench",
                [
                    "-n", "-M", "prepared", "-c", "\(workers)", "-j", "\(threads)", "-t", "\(cycles)",
                    "-f", "\(directory)/cycle.sql", "-h", directory, "-p", "\(port)", "-U", "postgres", "postgres",
                ],
                directory: directory)
        } catch {
            _ = sampler.stop(prefix: "server")
            throw error
        }
        let wall = Double(RawLMDBBaseline.monotonicNanoseconds() - start) / 1e9
        var details = sampler.stop(prefix: "server_processes")
        Thread.sleep(forTimeInterval: 0.3)  // the backends exit and are waited for
        let serverCPU = PostgresPeer.clusterCPUSeconds(postmaster) - cpu
        let clientSeconds = childrenCPUSeconds() - clientCPU  // pgbench, waited for
        details.merge(machine.since(measured: serverCPU + clientSeconds)) { $1 }
        // "number of transactions actually processed: 19200/19200", "tps = 3012.3 (without initial connection time)"
        func number(after prefix: String) -> Double? {
            output.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }).flatMap { line in
                line.dropFirst(prefix.count).split(whereSeparator: { $0 == " " || $0 == "/" }).first.flatMap {
                    Double($0)
                }
            }
        }
        guard let tps = number(after: "tps = "),
            let processed = number(after: "number of transactions actually processed: "), processed > 0
        else { throw BenchError("no tps in pgbench's output: \(output.suffix(800))") }
        let seconds = processed / tps
        let done =
            Int(
                try psql("SELECT count(*) FROM jobs WHERE status = 'done'").trimmingCharacters(
                    in: .whitespacesAndNewlines)) ?? 0
        let walAfter = try walCounters()
        // Over pgbench's whole run (its connections included, as in the CPU times).
        details["server_cpu_percent"] = serverCPU / wall * 100
        details["client_cpu_percent"] = clientSeconds / wall * 100
        details["pgbench_tps"] = tps
        if walAfter.syncs > walBefore.syncs {
            details["cycles_per_wal_sync"] = Double(done) / (walAfter.syncs - walBefore.syncs)
        }
        details["wal_bytes_per_cycle"] = (walAfter.bytes - walBefore.bytes) / Double(max(1, done))
        return PeerRound(cyclesPerSecond: Double(done) / seconds, cycles: done, seconds: seconds, details: details)
    }

    /// pg_stat_wal's syncs (fsyncs of WAL files) and bytes so far.
    func walCounters() throws -> (syncs: Double, bytes: Double) {
        let fields = try psql("SELECT wal_sync, wal_bytes FROM pg_stat_wal").trimmingCharacters(
            in: .whitespacesAndNewlines
        )
        .split(separator: "|").compactMap { Double($0) }
        guard fields.count == 2 else { throw BenchError("unreadable pg_stat_wal") }
        return (fields[0], fields[1])
    }
}
