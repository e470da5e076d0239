import EventLog
import Logging
import PostgresNIO

/// Opening a PostgreSQL log, in one transaction under its writer lock: the table registry (a handle per declared
/// table, the same in every process) and the projection format — recorded for a new log, rebuilt in place from
/// the events when older (``ProjectionUpgrade``), refused when newer than this build's.
enum PostgresOpening {
    struct Opened {
        var tables: [String: Table]
        var projections: ProjectionStatus
    }

    static func open(
        _ database: BlockingPostgres, schema: String, configuration: EventLogConfiguration, logger: Logger
    ) throws -> Opened {
        try database.query("BEGIN")
        do {
            try database.query(
                PostgresQuery(unsafeSQL: "SELECT pg_advisory_xact_lock(\(PostgresSchema.lockKey(schema: schema)))"))
            let names = configuration.tables + (configuration.projector?.tables ?? [])
            for name in names {
                try database.query(
                    """
                    INSERT INTO \(unescaped: schema).tables (id, name)
                    SELECT coalesce((SELECT max(id) FROM \(unescaped: schema).tables), 0) + 1, \(name)
                    WHERE NOT EXISTS (SELECT 1 FROM \(unescaped: schema).tables WHERE name = \(name))
                    """)
            }
            var tables: [String: Table] = [:]
            for row in try database.query("SELECT id, name FROM \(unescaped: schema).tables") {
                let (id, name) = try row.decode((Int16, String).self)
                tables[name] = Table(name: name, id: UInt32(id))
            }
            var projections = ProjectionStatus.current
            if let projector = configuration.projector {
                projections = try reconcile(
                    database, schema: schema, projector: projector, tables: projector.tables.compactMap { tables[$0] },
                    upgrade: configuration.projectionUpgrade, logger: logger)
            }
            try database.query("COMMIT")
            return Opened(tables: tables, projections: projections)
        } catch {
            if !database.isClosed { _ = try? database.query("ROLLBACK") }
            throw error
        }
    }

    private static func reconcile(
        _ database: BlockingPostgres, schema: String, projector: any Projector, tables: [Table],
        upgrade: ProjectionUpgrade, logger: Logger
    ) throws -> ProjectionStatus {
        let expected = projector.format
        let head = try database.query(
            "SELECT last_seq, projection_format FROM \(unescaped: schema).head WHERE id = 1")
        guard let row = head.first else {
            throw EventLogError(.corruptRecord, "the head row of schema \(schema) is missing")
        }
        let (lastSeq, storedText) = try row.decode((Int64, String?).self)
        if storedText == expected.storedText { return .current }
        let stored = storedText.flatMap(ProjectionFormat.init(storedText:))
        if let stored, stored.name == expected.name, stored.version > expected.version {
            throw EventLogError(
                .versionMismatch,
                "schema \(schema) holds projections in format \(stored), newer than this build's \(expected)")
        }
        if lastSeq > 0 {
            guard upgrade == .rebuildInPlace else { return .stale(stored: stored, expected: expected) }
            try rebuild(database, schema: schema, projector: projector, tables: tables, logger: logger)
        }
        try database.query(
            "UPDATE \(unescaped: schema).head SET projection_format = \(expected.storedText) WHERE id = 1")
        return .current
    }

    /// Empties the projector's tables and applies every record again, inside the opening transaction.
    private static func rebuild(
        _ database: BlockingPostgres, schema: String, projector: any Projector, tables: [Table], logger: Logger
    ) throws {
        let transaction = PostgresWriteTransaction(database: database, schema: schema)
        for table in tables { try transaction.removeAll(table) }
        try transaction.flush()
        var count = 0
        let reader = PostgresReadTransaction(database: database, schema: schema)
        var batch = PostgresWriteTransaction(database: database, schema: schema)
        try reader.forEach(from: 1) { record in
            try projector.replay(record, into: batch, tables: tables)
            count += 1
            if count % 10_000 == 0 {
                try batch.flush()
                batch = PostgresWriteTransaction(database: database, schema: schema)
            }
            return true
        }
        try projector.finishReplay(into: batch, tables: tables)
        try batch.flush()
        logger.info("eventlog.postgres.projections_rebuilt", metadata: ["eventlog.records": "\(count)"])
    }
}
