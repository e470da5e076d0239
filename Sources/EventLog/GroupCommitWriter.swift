import CLMDB
import Foundation
import Logging
import Synchronization

/// What a committed command produced.
struct WriteOutcome: @unchecked Sendable {  // @unchecked: `value` is the Sendable `R` of `transact`, erased.
    var value: Any?
    var seqs: Range<UInt64>
    var timestamp: LogTimestamp
}

/// One queued command: plain events (the fast path) or a decider body run inside the transaction.
final class WriteCommand: @unchecked Sendable {  // @unchecked: touched only by the writer thread until resumed.
    let events: [PendingEvent]
    let body: (@Sendable (inout WriteContext) throws -> Any)?
    let continuation: UnsafeContinuation<WriteOutcome, any Error>
    var result: Result<WriteOutcome, any Error>?

    init(
        events: [PendingEvent], body: (@Sendable (inout WriteContext) throws -> Any)?,
        continuation: UnsafeContinuation<WriteOutcome, any Error>
    ) {
        self.events = events
        self.body = body
        self.continuation = continuation
    }

    var eventCount: Int { body == nil ? events.count : 1 }
}

/// The single writer thread of a process: it takes every queued command, runs them all in one LMDB write
/// transaction and commits once (group commit), then resumes each caller with its seqs.
///
/// LMDB write transactions are bound to the thread that began them, so they all run here and never cross an
/// `await`. Commands queued while a commit is in flight form the next group.
final class GroupCommitWriter: @unchecked Sendable {  // @unchecked: `queue`/`stopping` are guarded by `condition`.
    private let env: LMDBEnvironment
    private let logDB: MDB_dbi
    private let writer: WriterIdentity
    private let writerEncoding: WriterEncoding
    private let maxBatchEvents: Int
    private let afterCommit: @Sendable (UInt64) -> Void
    private let wallClock: @Sendable () -> LogTimestamp
    private let projection: ProjectionBinding?
    /// The log's projector with its resolved tables.
    var projectionBinding: ProjectionBinding? { projection }
    /// Where the projection format is stored, and the bytes this writer's projector expects there.
    private let metaDB: MDB_dbi
    private let projectionFormat: [UInt8]?
    private let logger: Logger
    private let condition = NSCondition()
    private var queue: [WriteCommand] = []
    private var stopping = false
    /// Submitters signal the writer when the queue reaches this many commands (1 outside a commit window).
    private var wakeAt = 1
    /// Commands in the previous group: under concurrency, the callers it resumed are about to come back.
    private var lastGroupSize = 0
    private let window: Duration
    private let finished = DispatchSemaphore(value: 0)

    /// Commits made, for diagnostics and benchmarks.
    let commits = Atomic<Int>(0)

    init(
        env: LMDBEnvironment, logDB: MDB_dbi, writer: WriterIdentity, maxBatchEvents: Int,
        groupCommitWindow: Duration, wallClock: @escaping @Sendable () -> LogTimestamp,
        projection: ProjectionBinding?, metaDB: MDB_dbi, logger: Logger,
        afterCommit: @escaping @Sendable (UInt64) -> Void
    ) throws(EventLogError) {
        self.projection = projection
        self.metaDB = metaDB
        self.projectionFormat = projection?.projector.format.stored
        self.wallClock = wallClock
        self.window = groupCommitWindow
        self.env = env
        self.logDB = logDB
        self.writer = writer
        self.writerEncoding = try WriterEncoding(writer)
        self.maxBatchEvents = max(1, maxBatchEvents)
        self.logger = logger
        self.afterCommit = afterCommit
        let thread = Thread { [self] in self.run() }
        thread.name = "eventlog-writer"
        thread.start()
    }

    /// Queues a command and waits for its commit.
    func submit(events: [PendingEvent], body: (@Sendable (inout WriteContext) throws -> Any)?) async throws
        -> WriteOutcome
    {
        try await withUnsafeThrowingContinuation { continuation in
            let command = WriteCommand(events: events, body: body, continuation: continuation)
            condition.lock()
            if stopping {
                condition.unlock()
                continuation.resume(throwing: EventLogError(.closed, "the event log is closed"))
                return
            }
            queue.append(command)
            if queue.count == 1 || queue.count >= wakeAt { condition.signal() }
            condition.unlock()
        }
    }

    /// Finishes queued commands, then stops the thread. Idempotent.
    func stop() {
        condition.lock()
        let wasStopping = stopping
        stopping = true
        condition.signal()
        condition.unlock()
        if !wasStopping { finished.wait() }
    }

    private func run() {
        while true {
            condition.lock()
            while queue.isEmpty && !stopping { condition.wait() }
            // Commit window: after a group of several commands, wait (briefly, bounded by `window`) until as
            // many commands are queued as that group had, so the callers it resumed share the next sync
            // instead of each starting a small group. A lone sequential appender never waits.
            if lastGroupSize > 1 && queue.count < lastGroupSize && !stopping && window > .zero {
                let (seconds, attoseconds) = window.components
                let deadline = Date(timeIntervalSinceNow: Double(seconds) + Double(attoseconds) / 1e18)
                wakeAt = lastGroupSize
                while queue.count < lastGroupSize && !stopping {
                    if !condition.wait(until: deadline) { break }
                }
                wakeAt = 1
            }
            if queue.isEmpty && stopping {
                condition.unlock()
                finished.signal()
                return
            }
            var batch: [WriteCommand] = []
            var events = 0
            var taken = 0
            for command in queue {
                if !batch.isEmpty && events + command.eventCount > maxBatchEvents { break }
                batch.append(command)
                events += command.eventCount
                taken += 1
            }
            queue.removeFirst(taken)
            lastGroupSize = taken
            condition.unlock()
            process(batch)
        }
    }

    private func process(_ batch: [WriteCommand]) {
        var isolate = false
        while true {
            do {
                let last = try runOnce(batch, isolate: isolate)
                commits.add(1, ordering: .relaxed)
                if let last { afterCommit(last) }
                for command in batch {
                    switch command.result! {
                    case .success(let outcome): command.continuation.resume(returning: outcome)
                    case .failure(let error): command.continuation.resume(throwing: error)
                    }
                }
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
                    fail(batch, error)
                    return
                }
                fail(
                    batch,
                    EventLogError(
                        .mapFull, "the log reached its maximum map size of \(env.maxMapSize) bytes", cause: error))
                return
            } catch {
                fail(batch, error)
                return
            }
        }
    }

    private func fail(_ batch: [WriteCommand], _ error: any Error) {
        let error = (error as? EventLogError).map(env.diagnose) ?? error
        logger.error("eventlog.commit.failed", metadata: ["error": "\(error)"])
        for command in batch { command.continuation.resume(throwing: error) }
    }

    /// Runs the whole batch in one write transaction. Returns the last seq appended, or `nil` if none.
    /// Throws (after the transaction is aborted) when the batch as a whole failed.
    private func runOnce(_ batch: [WriteCommand], isolate: Bool) throws -> UInt64? {
        let txn = try env.begin(readOnly: false)
        if let projectionFormat { try checkProjectionFormat(txn.view, projectionFormat) }
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
            if let body = command.body {
                // Commands run straight in the batch's transaction. One that throws before writing anything
                // is rejected alone; one that throws after writing cannot be undone there, so the whole batch
                // runs again with every command in a nested transaction (LMDB's nested transactions cost a
                // dirty-page list and a copy of every page they touch, so they are paid only when needed).
                func run(_ view: TxnView) throws -> (result: Result<Any, any Error>, next: UInt64, wrote: Bool) {
                    var context = WriteContext(
                        txn: view, logDB: logDB, writer: writer, writerEncoding: writerEncoding, now: now,
                        nextSeq: next, projection: projection)
                    do {
                        return (.success(try body(&context)), context.nextSeq, context.wrote)
                    } catch let error as EventLogError where error.code == .mapFull {
                        throw error  // The whole batch retries after the map grows.
                    } catch {
                        return (.failure(error), context.nextSeq, context.wrote)
                    }
                }
                let outcome: (result: Result<Any, any Error>, next: UInt64, wrote: Bool)
                if isolate {
                    let child = try txn.child()
                    outcome = try run(child.view)
                    if case .failure = outcome.result { child.abort() } else { try child.commit() }
                } else {
                    outcome = try run(txn.view)
                    if case .failure = outcome.result, outcome.wrote { throw IsolationNeeded() }
                }
                switch outcome.result {
                case .success(let value):
                    command.result = .success(WriteOutcome(value: value, seqs: next..<outcome.next, timestamp: now))
                    next = outcome.next
                case .failure(let error):
                    command.result = .failure(error)  // Rejected alone; nothing of it was written.
                }
            } else {
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
                command.result = .success(WriteOutcome(value: nil, seqs: first..<next, timestamp: now))
            }
        }
        try txn.commit()
        return next > start ? next - 1 : nil
    }
}

extension GroupCommitWriter {
    /// Refuses to write when another process has rebuilt the projections in a different format since this one
    /// opened the log (a newer build during a rolling upgrade): this process would write the old layout.
    private func checkProjectionFormat(_ txn: TxnView, _ expected: [UInt8]) throws {
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
