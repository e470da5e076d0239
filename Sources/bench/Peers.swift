import ArgumentParser
import EventLog
import Foundation
import Projections
import Synchronization

/// One round of one system in the `peers` scenario.
struct PeerRound {
    var cyclesPerSecond: Double
    var cycles: Int
    var seconds: Double
    /// Extra per-round measurements (CPU of the server and of this process, the machine's busy and iowait
    /// shares, where the server's time went), reported as arrays over the rounds.
    var details: [String: Double] = [:]
}

/// Where a peer stands: not installed, usable, or failed (then it is not run again).
enum PeerState<Peer> {
    case skipped
    case ready(Peer)
    case failed(String)
}

extension Runner {
    /// `peers`: our job cycle beside the same cycle on Redis Streams (AOF, `appendfsync always`) and on a
    /// PostgreSQL `FOR UPDATE SKIP LOCKED` queue (`fsync=on`, `synchronous_commit=on`), both started here from the
    /// installed packages, `peerRounds` rounds interleaved, each round on fresh state.
    func peers() async throws {
        signal(SIGPIPE, SIG_IGN)
        let workers = jobWorkers
        let cycles = peerCycles
        var redis: PeerState<RedisPeer> = .skipped
        if let executable = findExecutable("redis-server") {
            do { redis = .ready(try RedisPeer(executable: executable)) } catch { redis = .failed("\(error)") }
        } else {
            note(
                "peers: redis-server not found on PATH; Redis Streams skipped: not installed (apt-get install redis-server)"
            )
        }
        var postgres: PeerState<PostgresPeer> = .skipped
        if let bin = PostgresPeer.locate() {
            do {
                postgres = .ready(try PostgresPeer(bin: bin, directory: scratch + "/postgres", workers: workers))
            } catch {
                postgres = .failed("\(error)")
            }
        } else {
            note(
                "peers: initdb, pg_ctl, postgres, psql and pgbench not found together in /usr/lib/postgresql/*/bin or "
                    + "on PATH; PostgreSQL skipped: not installed (apt-get install postgresql)")
        }
        var ours: [PeerRound] = []
        var redisRounds: [PeerRound] = []
        var postgresRounds: [PeerRound] = []
        for index in 1...peerRounds {
            ours.append(try await oursRound(index, workers: workers, cycles: cycles))
            if case .ready(let peer) = redis {
                do {
                    redisRounds.append(
                        try await peer.round(
                            directory: scratch + "/redis-\(index)", workers: workers, cycles: cycles,
                            client: redisClient))
                } catch {
                    redis = .failed("round \(index): \(error)")
                }
            }
            if case .ready(let peer) = postgres {
                do {
                    postgresRounds.append(try peer.round(index, workers: workers, cycles: cycles))
                } catch {
                    postgres = .failed("round \(index): \(error)")
                }
            }
        }
        let oursMedian = median(ours.map(\.cyclesPerSecond))
        func ratio(_ rounds: [PeerRound]) -> Double? {
            rounds.count == ours.count ? round(oursMedian / max(median(rounds.map(\.cyclesPerSecond)), 0.001), 3) : nil
        }
        var oursLine = line(system: "switchboard", ours)
        oursLine["note"] = "the job-cycle scenario's cycle: enqueue, claim, complete, each its own durable command"
        if let value = ratio(redisRounds) { oursLine["ratio_vs_redis"] = value }
        if let value = ratio(postgresRounds) { oursLine["ratio_vs_postgres"] = value }
        try report(oursLine)
        try reportPeer("redis", redis, redisRounds, ours: ours) { peer in
            [
                "version": peer.version,
                "setup": "appendonly yes, appendfsync always, save \"\"; XADD, XREADGROUP COUNT 1, XACK per cycle, "
                    + "\(workers) connections",
                "client": redisClient == .events
                    ? "one thread, non-blocking sockets, poll(2)" : "a blocking connection per thread",
            ]
        }
        try reportPeer("postgres", postgres, postgresRounds, ours: ours) { peer in
            [
                "version": peer.version,
                "setup": "fsync=on, synchronous_commit=on; pgbench -M prepared, per cycle three autocommit "
                    + "statements: INSERT, UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1), "
                    + "UPDATE status = 'done'",
            ]
        }
    }

    private func reportPeer<Peer>(
        _ system: String, _ state: PeerState<Peer>, _ rounds: [PeerRound], ours: [PeerRound],
        _ describe: (Peer) -> [String: Any]
    ) throws {
        switch state {
        case .skipped:
            try report([
                "scenario": Scenario.peers.rawValue, "system": system, "skipped": "not installed",
                "install": system == "redis" ? "apt-get install redis-server" : "apt-get install postgresql",
            ])
        case .failed(let message):
            note("peers: \(system) failed: \(message)")
            var fields = line(system: system, rounds)
            fields["error"] = message
            try report(fields)
        case .ready(let peer):
            var fields = line(system: system, rounds).merging(describe(peer)) { $1 }
            let value = median(rounds.map(\.cyclesPerSecond))
            let oursMedian = median(ours.map(\.cyclesPerSecond))
            fields["ours_value"] = round(oursMedian)
            fields["ratio"] = round(oursMedian / max(value, 0.001), 3)
            fields["round_ratios"] = zip(ours, rounds).map {
                round($0.cyclesPerSecond / max($1.cyclesPerSecond, 0.001), 3)
            }
            fields["ratio_note"] = "ours ÷ \(system) (medians); round_ratios: each round's pair"
            try report(fields)
        }
    }

    private func line(system: String, _ rounds: [PeerRound]) -> [String: Any] {
        var fields: [String: Any] = [
            "scenario": Scenario.peers.rawValue, "system": system, "unit": "cycles/s",
            "value": round(median(rounds.map(\.cyclesPerSecond))), "rounds": rounds.map { round($0.cyclesPerSecond) },
            "workers": jobWorkers, "cycles_per_round": rounds.map(\.cycles),
            "seconds_per_round": rounds.map { round($0.seconds, 2) },
        ]
        for key in Set(rounds.flatMap(\.details.keys)) {
            fields[key] = rounds.map { round($0.details[key] ?? 0, 1) }
        }
        return fields
    }

    private func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        return sorted.count % 2 == 1
            ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    /// The job-cycle scenario's cycle on a fresh log.
    private func oursRound(_ round: Int, workers: Int, cycles: Int) async throws -> PeerRound {
        let name = "ours-\(round)"
        defer { try? FileManager.default.removeItem(atPath: scratch + "/" + name) }
        let engine = try openEngine(name)
        let machine = MachineCPU()
        let cpuStart = processCPUSeconds()
        // Only the writer thread syncs: a sample with one of our threads in D is (almost always) its fdatasync.
        let sampler = StateSampler(interval: .milliseconds(5), together: true) {
            ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []).compactMap { Int32($0) }
        }
        let start = RawLMDBBaseline.monotonicNanoseconds()
        let completed: Int
        do {
            completed = try await runJobCycles(engine, workers: workers, cycles: cycles, prefix: "p")
        } catch {
            _ = sampler.stop(prefix: "threads")
            throw error
        }
        let seconds = Double(RawLMDBBaseline.monotonicNanoseconds() - start) / 1e9
        let states = sampler.stop(prefix: "threads")
        let cpu = processCPUSeconds() - cpuStart
        var details = machine.since(measured: cpu)
        details["any_thread_D_percent"] = states["threads_D_percent"]
        details["process_cpu_percent"] = cpu / seconds * 100
        details["cycles_per_commit"] = Double(completed) / Double(max(1, engine.log.commitCount))
        await engine.close()
        return PeerRound(
            cyclesPerSecond: Double(completed) / seconds, cycles: completed, seconds: seconds, details: details)
    }
}

func closeDescriptor(_ fd: Int32) { _ = close(fd) }

/// User + system CPU time of this process's waited-for children, in seconds.
func childrenCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_CHILDREN.rawValue, &usage)
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

func note(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// The first executable `name` on PATH.
func findExecutable(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
    for directory in path.split(separator: ":") {
        let candidate = "\(directory)/\(name)"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}

#if canImport(Glibc)
    let socketStream = Int32(SOCK_STREAM.rawValue)
#else
    let socketStream = SOCK_STREAM
#endif

func loopbackAddress(port: UInt16) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    return address
}

/// The machine's CPU time from `/proc/stat`, from creation to `since(measured:)`.
struct MachineCPU {
    private let start: [Double]
    private let startNanoseconds = RawLMDBBaseline.monotonicNanoseconds()

    init() { start = MachineCPU.read() }

    /// `machine_busy_percent`, `machine_iowait_percent` and `machine_steal_percent` (of all cores: steal is time
    /// the hypervisor gave this VM's vCPUs to others), and `other_cpu_percent`: the CPU the rest of the machine
    /// (kernel threads, other processes) used meanwhile: busy time less `measured` CPU seconds, in percent of one
    /// core.
    func since(measured: Double) -> [String: Double] {
        let end = MachineCPU.read()
        let seconds = Double(RawLMDBBaseline.monotonicNanoseconds() - startNanoseconds) / 1e9
        guard start.count >= 8, end.count >= 8, seconds > 0 else { return [:] }
        let delta = zip(end, start).map { $0 - $1 }
        let total = max(delta.reduce(0, +), 1)
        let busy = total - delta[3] - delta[4] - delta[7]
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return [
            "machine_busy_percent": busy / total * 100, "machine_iowait_percent": delta[4] / total * 100,
            "machine_steal_percent": delta[7] / total * 100,
            "other_cpu_percent": max(0, busy / ticks - measured) / seconds * 100,
        ]
    }

    /// user nice system idle iowait irq softirq steal (guest time is inside user).
    private static func read() -> [Double] {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
            let first = text.split(separator: "\n").first
        else { return [] }
        return first.split(separator: " ").dropFirst().prefix(8).compactMap { Double($0) }
    }
}

/// Fields of `/proc/<pid>/stat` after the command name (index 0 is the state, 1 the parent pid).
func procStat(_ pid: Int32) -> [Substring]? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = text.lastIndex(of: ")")
    else { return nil }
    return text[text.index(after: close)...].split(separator: " ")
}

/// CPU seconds of a process (all its threads); with `children`, plus those of its exited, waited-for children.
func processCPUSeconds(of pid: Int32, children: Bool = false) -> Double {
    guard let fields = procStat(pid), fields.count > 14 else { return 0 }
    let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
    let indexes = children ? [11, 12, 13, 14] : [11, 12]
    return indexes.compactMap { Double(fields[$0]) }.reduce(0, +) / ticks
}

/// Samples the scheduler state (R running or runnable, S sleeping, D in uninterruptible disk wait…) of some
/// processes every `interval` on a thread of its own, until stopped. With `together`, each sample counts once for
/// the whole set: D if any of them is in D, else R if any runs, else S.
final class StateSampler: Sendable {
    private let counts = Mutex<[String: Int]>([:])
    private let running = Atomic<Bool>(true)
    private let finished = DispatchSemaphore(value: 0)

    init(interval: Duration, together: Bool = false, pids: @escaping @Sendable () -> [Int32]) {
        let thread = Thread { [self] in
            while running.load(ordering: .relaxed) {
                let states = pids().compactMap { procStat($0)?.first.map(String.init) }
                counts.withLock { counts in
                    if !together {
                        for state in states { counts[state, default: 0] += 1 }
                    } else if !states.isEmpty {
                        counts[states.contains("D") ? "D" : states.contains("R") ? "R" : "S", default: 0] += 1
                    }
                }
                Thread.sleep(
                    forTimeInterval: Double(interval.components.seconds) + Double(interval.components.attoseconds)
                        / 1e18)
            }
            finished.signal()
        }
        thread.start()
    }

    /// Stops sampling; returns each state's share of the samples in percent, keyed `<prefix>_<state>_percent`.
    func stop(prefix: String) -> [String: Double] {
        running.store(false, ordering: .relaxed)
        finished.wait()
        let counts = counts.withLock { $0 }
        let total = Double(max(1, counts.values.reduce(0, +)))
        var shares: [String: Double] = [:]
        for state in ["R", "S", "D"] { shares["\(prefix)_\(state)_percent"] = Double(counts[state] ?? 0) / total * 100 }
        return shares
    }
}

/// Runs a tool to completion with its output in a file (a daemon it starts cannot hold a pipe open); throws with
/// the output's tail when it fails. `user` runs it as that user through `runuser` (we are root).
@discardableResult
func runTool(
    _ executable: String, _ arguments: [String], user: String? = nil, directory: String
) throws -> String {
    let process = try makeProcess(executable, arguments, user: user, directory: directory)
    let outputPath = directory + "/.tool-output-\(UUID().uuidString)"
    _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
    defer { try? FileManager.default.removeItem(atPath: outputPath) }
    guard let output = FileHandle(forWritingAtPath: outputPath) else { throw BenchError("cannot write \(outputPath)") }
    process.standardOutput = output
    process.standardError = output
    try process.run()
    process.waitUntilExit()
    try? output.close()
    let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
    guard process.terminationStatus == 0 else {
        let name = URL(fileURLWithPath: executable).lastPathComponent
        throw BenchError("\(name) exited \(process.terminationStatus): \(text.suffix(800))")
    }
    return text
}

/// A process of `executable` in `directory`, as `user` through `runuser` when given (we are root).
func makeProcess(_ executable: String, _ arguments: [String], user: String?, directory: String) throws -> Process {
    let process = Process()
    if let user {
        guard
            let runuser = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"].first(where: {
                FileManager.default.isExecutableFile(atPath: $0)
            })
        else { throw BenchError("runuser not found: needed to run \(executable) as \(user)") }
        process.executableURL = URL(fileURLWithPath: runuser)
        process.arguments = ["-u", user, "--", executable] + arguments
    } else {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
    }
    process.currentDirectoryURL = URL(fileURLWithPath: directory)
    process.standardInput = FileHandle.nullDevice
    return process
}

/// SIGTERM, then up to `seconds` for the process to exit, then SIGKILL.
func stopProcess(_ process: Process, seconds: Double = 20) {
    guard process.isRunning else { return }
    kill(process.processIdentifier, SIGTERM)
    let deadline = Date().addingTimeInterval(seconds)
    while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
}

// MARK: - Redis Streams

/// Redis Streams as a job queue: XADD enqueues, XREADGROUP (a consumer group) claims, XACK completes.
struct RedisPeer: Sendable {
    let executable: String
    let version: String

    init(executable: String) throws {
        self.executable = executable
        let output = try runTool(executable, ["--version"], directory: NSTemporaryDirectory())
        // "Redis server v=7.0.15 sha=… malloc=… bits=64 build=…"
        version =
            output.split(separator: " ").first(where: { $0.hasPrefix("v=") }).map { String($0.dropFirst(2)) }
            ?? output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Starts a server in `directory`, runs `workers` clients of `cycles` cycles each, stops the server.
    func round(directory: String, workers: Int, cycles: Int, client: RedisClientMode) async throws -> PeerRound {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let port = UInt16(try freeLoopbackPort())
        let logPath = directory + "/redis.log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = [
            "--port", "\(port)", "--bind", "127.0.0.1", "--dir", directory, "--appendonly", "yes",
            "--appendfsync", "always", "--save", "", "--daemonize", "no",
        ]
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.standardInput = FileHandle.nullDevice
        let logHandle = FileHandle(forWritingAtPath: logPath)
        process.standardOutput = logHandle
        process.standardError = logHandle
        try process.run()
        defer {
            stopProcess(process)
            try? logHandle?.close()
        }
        func log() -> String { String(((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").suffix(800)) }
        // Until it answers PING.
        let deadline = Date().addingTimeInterval(20)
        var setup: RESPConnection?
        while setup == nil {
            guard process.isRunning else { throw BenchError("redis-server exited at start: \(log())") }
            let connection = try? RESPConnection(port: port)
            if let connection, (try? connection.call(["PING"])) == .simple("PONG") {
                setup = connection
            } else if Date() > deadline {
                throw BenchError("redis-server did not answer PING within 20 s: \(log())")
            } else {
                connection?.close()
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        guard let setup else { throw BenchError("unreachable") }
        defer { setup.close() }
        let created = try setup.call(["XGROUP", "CREATE", "jobs", "g", "$", "MKSTREAM"])
        guard created == .simple("OK") else { throw BenchError("XGROUP CREATE answered \(created)") }
        let pid = process.processIdentifier
        let serverCPU = processCPUSeconds(of: pid)
        let clientCPU = processCPUSeconds()
        let machine = MachineCPU()
        let serverPIDs = [pid]
        let sampler = StateSampler(interval: .milliseconds(5)) { serverPIDs }
        let result: (acked: Int, seconds: Double)
        do {
            result = try await RedisClients.run(mode: client, port: port, workers: workers, cycles: cycles)
        } catch {
            _ = sampler.stop(prefix: "server")
            throw error
        }
        let server = processCPUSeconds(of: pid) - serverCPU
        let clients = processCPUSeconds() - clientCPU
        var details = sampler.stop(prefix: "server_main_thread").merging(machine.since(measured: server + clients)) {
            $1
        }
        details["server_cpu_percent"] = server / result.seconds * 100
        details["client_cpu_percent"] = clients / result.seconds * 100
        let info = try setup.call(["INFO", "persistence"])
        if case .bulk(let bytes?) = info,
            let line = String(decoding: bytes, as: UTF8.self).split(separator: "\r\n").first(where: {
                $0.hasPrefix("aof_last_write_status:")
            }), !line.hasSuffix(":ok")
        {
            throw BenchError("redis AOF: \(line)")
        }
        return PeerRound(
            cyclesPerSecond: Double(result.acked) / result.seconds, cycles: result.acked, seconds: result.seconds,
            details: details)
    }
}

/// How the Redis clients are driven: `events`, all connections on one thread, each a state machine woken by
/// poll(2) (little client CPU: a batch of replies per wake-up, no thread switches); `threads`, one blocking
/// connection per worker on a thread of its own (a thread switch per reply).
enum RedisClientMode: String, ExpressibleByArgument, CaseIterable {
    case events
    case threads
}

/// The Redis clients. All connect first, then start together; a cycle counts when its XACK answers 1.
enum RedisClients {
    final class Tally: Sendable {
        let state = Mutex<(acked: Int, error: String?)>((0, nil))
    }

    final class Outcome: Sendable {
        let result = Mutex<Result<(acked: Int, seconds: Double), any Error>?>(nil)
    }

    static let add = RESPConnection.encode(
        ["XADD", "jobs", "*", "job"].map { Array($0.utf8) } + [benchPayload])

    static func read(_ worker: Int) -> [UInt8] {
        RESPConnection.encode(
            ["XREADGROUP", "GROUP", "g", "c\(worker)", "COUNT", "1", "STREAMS", "jobs", ">"].map { Array($0.utf8) })
    }

    static func ack(_ id: [UInt8]) -> [UInt8] {
        RESPConnection.encode([Array("XACK".utf8), Array("jobs".utf8), [UInt8(ascii: "g")], id])
    }

    static func run(mode: RedisClientMode, port: UInt16, workers: Int, cycles: Int) async throws -> (
        acked: Int, seconds: Double
    ) {
        switch mode {
        case .threads: return try await threads(port: port, workers: workers, cycles: cycles)
        case .events:
            let outcome = Outcome()
            let finished = DispatchGroup()
            finished.enter()
            let thread = Thread {
                let result = Result { try events(port: port, workers: workers, cycles: cycles) }
                outcome.result.withLock { $0 = result }
                finished.leave()
            }
            thread.start()
            await waitFor(finished)
            guard let result = outcome.result.withLock({ $0 }) else {
                throw BenchError("no result from the Redis clients")
            }
            return try result.get()
        }
    }

    /// One thread, `workers` non-blocking connections, poll(2).
    private static func events(port: UInt16, workers: Int, cycles: Int) throws -> (acked: Int, seconds: Double) {
        struct Client {
            let connection: RESPConnection
            let read: [UInt8]
            var step = 0  // 0: XADD sent, 1: XREADGROUP sent, 2: XACK sent
            var left: Int
        }
        var clients: [Client] = []
        defer { for client in clients { client.connection.close() } }
        for worker in 0..<workers {
            clients.append(Client(connection: try RESPConnection(port: port), read: read(worker), left: cycles))
        }
        for client in clients { try client.connection.setNonBlocking() }
        var descriptors = clients.map { pollfd(fd: $0.connection.descriptor, events: Int16(POLLIN), revents: 0) }
        let start = RawLMDBBaseline.monotonicNanoseconds()
        for client in clients { try client.connection.send(add) }
        var running = clients.count
        var acked = 0
        while running > 0 {
            let ready = descriptors.withUnsafeMutableBufferPointer {
                poll($0.baseAddress, nfds_t($0.count), 30_000)
            }
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else {
                throw BenchError(ready == 0 ? "no reply from Redis for 30 s" : "poll: errno \(errno)")
            }
            for index in descriptors.indices where descriptors[index].revents != 0 {
                descriptors[index].revents = 0
                try clients[index].connection.receiveAvailable()
                while clients[index].left > 0, let reply = try clients[index].connection.next() {
                    let client = clients[index]
                    switch client.step {
                    case 0:
                        guard case .bulk(_?) = reply else { throw BenchError("XADD did not answer an id") }
                        clients[index].step = 1
                        try client.connection.send(client.read)
                        continue
                    case 1:
                        if let id = reply.firstStreamEntryID {
                            clients[index].step = 2
                            try client.connection.send(ack(id))
                            continue
                        }
                    default:
                        if reply == .integer(1) { acked += 1 }
                    }
                    // The cycle is over (acknowledged, or nothing was there to claim).
                    clients[index].left -= 1
                    clients[index].step = 0
                    if clients[index].left > 0 {
                        try client.connection.send(add)
                    } else {
                        running -= 1
                        descriptors[index].fd = -1  // poll ignores it from now on
                    }
                }
            }
        }
        return (acked, Double(RawLMDBBaseline.monotonicNanoseconds() - start) / 1e9)
    }

    /// One blocking connection per worker, each on a thread of its own.
    private static func threads(port: UInt16, workers: Int, cycles: Int) async throws -> (acked: Int, seconds: Double) {
        let tally = Tally()
        let connected = DispatchGroup()
        let finished = DispatchGroup()
        let go = DispatchSemaphore(value: 0)
        for worker in 0..<workers {
            connected.enter()
            finished.enter()
            let thread = Thread {
                defer { finished.leave() }
                let connection: RESPConnection
                do {
                    connection = try RESPConnection(port: port)
                } catch {
                    tally.state.withLock { $0.error = $0.error ?? "connect: \(error)" }
                    connected.leave()
                    go.wait()
                    return
                }
                connected.leave()
                go.wait()
                defer { connection.close() }
                let read = read(worker)
                var acked = 0
                do {
                    for _ in 0..<cycles {
                        guard case .bulk(_?) = try connection.call(encoded: add) else {
                            throw BenchError("XADD did not answer an id")
                        }
                        guard let id = try connection.call(encoded: read).firstStreamEntryID else { continue }
                        if try connection.call(encoded: ack(id)) == .integer(1) { acked += 1 }
                    }
                } catch {
                    tally.state.withLock { $0.error = $0.error ?? "\(error)" }
                }
                tally.state.withLock { $0.acked += acked }
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        await waitFor(connected)
        let start = RawLMDBBaseline.monotonicNanoseconds()
        for _ in 0..<workers { go.signal() }
        await waitFor(finished)
        let seconds = Double(RawLMDBBaseline.monotonicNanoseconds() - start) / 1e9
        let (acked, error) = tally.state.withLock { ($0.acked, $0.error) }
        if let error { throw BenchError("redis client: \(error)") }
        return (acked, seconds)
    }

    private static func waitFor(_ group: DispatchGroup) async {
        await withCheckedContinuation { continuation in
            group.notify(queue: .global()) { continuation.resume() }
        }
    }
}

/// A RESP2 value.
indirect enum RESP: Equatable {
    case simple(String)
    case error(String)
    case integer(Int)
    case bulk([UInt8]?)
    case array([RESP]?)

    /// The id of the first entry of an XREADGROUP reply (`[[stream, [[id, fields]]]]`), nil when it is empty.
    var firstStreamEntryID: [UInt8]? {
        guard case .array(let streams?) = self, case .array(let stream?)? = streams.first, stream.count == 2,
            case .array(let entries?) = stream[1], case .array(let entry?)? = entries.first,
            case .bulk(let id?)? = entry.first
        else { return nil }
        return id
    }
}

/// A Redis connection over a loopback TCP socket: blocking one command at a time (`call`), or non-blocking
/// (`send`, `receiveAvailable`, `next`) for the event loop. Replies are parsed from a buffer.
final class RESPConnection {
    let descriptor: Int32
    private var buffer = [UInt8](repeating: 0, count: 16 * 1024)
    private var start = 0
    private var end = 0

    init(port: UInt16) throws {
        descriptor = socket(AF_INET, socketStream, 0)
        guard descriptor >= 0 else { throw BenchError("socket: errno \(errno)") }
        var address = loopbackAddress(port: port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            let code = errno
            closeDescriptor(descriptor)
            throw BenchError("connect to 127.0.0.1:\(port): errno \(code)")
        }
        var one: Int32 = 1
        setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    func close() { closeDescriptor(descriptor) }

    func setNonBlocking() throws {
        let flags = fcntl(descriptor, F_GETFL)
        guard flags >= 0, fcntl(descriptor, F_SETFL, flags | O_NONBLOCK) == 0 else {
            throw BenchError("fcntl: errno \(errno)")
        }
    }

    static func encode(_ arguments: [[UInt8]]) -> [UInt8] {
        var bytes = Array("*\(arguments.count)\r\n".utf8)
        for argument in arguments {
            bytes += Array("$\(argument.count)\r\n".utf8)
            bytes += argument
            bytes += [13, 10]
        }
        return bytes
    }

    func call(_ arguments: [String]) throws -> RESP {
        try call(encoded: RESPConnection.encode(arguments.map { Array($0.utf8) }))
    }

    /// Sends a command and waits for its reply (blocking socket).
    func call(encoded: [UInt8]) throws -> RESP {
        try send(encoded)
        while true {
            if let reply = try next() { return reply }
            guard try receive() else { throw BenchError("redis closed the connection") }
        }
    }

    /// Writes a whole command (a few hundred bytes: the socket buffer takes it at once, blocking or not).
    func send(_ encoded: [UInt8]) throws {
        var sent = 0
        while sent < encoded.count {
            let n = encoded.withUnsafeBytes { write(descriptor, $0.baseAddress! + sent, $0.count - sent) }
            guard n > 0 else { throw BenchError("write: errno \(errno)") }
            sent += n
        }
    }

    /// One read of what the socket has (non-blocking socket) into the buffer: poll reports it again if more is left.
    func receiveAvailable() throws {
        try receive()
    }

    /// One read into the buffer; false at would-block, throws at end of stream or an error.
    @discardableResult
    private func receive() throws -> Bool {
        if start == end {
            start = 0
            end = 0
        } else if end == buffer.count {
            if start > 0 {
                buffer.replaceSubrange(0..<(end - start), with: buffer[start..<end])
                end -= start
                start = 0
            } else {
                buffer += [UInt8](repeating: 0, count: buffer.count)
            }
        }
        let n = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress! + end, $0.count - end) }
        if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return false }
        guard n > 0 else { throw BenchError(n == 0 ? "redis closed the connection" : "read: errno \(errno)") }
        end += n
        return true
    }

    /// The next complete reply in the buffer, consumed; nil if it has not all arrived.
    func next() throws -> RESP? {
        var cursor = start
        guard let reply = try value(&cursor) else { return nil }
        start = cursor
        if case .error(let message) = reply { throw BenchError("redis: \(message)") }
        return reply
    }

    /// The bytes from `cursor` up to the next CRLF, nil if there is none yet; `cursor` moves past the CRLF.
    private func line(_ cursor: inout Int) -> ArraySlice<UInt8>? {
        var scanned = cursor
        while scanned + 1 < end {
            if buffer[scanned] == 13 && buffer[scanned + 1] == 10 {
                let line = buffer[cursor..<scanned]
                cursor = scanned + 2
                return line
            }
            scanned += 1
        }
        return nil
    }

    private func value(_ cursor: inout Int) throws -> RESP? {
        guard let header = line(&cursor) else { return nil }
        guard let kind = header.first else { throw BenchError("empty RESP line") }
        let text = String(decoding: header.dropFirst(), as: UTF8.self)
        switch kind {
        case UInt8(ascii: "+"): return .simple(text)
        case UInt8(ascii: "-"): return .error(text)
        case UInt8(ascii: ":"):
            guard let number = Int(text) else { throw BenchError("bad RESP integer \(text)") }
            return .integer(number)
        case UInt8(ascii: "$"):
            guard let length = Int(text) else { throw BenchError("bad RESP length \(text)") }
            if length < 0 { return .bulk(nil) }
            guard end - cursor >= length + 2 else { return nil }
            let bytes = Array(buffer[cursor..<(cursor + length)])
            cursor += length + 2
            return .bulk(bytes)
        case UInt8(ascii: "*"):
            guard let count = Int(text) else { throw BenchError("bad RESP count \(text)") }
            if count < 0 { return .array(nil) }
            var items: [RESP] = []
            items.reserveCapacity(count)
            for _ in 0..<count {
                guard let item = try value(&cursor) else { return nil }
                items.append(item)
            }
            return .array(items)
        default:
            throw BenchError("unknown RESP type \(kind)")
        }
    }
}

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

    private func psql(_ sql: String) throws -> String {
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
    private func startServer(log: String) throws -> Process {
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
    private func stopServer(_ process: Process) {
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

    private var postmasterPID: Int32? {
        guard let text = try? String(contentsOfFile: "\(directory)/data/postmaster.pid", encoding: .utf8) else {
            return nil
        }
        return text.split(separator: "\n").first.flatMap { Int32($0.trimmingCharacters(in: .whitespaces)) }
    }

    /// The server's processes: the postmaster and its children (backends, WAL writer, checkpointer…).
    private static func cluster(_ postmaster: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return [postmaster]
            + entries.compactMap { Int32($0) }.filter { pid in
                procStat(pid).map { $0.count > 1 && Int32($0[1]) == postmaster } ?? false
            }
    }

    /// CPU seconds of the whole cluster so far: its live processes and the exited backends (the postmaster waits
    /// for them, so their time is in its children's time).
    private static func clusterCPUSeconds(_ postmaster: Int32) -> Double {
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
    private func walCounters() throws -> (syncs: Double, bytes: Double) {
        let fields = try psql("SELECT wal_sync, wal_bytes FROM pg_stat_wal").trimmingCharacters(
            in: .whitespacesAndNewlines
        )
        .split(separator: "|").compactMap { Double($0) }
        guard fields.count == 2 else { throw BenchError("unreadable pg_stat_wal") }
        return (fields[0], fields[1])
    }
}
