import EventLog
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// The writer thread's side of a PostgreSQL log: its session, one group commit per call, and what happens when
/// the server goes away (docs/architecture.md, "The log on PostgreSQL: failures").
///
/// - A group that loses its connection before COMMIT runs again on a new one (its bodies may run more than
///   once), with backoff, until ``PostgresLogBackend/Recovery/reconnectTimeout``; then its callers get
///   ``EventLogPostgresError/Code/unavailable`` and nothing of it was written.
/// - A COMMIT whose reply is lost is resolved, never guessed: each attempt records its own group id in
///   `command_groups`, and a new session takes the writer lock — which it gets only once the old transaction has
///   ended, committed or not; the old server process is terminated when it still holds the lock after
///   ``PostgresLogBackend/Recovery/inDoubtGrace`` — then looks the id up. Found: the callers get what that run
///   recorded. Absent: the group runs again as a new attempt. When the server stays out of reach for
///   ``PostgresLogBackend/Recovery/inDoubtTimeout``, the callers get ``EventLogPostgresError/Code/inDoubt``.
final class PostgresWriter: @unchecked Sendable {  // @unchecked: `session` and `outage` are the writer thread's
    // alone (and the opening thread's before it starts); `close()` runs once the writer thread has stopped.

    /// A connection and the server process behind it (to terminate it after a lost COMMIT reply).
    private struct Session {
        let database: BlockingPostgres
        let pid: Int32
        /// `backend_start` in microseconds since the epoch: with `pid`, names the process without ambiguity.
        let started: Int64
    }

    /// The attempt did not commit and the connection was lost: running the group again may succeed.
    private struct Retry: Error {
        let cause: EventLogPostgresError
    }

    private enum Resolution {
        case committed(lastSeq: UInt64?)
        case notApplied
    }

    private let url: PostgresURL
    private let schema: String
    private let options: BlockingPostgres.Options
    private let recovery: PostgresLogBackend.Recovery
    /// The projection format this process writes, checked at every group against the head row.
    private let projectionFormat: String?
    private let logger: Logger
    private let closed = Atomic<Bool>(false)
    private var session: Session?
    /// Set when a group gave up reaching the server: later groups try once, not for the whole timeout, until a
    /// connection succeeds again.
    private var outage = false
    /// The rows as this writer's last group left them, and the head's generation that group wrote: the next group
    /// starts from them when the generation is unchanged (no other process committed since), so its deciders'
    /// point reads of what the last groups read or wrote, and scans inside the key ranges they read whole, cost no
    /// round trip. Any other outcome drops them.
    private var known: (generation: Int64, rows: KnownRows)?
    /// The most rows kept from one group to the next.
    static let knownRowsLimit = 200_000
    /// Groups in a row that started from the rows the previous one left: no other process is writing.
    private var streak = 0
    /// The most rows of a table loaded whole, once this writer has had the log to itself for two groups; and the
    /// tables found larger than that, not tried again.
    static let wholeTableRows = 4_096
    private var tooLarge: Set<UInt32> = []

    /// A writer that goes on with `connection` (the one the log was opened with).
    @available(*, noasync, message: "blocks the thread")
    init(
        adopting connection: BlockingPostgres, url: PostgresURL, schema: String, options: BlockingPostgres.Options,
        recovery: PostgresLogBackend.Recovery, projectionFormat: String?, logger: Logger
    ) throws {
        self.url = url
        self.schema = schema
        self.options = options
        self.recovery = recovery
        self.projectionFormat = projectionFormat
        self.logger = logger
        session = try Self.identify(connection)
    }

    /// What the last group left known when `generation` is still the one it wrote, else nothing; either way the
    /// writer keeps nothing (a group that fails must not leave it behind).
    private func takeKnown(ifUnchangedSince generation: Int64) -> KnownRows {
        defer { known = nil }
        guard let known, known.generation == generation else {
            streak = 0
            return KnownRows()
        }
        streak += 1
        var rows = known.rows
        rows.loaded.formUnion(tooLarge)
        return rows
    }

    /// Closes the session; later groups fail with ``EventLogError/Code/closed``.
    func close() {
        closed.store(true, ordering: .releasing)
        session?.database.close()
    }

    // MARK: Groups

    /// ``LogBackend/commitGroup(wallClock:_:)``: the group, run again on a new connection after a loss.
    func commitGroup(
        wallClock: @Sendable () -> LogTimestamp,
        _ run: (any WriteTransactionStore, _ nextSeq: UInt64, _ now: LogTimestamp) throws -> UInt64?
    ) throws -> UInt64? {
        let deadline = ContinuousClock.now + recovery.reconnectTimeout
        var pause = Duration.milliseconds(20)
        while true {
            do {
                return try attempt(try connected(), wallClock: wallClock, run)
            } catch let retry as Retry {
                guard !outage, !closed.load(ordering: .acquiring), ContinuousClock.now + pause < deadline else {
                    outage = true
                    throw EventLogPostgresError(
                        .unavailable,
                        "PostgreSQL (\(url.redacted)) could not be reached for \(recovery.reconnectTimeout): "
                            + "nothing of the group was written; the next command tries again (\(retry.cause.message))",
                        sqlState: retry.cause.sqlState, cause: retry.cause)
                }
                logger.notice("eventlog.postgres.group_retry", metadata: ["error": "\(retry.cause)"])
                Thread.sleep(forTimeInterval: pause.timeInterval)
                pause = min(pause * 2, .milliseconds(500))
            }
        }
    }

    /// One attempt on `session`: begin, take the lock, run the commands, flush, record the group id, commit.
    private func attempt(
        _ session: Session, wallClock: @Sendable () -> LogTimestamp,
        _ run: (any WriteTransactionStore, _ nextSeq: UInt64, _ now: LogTimestamp) throws -> UInt64?
    ) throws -> UInt64? {
        let database = session.database
        let group = UUID()
        var committing = false
        do {
            try database.query("BEGIN")
            let head = try database.query(
                "SELECT last_seq, last_time, projection_format, generation FROM \(unescaped: schema).begin_group()")
            guard let row = head.first else {
                throw EventLogError(.corruptRecord, "the head row of schema \(schema) is missing")
            }
            let (lastSeq, lastTime, storedFormat, generation) = try row.decode((Int64, Int64, String?, Int64).self)
            outage = false
            if let projectionFormat, storedFormat != projectionFormat {
                throw EventLogError(
                    .versionMismatch,
                    "the projections were rebuilt in format \(storedFormat ?? "none") by another process; this "
                        + "process writes \(projectionFormat) and must be restarted with the newer build")
            }
            let now = max(wallClock(), LogTimestamp(microseconds: lastTime))
            let transaction = PostgresWriteTransaction(
                database: database, schema: schema, known: takeKnown(ifUnchangedSince: generation),
                wholeTableRows: streak >= 2 ? Self.wholeTableRows : 0)
            defer { tooLarge.formUnion(transaction.tooLarge) }
            let first = UInt64(bitPattern: lastSeq) + 1
            let last = try run(transaction, first, now)
            guard !transaction.isEmpty else {
                try database.query("ROLLBACK")
                // Nothing written: what it read still stands at this generation.
                known = transaction.takeKnownAfterCommit(limit: Self.knownRowsLimit).map { (generation, $0) }
                return nil
            }
            // The log clock's floor: the group's time, or the last record's when it is later (records imported
            // from another log keep their own times).
            let newTime =
                last == nil ? lastTime : max(now.microseconds, transaction.records.last?.timestamp.microseconds ?? 0)
            let closing = GroupStatements.Closing(
                group: group, seqs: last.map { Int64(bitPattern: first)...Int64(bitPattern: $0) },
                previousLast: lastSeq, lastTime: newTime, committedAt: now.microseconds,
                writer: url.applicationName ?? "switchboard",
                channel: PostgresSchema.notificationChannel(schema: schema))
            guard let written = try transaction.flush(closing: closing) else {
                throw EventLogError(
                    .corruptRecord, "the head moved during a group that held the writer lock: refusing to fork the log")
            }
            committing = true
            try database.query("COMMIT", timeout: recovery.commitTimeout)
            known = transaction.takeKnownAfterCommit(limit: Self.knownRowsLimit).map { (written, $0) }
            return last
        } catch {
            guard let lost = Self.lostConnection(error, on: database) else {
                if !database.isClosed { _ = try? database.query("ROLLBACK") }
                throw error
            }
            drop(session)
            guard committing else { throw Retry(cause: lost) }
            // The COMMIT was sent and its answer lost: resolve it, never guess.
            switch try resolve(group, after: session, cause: lost) {
            case .committed(let lastSeq): return lastSeq
            case .notApplied: throw Retry(cause: lost)
            }
        }
    }

    // MARK: A lost COMMIT reply

    /// Learns whether `group` committed, on new sessions, for as long as ``PostgresLogBackend/Recovery/inDoubtTimeout``.
    private func resolve(_ group: UUID, after old: Session, cause: EventLogPostgresError) throws -> Resolution {
        let metadata: Logger.Metadata = ["eventlog.group": "\(group)", "error": "\(cause)"]
        logger.warning("eventlog.postgres.commit_in_doubt", metadata: metadata)
        let deadline = ContinuousClock.now + recovery.inDoubtTimeout
        var pause = Duration.milliseconds(20)
        while true {
            do {
                let resolution = try lookUp(group, after: old)
                switch resolution {
                case .committed: logger.notice("eventlog.postgres.commit_confirmed", metadata: metadata)
                case .notApplied: logger.notice("eventlog.postgres.commit_not_applied", metadata: metadata)
                }
                return resolution
            } catch let retry as Retry
                where !closed.load(ordering: .acquiring) && ContinuousClock.now + pause < deadline
            {
                logger.debug("eventlog.postgres.resolve_retry", metadata: ["error": "\(retry.cause)"])
                Thread.sleep(forTimeInterval: pause.timeInterval)
                pause = min(pause * 2, .milliseconds(500))
            } catch {
                let last = (error as? Retry)?.cause ?? error
                logger.error(
                    "eventlog.postgres.commit_unresolved", metadata: ["eventlog.group": "\(group)", "error": "\(last)"])
                throw EventLogPostgresError(
                    .inDoubt,
                    "the COMMIT of group \(group) was sent, its reply lost, and whether it applied could not be "
                        + "learnt: look the id up in \(schema).command_groups (\(last))",
                    cause: cause)
            }
        }
    }

    /// Takes the writer lock on a new session — once the old transaction has ended — and looks `group` up.
    private func lookUp(_ group: UUID, after old: Session) throws -> Resolution {
        let session = try connected()
        let database = session.database
        let lock = PostgresQuery(
            unsafeSQL: "SELECT pg_advisory_xact_lock(\(PostgresSchema.lockKey(schema: schema)))")
        do {
            try database.query("BEGIN")
            try database.query(
                PostgresQuery(unsafeSQL: "SET LOCAL lock_timeout = \(recovery.inDoubtGrace.wholeMilliseconds)"))
            do {
                try database.query(lock)
            } catch let error as EventLogPostgresError where error.sqlState == "55P03" {
                // Still held: the old session stopped mid-transaction or its socket is half-open. End it (its
                // transaction then ends too), then wait for the lock as any writer does.
                try database.query("ROLLBACK")
                let ended = try database.query(
                    """
                    SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                    WHERE pid = \(old.pid) AND (extract(epoch FROM backend_start) * 1000000)::bigint = \(old.started)
                    """)
                logger.warning(
                    "eventlog.postgres.old_writer_terminated",
                    metadata: [
                        "eventlog.group": "\(group)", "postgres.pid": "\(old.pid)", "found": "\(!ended.isEmpty)",
                    ])
                try database.query("BEGIN")
                try database.query(lock)
            }
            let rows = try database.query(
                "SELECT last_seq FROM \(unescaped: schema).command_groups WHERE id = \(group)")
            try database.query("ROLLBACK")
            guard let row = rows.first else { return .notApplied }
            return .committed(lastSeq: try row.decode(Int64?.self).map { UInt64(bitPattern: $0) })
        } catch {
            if let lost = Self.lostConnection(error, on: database) {
                drop(session)
                throw Retry(cause: lost)
            }
            if !database.isClosed { _ = try? database.query("ROLLBACK") }
            throw error
        }
    }

    // MARK: Sessions

    /// The session, made again when the last one was lost.
    private func connected() throws -> Session {
        if let session, !session.database.isClosed { return session }
        if let session { drop(session) }
        guard !closed.load(ordering: .acquiring) else { throw EventLogError(.closed, "the event log is closed") }
        let database: BlockingPostgres
        do {
            database = try BlockingPostgres(url: url, options: options, logger: logger)
        } catch let error as EventLogPostgresError where error.code == .unavailable || error.code == .timeout {
            throw Retry(cause: error)
        }
        do {
            let made = try Self.identify(database)
            session = made
            outage = false
            return made
        } catch {
            database.close()
            if let lost = Self.lostConnection(error, on: database) { throw Retry(cause: lost) }
            throw error
        }
    }

    private func drop(_ session: Session) {
        if self.session?.database === session.database { self.session = nil }
        session.database.close()
    }

    /// The server process behind `database`.
    private static func identify(_ database: BlockingPostgres) throws -> Session {
        let rows = try database.query(
            """
            SELECT pid, (extract(epoch FROM backend_start) * 1000000)::bigint FROM pg_stat_activity
            WHERE pid = pg_backend_pid()
            """)
        guard let row = rows.first else {
            throw EventLogPostgresError(.query, "the writer's own session is missing from pg_stat_activity")
        }
        let (pid, started) = try row.decode((Int32, Int64).self)
        return Session(database: database, pid: pid, started: started)
    }

    /// The error as a lost connection — unreachable, ended by the server, closed by its watchdog — or `nil` when
    /// the server answered on a live connection (a refusal, its own statement timeout): then the transaction is
    /// known not to have committed.
    static func lostConnection(_ error: any Error, on database: BlockingPostgres) -> EventLogPostgresError? {
        guard let error = error as? EventLogPostgresError else { return nil }
        return error.code == .unavailable || database.isClosed ? error : nil
    }
}

extension Duration {
    /// In seconds, for `Thread.sleep`.
    var timeInterval: TimeInterval {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// In whole milliseconds, at least 1 (0 means "no limit" to the server's settings).
    var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        return max(1, seconds * 1_000 + attoseconds / 1_000_000_000_000_000)
    }
}
