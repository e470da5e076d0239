import EventLog
import Foundation
import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// The event log on PostgreSQL (issue 26; docs/architecture.md, "The log on PostgreSQL"): the same records,
/// deciders and projector as on LMDB, one writer at a time across every host by a transaction-scoped advisory
/// lock, each process's queued commands in one transaction (group commit), a gapless seq from the head row.
final class PostgresLog: LogBackend, Sendable {
    let url: PostgresURL
    let schema: String
    let options: BlockingPostgres.Options
    let logger: Logger
    let projections: ProjectionStatus
    private let tables: [String: Table]
    private let writer: PostgresWriter
    private let readers: PostgresPool
    private let listener = Mutex<Task<Void, Never>?>(nil)
    private let closed = Atomic<Bool>(false)

    init(
        _ configuration: EventLogConfiguration, url: PostgresURL, schema: String, options: BlockingPostgres.Options,
        recovery: PostgresLogBackend.Recovery, logger: Logger
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
        writer = try PostgresWriter(
            adopting: connection, url: url, schema: schema, options: options, recovery: recovery,
            projectionFormat: configuration.projector?.format.storedText, logger: logger)
        readers = PostgresPool(url: url, options: options, logger: logger)
    }

    func table(named name: String) -> Table? { tables[name] }

    // MARK: Writing

    func commitGroup(
        wallClock: @Sendable () -> LogTimestamp,
        _ run: (any WriteTransactionStore, _ nextSeq: UInt64, _ now: LogTimestamp) throws -> UInt64?
    ) throws -> UInt64? {
        guard !closed.load(ordering: .acquiring) else { throw EventLogError(.closed, "the event log is closed") }
        return try writer.commitGroup(wallClock: wallClock, run)
    }

    // MARK: Reading

    func withSnapshot<R>(_ body: (any ReadTransactionStore) throws -> R) throws -> R {
        guard !closed.load(ordering: .acquiring) else { throw EventLogError(.closed, "the event log is closed") }
        var began = false
        return try readers.with(mayRetry: { !began }) { database in
            began = false
            try database.query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            began = true
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

    func isTransient(_ error: any Error) -> Bool {
        guard let error = error as? EventLogPostgresError else { return false }
        return error.code == .unavailable || error.code == .timeout
    }

    func committedSeq() -> Int {
        (try? readers.with { database in
            Int(try database.query("SELECT last_seq FROM \(unescaped: schema).head WHERE id = 1").first?.int64() ?? 0)
        }) ?? -1
    }

    /// LISTEN on its own connection; on a drop (a killed session, a restarted server), connect again with backoff
    /// and wake the readers once listening (a notification sent meanwhile is lost; they read from their seq
    /// anyway). The notifier's poll covers the gaps and a half-open connection.
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
                    try await database.connection.listen(on: channel) { notifications in
                        // Listening again: wake the readers once for the commits they may have missed.
                        ring()
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

    func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        listener.withLock { $0?.cancel() }
        writer.close()
        readers.close()
    }
}
