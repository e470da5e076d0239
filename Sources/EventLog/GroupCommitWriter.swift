import CLMDB
import Foundation
import Logging
import Synchronization

/// The single writer thread of a process: it takes every queued command, runs them all in one LMDB write
/// transaction and commits once (group commit), then resumes each caller with its seqs.
///
/// LMDB write transactions are bound to the thread that began them, so they all run here and never cross an
/// `await`. Commands queued while a commit is in flight form the next group.
///
/// With ``Durability/durable`` a commit leaves its meta page unsynced, and the group's callers are resumed only
/// once a later sync has covered it (``PendingAcknowledgements``): the next group's commit, or an explicit sync
/// when nothing more is queued.
final class GroupCommitWriter: @unchecked Sendable {  // @unchecked: `state` is guarded by `condition`; `pending`
    // and `awaited` are touched by the writer thread alone.
    /// Where groups are committed.
    enum Engine {
        /// An LMDB write transaction per group, on this thread.
        case lmdb(env: LMDBEnvironment, logDB: MDB_dbi, metaDB: MDB_dbi)
        /// An external backend's group transaction (``LogBackend/commitGroup(wallClock:_:)``), on this thread.
        case external(any LogBackend)
    }

    let engine: Engine
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
    let logger: Logger
    private let condition = NSCondition()
    /// Every mutable property of the writer; read and changed only while `condition` is locked.
    private var state = State.running(Queue())
    private let window: Duration
    /// Whether commits leave their meta page unsynced and callers wait for a later sync (``Durability/durable``
    /// on LMDB).
    let defersAcknowledgement: Bool
    /// The groups committed but not yet durable.
    var pending: PendingAcknowledgements
    /// Callers resumed and not yet seen queueing again, when acknowledgements are deferred: whom the commit window
    /// waits for.
    var awaited = 0
    let probe: WriterProbe?

    /// Commits made, for diagnostics and benchmarks.
    let commits = Atomic<Int>(0)
    /// Syncs made (`fdatasync` or its equivalent): each commit that changed the log, each explicit sync.
    let syncs = Atomic<Int>(0)

    init(
        engine: Engine, writer: WriterIdentity, maxBatchEvents: Int, groupCommitWindow: Duration,
        wallClock: @escaping @Sendable () -> LogTimestamp, projection: ProjectionBinding?, logger: Logger,
        probe: WriterProbe? = nil, afterCommit: @escaping @Sendable (UInt64) -> Void
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
        self.probe = probe
        if case .lmdb(let env, _, _) = engine, env.durability.defersMetaSync {
            // Start from a durable state: every commit made before this writer (of any process) is on disk.
            let last = env.lastTransactionID()
            try env.sync()
            defersAcknowledgement = true
            pending = PendingAcknowledgements(durableThrough: last)
        } else {
            defersAcknowledgement = false
            pending = PendingAcknowledgements(durableThrough: 0)
        }
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

    /// Queues a decider body and returns its value and seqs once committed.
    func transact<R: Sendable>(_ body: @escaping @Sendable (inout WriteContext) throws -> R) async throws
        -> Committed<R>
    {
        try await withUnsafeThrowingContinuation { continuation in
            submit(.transact(TransactCommand(body, continuation: continuation)))
        }
    }

    /// Queues `command`, or fails it when the writer is stopping.
    private func submit(_ command: WriteCommand) {
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
        condition.lock()
        while true {
            // Sleep until a command arrives, unless groups wait for a sync.
            while state.queued == 0 && pending.isEmpty && !state.isStopping { condition.wait() }
            // Commit window: wait (briefly, bounded by `window`) for the callers resumed last to queue their next
            // commands, so they share the next sync (see `windowTarget`).
            let target = windowTarget()
            if state.queued < target && !state.isStopping {
                let (seconds, attoseconds) = window.components
                let deadline = Date(timeIntervalSinceNow: Double(seconds) + Double(attoseconds) / 1e18)
                state.wakeAt = target
                while state.queued < target && !state.isStopping {
                    if !condition.wait(until: deadline) {
                        awaited = 0  // they are not coming back (soon): stop waiting for them
                        break
                    }
                }
                state.wakeAt = 1
            }
            guard let batch = state.takeBatch(maxEvents: maxBatchEvents, maxCommands: groupLimit()) else {
                if !pending.isEmpty {
                    // Nothing queued to carry the pending meta pages to disk: sync them now.
                    condition.unlock()
                    syncPending()
                    condition.lock()
                    continue
                }
                // Stopping, and every queued command is done.
                state = .stopped
                condition.broadcast()
                condition.unlock()
                return
            }
            awaited = max(0, awaited - batch.count)
            condition.unlock()
            process(batch)
            condition.lock()
        }
    }

    /// How many queued commands the writer waits for before it takes the next group (0: take it at once).
    ///
    /// Without deferred acknowledgements: after a group of several commands, as many as that group had — the
    /// callers it resumed are about to come back — and a lone sequential appender never waits. With them
    /// (``Durability/durable``), callers come back only once their group is durable, one commit later:
    /// - while groups wait for a sync, every caller resumed since the last group was taken: their commit syncs
    ///   the waiting groups' meta pages too, saving the explicit sync. A lone appender's group waits with none
    ///   resumed, so it is synced at once;
    /// - when nothing waits, half of them, and the group is that half (`groupLimit`): the other half's commit
    ///   acknowledges it, and so on, so the callers settle into two cohorts that carry each other's meta page
    ///   (committed together, they would leave theirs to an explicit sync every time: the same two syncs).
    private func windowTarget() -> Int {
        guard window > .zero else { return 0 }
        guard defersAcknowledgement else {
            let last = state.lastGroupSize
            return last > 1 ? last : 0
        }
        if !pending.isEmpty { return awaited }
        return awaited > 1 ? (awaited + 1) / 2 : 0
    }

    /// The most commands the next group takes: half the callers resumed by an explicit sync (see `windowTarget`).
    private func groupLimit() -> Int {
        guard defersAcknowledgement && window > .zero && pending.isEmpty && awaited > 1 else { return .max }
        return (awaited + 1) / 2
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
                let commit = try runOnce(batch, isolate: isolate, env: env, logDB: logDB, metaDB: metaDB)
                commits.add(1, ordering: .relaxed)
                if commit.kind != .readOnly { probe?(.committed) }
                if commit.kind == .synced && env.durability != .unsynced { syncs.add(1, ordering: .relaxed) }
                // Tails wake now, before the commit is durable: see docs/architecture.md, "Durability".
                if let last = commit.lastSeq { afterCommit(last) }
                acknowledge(batch, commit)
                return
            } catch is IsolationNeeded {
                // A command threw after writing: run the batch again, each command in a nested transaction.
                isolate = true
                continue
            } catch let error as EventLogError where error.code == .mapFull {
                // Nothing was synced: the groups waiting for a sync still wait, for the retry or an explicit one.
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
            } catch let failure as CommitCallFailed {
                fail(batch, failure.error, env: env)
                failPending(failure.error, env: env)
                return
            } catch {
                fail(batch, error, env: env)
                return
            }
        }
    }

    /// Runs the whole batch in one write transaction, and commits it when a command wrote (aborts it otherwise).
    /// Throws (after the transaction is aborted) when the batch as a whole failed.
    private func runOnce(
        _ batch: [WriteCommand], isolate: Bool, env: LMDBEnvironment, logDB: MDB_dbi, metaDB: MDB_dbi
    ) throws -> GroupCommit {
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
        // Whether a kept command tried to write, and whether one's write succeeded (LMDB then has changes to sync).
        var wrote = false
        var changed = false
        for command in batch {
            switch command {
            case .transact(let command):
                // Commands run straight in the batch's transaction. One that throws before writing anything
                // is rejected alone; one that throws after writing cannot be undone there, so the whole batch
                // runs again with every command in a nested transaction (LMDB's nested transactions cost a
                // dirty-page list and a copy of every page they touch, so they are paid only when needed).
                func run(_ view: TxnView) throws -> (succeeded: Bool, next: UInt64, wrote: Bool, changed: Bool) {
                    var context = WriteContext(
                        store: .lmdb(view), logDB: logDB, writer: writer, writerEncoding: writerEncoding, now: now,
                        nextSeq: next, projection: projection)
                    let succeeded = try command.run(&context)
                    return (succeeded, context.nextSeq, context.wrote, context.changed)
                }
                let outcome: (succeeded: Bool, next: UInt64, wrote: Bool, changed: Bool)
                if isolate {
                    let child = try txn.child()
                    outcome = try run(child.view)
                    if outcome.succeeded { try child.commit() } else { child.abort() }
                } else {
                    outcome = try run(txn.view)
                    if !outcome.succeeded && outcome.wrote { throw IsolationNeeded() }
                }
                // A rejected command wrote nothing that stays: the next one starts where it started.
                if outcome.succeeded {
                    next = outcome.next
                    wrote = wrote || outcome.wrote
                    changed = changed || outcome.changed
                }
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
                if next > first {
                    wrote = true
                    changed = true
                }
            }
        }
        let txnID = txn.id
        guard wrote else {
            // Nothing to commit (LMDB would neither write nor sync): the group only read.
            txn.abort()
            return GroupCommit(kind: .readOnly, txnID: txnID, lastSeq: nil)
        }
        do {
            try txn.commit()
        } catch {
            throw CommitCallFailed.classify(error)
        }
        return GroupCommit(kind: changed ? .synced : .unsure, txnID: txnID, lastSeq: next > start ? next - 1 : nil)
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
