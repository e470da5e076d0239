import ArgumentParser
import EventLog
import Foundation
import Projections
import Synchronization

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
