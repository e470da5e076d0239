@testable import EventLog
import Foundation
import Logging
import Projections
import SwitchboardEvents
import Synchronization
import TestSupport

/// A spawned `agent` whose stderr lines are kept, so a test can await a line and later check what was (not)
/// logged.
final class AgentProcess: @unchecked Sendable {  // @unchecked: used by one test task at a time.
    let spawned: SpawnedProcess
    let name: String
    private(set) var lines: [String] = []

    /// Starts an agent with short lease timings and a free HTTP port; `environment` adds to or overrides them.
    init(_ name: String, data: String, _ environment: [String: String]) throws {
        self.name = name
        var base = [
            "DATA_DIR": data, "WORKER_ID": name, "PORT": "0", "SNAPSHOT_EVERY": "0", "AGENT_TEST_SHORT_LEASES": "1",
            "WHATSAPP_LEASE_TTL_MS": "1000", "WHATSAPP_HEARTBEAT_MS": "200", "LOG_LEVEL": "info",
        ]
        base.merge(environment) { $1 }
        spawned = try SpawnedProcess("agent", [], environment: base, readStandardError: true)
    }

    var pid: Int32 { spawned.process.processIdentifier }

    /// Waits for a line containing `text` among the lines from index `from` on; returns its index.
    @discardableResult
    func waitFor(_ text: String, from: Int = 0, within seconds: Double = 10) async throws -> Int {
        if let index = lines.indices.dropFirst(from).first(where: { lines[$0].contains(text) }) { return index }
        let found = try await within(seconds, "'\(text)' from \(name)") { () -> [String]? in
            var read: [String] = []
            while let line = await self.spawned.nextLine() {
                read.append(line)
                if line.contains(text) { return read }
            }
            return read
        }
        lines += found ?? []
        guard let last = lines.last, last.contains(text) else {
            throw TestTimeout(what: "'\(text)' from \(name) (it closed its output): \(lines.suffix(20))")
        }
        return lines.count - 1
    }

    func signal(_ signal: Int32) { spawned.signal(signal) }

    /// Freezes the agent (SIGSTOP) from inside a write transaction on `log`, its LMDB log: LMDB has one writer at a
    /// time, so the frozen agent cannot be holding the writer lock, which would stop every other writer on the log
    /// (the test's and the standby's) until it was continued. Returns once every thread of it is stopped.
    func freeze(holdingTheWriterLockOf log: TestLog) async throws {
        let pid = self.pid
        _ = try await log.engine.log.transact { _ in
            Glibc.kill(pid, SIGSTOP)
            let deadline = ContinuousClock.now + .seconds(10)
            while !Self.isStopped(pid) && ContinuousClock.now < deadline { sched_yield() }
        }
        guard Self.isStopped(pid) else { throw TestTimeout(what: "\(name) to stop on SIGSTOP") }
    }

    /// Whether every thread of `pid` is stopped (`T` in `/proc/<pid>/task/<tid>/stat`).
    private static func isStopped(_ pid: Int32) -> Bool {
        guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") else {
            return false
        }
        return tasks.allSatisfy { tid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return false }
            // "pid (comm) S ...": the state follows the command's closing parenthesis.
            return stat[close...].dropFirst(2).first == "T"
        }
    }

    /// SIGTERM, then the exit status; the remaining lines are kept.
    func stop() async -> Int32 {
        spawned.signal(SIGTERM)
        return await finish()
    }

    func finish() async -> Int32 {
        let (status, rest) = await spawned.finish()
        lines += rest
        // Errors an agent logged are worth seeing next to a failure.
        for line in lines where line.contains(" error ") || line.contains(" critical ") { print("[\(name)] \(line)") }
        return status
    }

    func kill() {
        spawned.kill(SIGKILL)
    }
}

/// The test process's own handle on the shared log (appends, reads, awaits records).
final class TestLog: Sendable {
    let engine: Switchboard
    private let closed = Mutex(false)

    init(_ directory: String, workerID: String = "test", backend: LogBackendChoice = .lmdb) throws {
        var configuration = EventLogConfiguration(
            directory: directory, writer: WriterIdentity(role: "test", workerID: workerID))
        configuration.backend = backend
        engine = try Switchboard(
            configuration, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    /// The log of `deployment`, opened by the test.
    convenience init(_ deployment: Deployment, workerID: String = "test") throws {
        try self.init(deployment.data(for: "test-\(workerID)"), workerID: workerID, backend: deployment.backend)
    }

    var log: EventLog { engine.log }

    /// Every record decoded, in order.
    func events(from seq: UInt64 = 1) throws -> [(record: Record, event: SwitchboardEvent)] {
        try log.records(from: seq).compactMap { record in try record.event().map { (record, $0) } }
    }

    /// Waits for the first record from `seq` on whose event matches.
    func waitForEvent(
        from seq: UInt64 = 1, within seconds: Double = 10, _ what: String,
        _ matches: @escaping @Sendable (Record, SwitchboardEvent) -> Bool
    ) async throws -> (record: Record, event: SwitchboardEvent) {
        let log = log
        return try await within(seconds, what) { () -> (Record, SwitchboardEvent) in
            for try await record in log.tail(from: seq) {
                if let event = try record.event(), matches(record, event) { return (record, event) }
            }
            throw TestTimeout(what: what)
        }
    }

    /// Enqueues `count` WhatsApp (or other) deliveries to distinct recipients; returns their ids.
    func enqueueReplies(
        _ count: Int, channel: String = "whatsapp", account: String = "default", tag: String = "r"
    ) async throws -> [String] {
        var ids: [String] = []
        for i in 0..<count {
            let delivery = NewDelivery(
                idempotencyKey: "\(tag)-\(i)", channel: channel, accountID: account, recipient: "1555-\(tag)-\(i)",
                conversationID: "c-\(tag)-\(i)", text: "reply \(tag)-\(i)")
            let enqueued = try await engine.enqueueDelivery(delivery)
            ids.append(enqueued.deliveryID)
        }
        return ids
    }

    /// Closes the log once, however often it is called (an early close before running `replay`, then the
    /// `defer`): a second close of this branch's EventLog waits forever for its doorbell watcher.
    func close() {
        let first = closed.withLock { closed -> Bool in
            defer { closed = true }
            return !closed
        }
        if first { engine.close() }
    }
}

extension SwitchboardEvent {
    var leaseAcquired: LeaseAcquired? {
        if case .leaseAcquired(let event) = self { return event }
        return nil
    }
}
