import EventLog
import Foundation
import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// The event log on PostgreSQL (issue 26; docs/architecture.md, "The log on PostgreSQL"): the same records,
/// deciders and projector as on LMDB, one writer at a time across every host by a transaction-scoped advisory
/// lock, each process's queued commands in one transaction (group commit), a gapless seq from the head row.
final class PostgresLog: LogBackend, @unchecked Sendable {  // @unchecked: `writerConnection` is the writer
    // thread's alone (and the opening thread's before it starts); the rest is immutable or in a Mutex.
    let url: PostgresURL
    let schema: String
    let options: BlockingPostgres.Options
    let logger: Logger
    let projections: ProjectionStatus
    private let tables: [String: Table]
    /// The projection format this process writes, checked at every group against the head row.
    private let projectionFormat: String?
    private var writerConnection: BlockingPostgres?
    private let readers: PostgresPool
    private let listener = Mutex<Task<Void, Never>?>(nil)
    private let closed = Atomic<Bool>(false)

    init(
        _ configuration: EventLogConfiguration, url: PostgresURL, schema: String, options: BlockingPostgres.Options,
        logger: Logger
    ) throws {
        self.url = url
        self.schema = schema
        self.options = options
        self.logger = logger
        let connection = try BlockingPostgres(url: url, options: options, logger: logger)
        if !configuration.createIfMissing {
            let found = try connection.query(
                "SELECT 1 FROM information_schema.schemata WHERE schema_name = \(schema)")
            guard !found.isEmpty else {
                connection.close()
                throw EventLogError(.notFound, "no event log in schema \(schema) at \(url.redacted)")
            }
        }
        try PostgresSchema.install(on: connection, schema: schema)
        let opened = try PostgresOpening.open(
            connection, schema: schema, configuration: configuration, logger: logger)
        tables = opened.tables
        projections = opened.projections
        projectionFormat = configuration.projector?.format.storedText
        writerConnection = connection
        readers = PostgresPool(url: url, options: options, logger: logger)
    }

    func table(named name: String) -> Table? { tables[name] }

    // MARK: Writing

    func commitGroup(
        wallClock: @Sendable () -> LogTimestamp,
        _ run: (any WriteTransactionStore, _ nextSeq: UInt64, _ now: LogTimestamp) throws -> UInt64?
    ) throws -> UInt64? {
        let database = try writer()
        let group = UUID()
        var committing = false
        do {
            try database.query("BEGIN")
            let head = try database.query(
                "SELECT last_seq, last_time, projection_format FROM \(unescaped: schema).begin_group()")
            guard let row = head.first else {
                throw EventLogError(.corruptRecord, "the head row of schema \(schema) is missing")
            }
            let (lastSeq, lastTime, storedFormat) = try row.decode((Int64, Int64, String?).self)
            if let projectionFormat, storedFormat != projectionFormat {
                throw EventLogError(
                    .versionMismatch,
                    "the projections were rebuilt in format \(storedFormat ?? "none") by another process; this "
                        + "process writes \(projectionFormat) and must be restarted with the newer build")
            }
            let now = max(wallClock(), LogTimestamp(microseconds: lastTime))
            let transaction = PostgresWriteTransaction(database: database, schema: schema)
            let first = UInt64(bitPattern: lastSeq) + 1
            let last = try run(transaction, first, now)
            guard !transaction.isEmpty else {
                try database.query("ROLLBACK")
                return nil
            }
            try transaction.flush()
            let newLast = Int64(bitPattern: last ?? UInt64(bitPattern: lastSeq))
            // The log clock's floor: the group's time, or the last record's when it is later (records imported
            // from another log keep their own times).
            let newTime =
                last == nil ? lastTime : max(now.microseconds, transaction.records.last?.timestamp.microseconds ?? 0)
            try database.query(
                """
                INSERT INTO \(unescaped: schema).command_groups (id, first_seq, last_seq, generation, committed_at, writer)
                SELECT \(group), \(last == nil ? nil : Int64(bitPattern: first)), \(last == nil ? nil : newLast),
                       generation + 1, \(now.microseconds), \(url.applicationName ?? "switchboard")
                FROM \(unescaped: schema).head WHERE id = 1
                """)
            let updated = try database.query(
                """
                UPDATE \(unescaped: schema).head SET last_seq = \(newLast), last_time = \(newTime),
                       generation = generation + 1
                WHERE id = 1 AND last_seq = \(lastSeq) RETURNING generation
                """)
            guard !updated.isEmpty else {
                throw EventLogError(
                    .corruptRecord, "the head moved during a group that held the writer lock: refusing to fork the log")
            }
            if last != nil {
                try database.query(
                    "SELECT pg_notify(\(PostgresSchema.notificationChannel(schema: schema)), \(String(newLast)))")
            }
            committing = true
            try database.query("COMMIT")
            return last
        } catch {
            if committing, Self.lostConnection(error) {
                // The COMMIT's answer was lost: resolve it, never guess.
                return try resolve(group, error: error)
            }
            if !database.isClosed { _ = try? database.query("ROLLBACK") }
            if database.isClosed { writerConnection = nil }
            throw error
        }
    }

    /// After a lost COMMIT reply: a new connection takes the writer lock (which waits until the old session's
    /// transaction has ended, committed or not), then looks for the group's id.
    private func resolve(_ group: UUID, error: any Error) throws -> UInt64? {
        writerConnection = nil
        let database = try writer()
        try database.query("BEGIN")
        defer { _ = try? database.query("ROLLBACK") }
        try database.query(
            PostgresQuery(unsafeSQL: "SELECT pg_advisory_xact_lock(\(PostgresSchema.lockKey(schema: schema)))"))
        let rows = try database.query(
            "SELECT last_seq FROM \(unescaped: schema).command_groups WHERE id = \(group)")
        guard let row = rows.first else {
            logger.warning("eventlog.postgres.commit_not_applied", metadata: ["eventlog.group": "\(group)"])
            throw EventLogPostgresError(
                .unavailable, "the connection was lost before the commit applied: nothing was written", cause: error)
        }
        logger.notice("eventlog.postgres.commit_confirmed", metadata: ["eventlog.group": "\(group)"])
        return try row.decode(Int64?.self).map { UInt64(bitPattern: $0) }
    }

    /// The writer's connection, made again when the last one was lost.
    private func writer() throws -> BlockingPostgres {
        if let writerConnection, !writerConnection.isClosed { return writerConnection }
        guard !closed.load(ordering: .acquiring) else { throw EventLogError(.closed, "the event log is closed") }
        let connection = try BlockingPostgres(url: url, options: options, logger: logger)
        writerConnection = connection
        return connection
    }

    static func lostConnection(_ error: any Error) -> Bool {
        guard let error = error as? EventLogPostgresError else { return false }
        return error.code == .unavailable || error.code == .timeout
    }

    // MARK: Reading

    func withSnapshot<R>(_ body: (any ReadTransactionStore) throws -> R) throws -> R {
        guard !closed.load(ordering: .acquiring) else { throw EventLogError(.closed, "the event log is closed") }
        return try readers.with { database in
            try database.query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            do {
                let result = try body(PostgresReadTransaction(database: database, schema: schema))
                try database.query("COMMIT")
                return result
            } catch {
                if !database.isClosed { _ = try? database.query("ROLLBACK") }
                throw error
            }
        }
    }

    func checkpoint(_ name: String) throws -> UInt64? {
        try readers.with { database in
            let rows = try database.query("SELECT seq FROM \(unescaped: schema).checkpoints WHERE name = \(name)")
            return try rows.first.map { UInt64(bitPattern: try $0.int64()) }
        }
    }

    func committedSeq() -> Int {
        (try? readers.with { database in
            Int(try database.query("SELECT last_seq FROM \(unescaped: schema).head WHERE id = 1").first?.int64() ?? 0)
        }) ?? -1
    }

    /// LISTEN on its own connection; on a drop, connect again and wake the readers once (a notification sent
    /// meanwhile is lost; they read from their seq anyway). The notifier's poll covers the gaps.
    func startWakeups(_ ring: @escaping @Sendable () -> Void) {
        let (url, options, logger, channel) = (
            url, options, logger, PostgresSchema.notificationChannel(schema: schema)
        )
        let task = Task {
            var delay = Duration.milliseconds(100)
            while !Task.isCancelled {
                do {
                    let database = try await BlockingPostgres.connect(to: url, options: options, logger: logger)
                    defer { Task { await database.close() } }
                    delay = .milliseconds(100)
                    ring()
                    try await database.connection.listen(on: channel) { notifications in
                        for try await _ in notifications { ring() }
                    }
                } catch {
                    if Task.isCancelled { return }
                    logger.debug("eventlog.postgres.listen_lost", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
        listener.withLock { $0 = task }
    }

    func exportProjections(to directory: String, projector: any Projector) throws -> ProjectionExport {
        throw EventLogError(
            .invalidArgument, "state snapshots of a PostgreSQL log are not written yet (SNAPSHOT_EVERY=0 with it)")
    }

    func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        listener.withLock { $0?.cancel() }
        writerConnection?.close()
        readers.close()
    }
}
