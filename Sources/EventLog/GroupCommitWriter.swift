import CLMDB
import Foundation
import Logging
import Synchronization

/// The single writer thread of a process: it takes every queued command, runs them all in one LMDB write
/// transaction and commits once (group commit), then resumes each caller with its seqs.
///
/// LMDB write transactions are bound to the thread that began them, so they all run here and never cross an
/// `await`. Commands queued while a commit is in flight form the next group.
@usableFromInline
final class GroupCommitWriter: @unchecked Sendable {  // @unchecked: `state` is guarded by `condition`.
    /// Where groups are committed.
    enum Engine {
        /// An LMDB write transaction per group, on this thread.
        case lmdb(env: LMDBEnvironment, logDB: MDB_dbi, metaDB: MDB_dbi)
        /// An external backend's group transaction (``LogBackend/commitGroup(wallClock:_:)``), on this thread.
        case external(any LogBackend)
    }

    private let engine: Engine
    private let writer: WriterIdentity
    private let writerEncoding: WriterEncoding
    private let maxBatchEvents: Int
    private let afterCommit: @Sendable (UInt64) -> Void
    private let wallClock: @Sendable () -> LogTimestamp
    private let projection: ProjectionBinding?
    /// The log's projector with its resolved tables.
    var projectionBinding: ProjectionBinding? { projection }
    /// The bytes this writer's projector expects as the stored projection format.
    private let projectionFormat: [UInt8]?
    private let logger: Logger
    private let condition = NSCondition()
    /// Every mutable property of the writer; read and changed only while `condition` is locked.
    private var state = State.running(Queue())
    private let window: Duration

    /// Commits made, for diagnostics and benchmarks.
    let commits = Atomic<Int>(0)
    /// The writer thread's CPU time after its last group, in nanoseconds (benchmarks: the serial cost per command).
    let cpuNanoseconds = Atomic<UInt64>(0)

    init(
        engine: Engine, writer: WriterIdentity, maxBatchEvents: Int, groupCommitWindow: Duration,
        wallClock: @escaping @Sendable () -> LogTimestamp, projection: ProjectionBinding?, logger: Logger,
        afterCommit: @escaping @Sendable (UInt64) -> Void
    ) throws(EventLogError) {
        self.projection = projection
        self.projectionFormat = projection?.projector.format.stored
        self.wallClock = wallClock
        self.window = groupCommitWindow
        self.engine = engine
        self.writer = writer
        self.writerEncoding = try WriterEncoding(writer)
        self.maxBatchEvents = max(1, maxBatchEvents)
        self.logger = logger
        self.afterCommit = afterCommit
        let thread = Thread { [self] in self.run() }
        thread.name = "eventlog-writer"
        thread.start()
    }

    /// Queues `events` and returns their seqs once committed.
    func append(_ events: [PendingEvent]) async throws -> Range<UInt64> {
        try await withUnsafeThrowingContinuation { continuation in
            submit(.append(AppendCommand(events: events, continuation: continuation)))
        }
    }

    /// Queues `command`, or fails it when the writer is stopping.
    @usableFromInline
    func submit(_ command: WriteCommand) {
        condition.lock()
        guard let count = state.enqueue(command) else {
            condition.unlock()
            command.resume(throwing: EventLogError(.closed, "the event log is closed"))
            return
        }
        if count == 1 || count >= state.wakeAt { condition.signal() }
        condition.unlock()
    }

    /// Refuses new commands, finishes the queued ones, and returns once the thread has ended. Idempotent; any
    /// number of threads may call it at once.
    func stop() {
        condition.lock()
        if case .running(let queue) = state { state = .stopping(queue) }
        condition.broadcast()
        while case .stopping = state { condition.wait() }
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while state.queued == 0 && !state.isStopping { condition.wait() }
            // Commit window: after a group of several commands, wait (briefly, bounded by `window`) until as
            // many commands are queued as that group had, so the callers it resumed share the next sync
            // instead of each starting a small group. A lone sequential appender never waits.
            let lastGroupSize = state.lastGroupSize
            if lastGroupSize > 1 && state.queued < lastGroupSize && !state.isStopping && window > .zero {
                let (seconds, attoseconds) = window.components
                let deadline = Date(timeIntervalSinceNow: Double(seconds) + Double(attoseconds) / 1e18)
                state.wakeAt = lastGroupSize
                while state.queued < lastGroupSize && !state.isStopping {
                    if !condition.wait(until: deadline) { break }
                }
                state.wakeAt = 1
            }
            guard let batch = state.takeBatch(maxEvents: maxBatchEvents) else {
                // Stopping, and every queued command is done.
                state = .stopped
                condition.broadcast()
                condition.unlock()
                return
            }
            condition.unlock()
            process(batch)
            cpuNanoseconds.store(RawLMDBBaseline.threadCPUNanoseconds(), ordering: .relaxed)
        }
    }

    private func process(_ batch: [WriteCommand]) {
        switch engine {
        case .lmdb(let env, let logDB, let metaDB):
            processLMDB(batch, env: env, logDB: logDB, metaDB: metaDB)
        case .external(let backend):
            do {
                let last = try backend.commitGroup(wallClock: wallClock) { store, next, now in
                    try runExternal(batch, store, next: next, now: now)
                }
                commits.add(1, ordering: .relaxed)
                if let last { afterCommit(last) }
                for command in batch { command.resumeCommitted() }
            } catch {
                logger.error("eventlog.commit.failed", metadata: ["error": "\(error)"])
                for command in batch { command.resume(throwing: error) }
            }
        }
    }

    /// Runs the batch in an external backend's group transaction; each command can be undone alone by the
    /// store, so a rejected one never makes the group run again. Returns the last seq appended, or `nil`.
    private func runExternal(
        _ batch: [WriteCommand], _ store: any WriteTransactionStore, next: UInt64, now: LogTimestamp
    )
        throws -> UInt64?
    {
        let start = next
        var next = next
        for command in batch {
            switch command {
            case .transact(let command):
                store.beginCommand()
                var context = WriteContext(
                    store: .external(store), logDB: 0, writer: writer, writerEncoding: writerEncoding, now: now,
                    nextSeq: next, projection: projection)
                let succeeded: Bool
                do {
                    succeeded = try command.run(&context)
                } catch {
                    store.endCommand(keep: false)
                    throw error
                }
                store.endCommand(keep: succeeded)
                if succeeded { next = context.nextSeq }
            case .append(let command):
                let first = next
                store.beginCommand()
                for event in command.events {
                    let record = Record(event, seq: next, timestamp: now, writer: writer)
                    try store.append(record)
                    if let projection {
                        try projection.applyRecord(
                            record, TableWriter(store: .external(store), projectionTables: projection.tables))
                    }
                    next += 1
                }
                store.endCommand(keep: true)
                command.seqs = first..<next
            }
        }
        return next > start ? next - 1 : nil
    }

    private func processLMDB(_ batch: [WriteCommand], env: LMDBEnvironment, logDB: MDB_dbi, metaDB: MDB_dbi) {
        var isolate = false
        while true {
            do {
                let last = try runOnce(batch, isolate: isolate, env: env, logDB: logDB, metaDB: metaDB)
                commits.add(1, ordering: .relaxed)
                if let last { afterCommit(last) }
                for command in batch { command.resumeCommitted() }
                return
            } catch is IsolationNeeded {
                // A command threw after writing: run the batch again, each command in a nested transaction.
                isolate = true
                continue
            } catch let error as EventLogError where error.code == .mapFull {
                do {
                    if try env.grow() {
                        logger.info("eventlog.map.grown", metadata: ["eventlog.map_size": "\(env.mapSize)"])
                        continue
                    }
                } catch {
                    fail(batch, error, env: env)
                    return
                }
                fail(
                    batch,
                    EventLogError(
                        .mapFull, "the log reached its maximum map size of \(env.maxMapSize) bytes", cause: error),
                    env: env)
                return
            } catch {
                fail(batch, error, env: env)
                return
            }
        }
    }

    private func fail(_ batch: [WriteCommand], _ error: any Error, env: LMDBEnvironment) {
        let error = (error as? EventLogError).map(env.diagnose) ?? error
        logger.error("eventlog.commit.failed", metadata: ["error": "\(error)"])
        for command in batch { command.resume(throwing: error) }
    }

    /// Runs the whole batch in one write transaction. Returns the last seq appended, or `nil` if none.
    /// Throws (after the transaction is aborted) when the batch as a whole failed.
    private func runOnce(
        _ batch: [WriteCommand], isolate: Bool, env: LMDBEnvironment, logDB: MDB_dbi, metaDB: MDB_dbi
    ) throws -> UInt64? {
        let txn = try env.begin(readOnly: false)
        if let projectionFormat { try checkProjectionFormat(txn.view, projectionFormat, metaDB: metaDB) }
        var next: UInt64 = 1
        var lastTimestamp = LogTimestamp(microseconds: .min)
        _ = try txn.view.last(logDB) { key, value in
            next = seqFromKey(key) + 1
            if let clock = Envelope.peekClock(value) { lastTimestamp = clock.timestamp }
        }
        let start = next
        // The log clock: wall time, but never before the last record (of any process).
        let now = max(wallClock(), lastTimestamp)
        for command in batch {
            switch command {
            case .transact(let command):
                // Commands run straight in the batch's transaction. One that throws before writing anything
                // is rejected alone; one that throws after writing cannot be undone there, so the whole batch
                // runs again with every command in a nested transaction (LMDB's nested transactions cost a
                // dirty-page list and a copy of every page they touch, so they are paid only when needed).
                func run(_ view: TxnView) throws -> (succeeded: Bool, next: UInt64, wrote: Bool) {
                    var context = WriteContext(
                        store: .lmdb(view), logDB: logDB, writer: writer, writerEncoding: writerEncoding, now: now,
                        nextSeq: next, projection: projection)
                    let succeeded = try command.run(&context)
                    return (succeeded, context.nextSeq, context.wrote)
                }
                let outcome: (succeeded: Bool, next: UInt64, wrote: Bool)
                if isolate {
                    let child = try txn.child()
                    outcome = try run(child.view)
                    if outcome.succeeded { try child.commit() } else { child.abort() }
                } else {
                    outcome = try run(txn.view)
                    if !outcome.succeeded && outcome.wrote { throw IsolationNeeded() }
                }
                // A rejected command wrote nothing that stays: the next one starts where it started.
                if outcome.succeeded { next = outcome.next }
            case .append(let command):
                let first = next
                for event in command.events {
                    try appendRecord(txn.view, logDB, event, seq: next, timestamp: now, writer: writerEncoding)
                    if let projection {
                        try projection.applyRecord(
                            Record(event, seq: next, timestamp: now, writer: writer),
                            TableWriter(txn: txn.view, projectionTables: projection.tables))
                    }
                    next += 1
                }
                command.seqs = first..<next
            }
        }
        try txn.commit()
        return next > start ? next - 1 : nil
    }
}

extension GroupCommitWriter {
    /// Refuses to write when another process has rebuilt the projections in a different format since this one
    /// opened the log (a newer build during a rolling upgrade): this process would write the old layout.
    private func checkProjectionFormat(_ txn: TxnView, _ expected: [UInt8], metaDB: MDB_dbi) throws {
        let stored = try EventLog.projectionFormatKey.withUnsafeBytes { k in
            try txn.get(metaDB, k) { $0.map { [UInt8]($0) } }
        }
        guard stored == expected else {
            throw EventLogError(
                .versionMismatch,
                "the projections were rebuilt in format \(stored.map { String(decoding: $0, as: UTF8.self) } ?? "none") "
                    + "by another process; this process writes \(String(decoding: expected, as: UTF8.self)) "
                    + "and must be restarted with the newer build")
        }
    }
}

/// A command threw after writing inside the shared batch transaction: the batch must run again isolated.
private struct IsolationNeeded: Error {}
