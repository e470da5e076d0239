import PostgresNIO

/// The SQL schema of one event log on PostgreSQL (design §2c): the head counter row, the events, the registry of
/// projection tables, one key-value table for all of them, meta, checkpoints, the command groups' ids, and the
/// `begin_group()` function the writer starts each group with (§2d).
///
/// Each log lives in its own PostgreSQL schema (``defaultName``; the tests use one per test), so several logs can
/// share a database. Names are plain lower-case identifiers, so they are written into SQL unquoted.
public enum PostgresSchema {
    /// The schema used when none is configured.
    public static let defaultName = "switchboard"
    /// The version of this DDL, recorded in meta `pg.schema` when the schema is created.
    public static let version = 1

    /// Refuses a name that is not a plain identifier: 1 to 63 characters of `a-z`, `0-9` and `_`, not starting
    /// with a digit nor with `pg_` (reserved by PostgreSQL).
    ///
    /// - Throws: ``EventLogPostgresError/Code/invalidArgument``.
    public static func validate(_ name: String) throws {
        let bytes = Array(name.utf8)
        let plain = bytes.allSatisfy { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x5F }
        guard (1...63).contains(bytes.count), plain, !(0x30...0x39).contains(bytes[0]), !name.hasPrefix("pg_")
        else {
            throw EventLogPostgresError(
                .invalidArgument,
                "schema name '\(name)' must be 1 to 63 characters of a-z, 0-9 and _, not starting with a digit or pg_"
            )
        }
    }

    /// The SQL expression of the log's writer lock key: the `bigint` that `begin_group()` and ``install(on:schema:)``
    /// pass to `pg_advisory_xact_lock`. One key per schema, so logs in different schemas do not exclude each other.
    public static func lockKey(schema: String) -> String {
        "hashtextextended('switchboard.eventlog:\(schema)', 0)"
    }

    /// The LISTEN/NOTIFY channel on which the writer announces commits of the log in `schema`.
    public static func notificationChannel(schema: String) -> String { "eventlog_\(schema)" }

    /// Creates the schema, its tables, the head row and `begin_group()` when missing, in one transaction under the
    /// log's writer lock: concurrent installs and running writers wait for each other, and installing an existing
    /// schema changes nothing but the function's definition (replaced by the same text).
    ///
    /// Blocks the calling thread (see ``BlockingPostgres``).
    ///
    /// - Throws: ``EventLogPostgresError``: ``EventLogPostgresError/Code/invalidArgument`` for a bad name, else
    ///   what the queries threw. The transaction is rolled back when the connection is still open.
    @available(*, noasync, message: "blocks the thread")
    public static func install(on database: BlockingPostgres, schema: String = defaultName) throws {
        try validate(schema)
        try database.query("BEGIN")
        do {
            try database.query(PostgresQuery(unsafeSQL: "SELECT pg_advisory_xact_lock(\(lockKey(schema: schema)))"))
            for statement in statements(schema: schema) {
                try database.query(PostgresQuery(unsafeSQL: statement))
            }
            try database.query("COMMIT")
        } catch {
            if !database.isClosed { _ = try? database.query("ROLLBACK") }
            throw error
        }
    }

    /// The DDL, in order, each statement idempotent. `schema` must be valid (``validate(_:)``).
    package static func statements(schema s: String) -> [String] {
        [
            "CREATE SCHEMA IF NOT EXISTS \(s)",
            """
            CREATE TABLE IF NOT EXISTS \(s).head (
                id smallint PRIMARY KEY CHECK (id = 1),
                last_seq bigint NOT NULL DEFAULT 0,
                last_time bigint NOT NULL DEFAULT -9223372036854775808,
                generation bigint NOT NULL DEFAULT 0,
                table_gens bigint[] NOT NULL DEFAULT '{}',
                projection_format text)
            """,
            "INSERT INTO \(s).head (id) VALUES (1) ON CONFLICT (id) DO NOTHING",
            """
            CREATE TABLE IF NOT EXISTS \(s).events (
                seq bigint PRIMARY KEY,
                ts bigint NOT NULL,
                type text NOT NULL,
                schema_version integer NOT NULL,
                writer_role text NOT NULL,
                writer_worker text NOT NULL,
                writer_instance uuid NOT NULL,
                flags smallint NOT NULL,
                correlation_id text,
                causation_seq bigint,
                payload_encoding smallint NOT NULL,
                payload bytea NOT NULL,
                crc integer NOT NULL)
            """,
            "CREATE TABLE IF NOT EXISTS \(s).tables (id smallint PRIMARY KEY, name text UNIQUE NOT NULL)",
            """
            CREATE TABLE IF NOT EXISTS \(s).kv (
                tbl smallint NOT NULL,
                k bytea NOT NULL,
                v bytea NOT NULL,
                PRIMARY KEY (tbl, k)) WITH (fillfactor = 85)
            """,
            "CREATE TABLE IF NOT EXISTS \(s).meta (k text PRIMARY KEY, v bytea NOT NULL)",
            "CREATE TABLE IF NOT EXISTS \(s).checkpoints (name text PRIMARY KEY, seq bigint NOT NULL)",
            """
            CREATE TABLE IF NOT EXISTS \(s).command_groups (
                id uuid PRIMARY KEY,
                first_seq bigint,
                last_seq bigint,
                generation bigint NOT NULL,
                committed_at bigint NOT NULL,
                writer text NOT NULL)
            """,
            "CREATE INDEX IF NOT EXISTS command_groups_committed_at ON \(s).command_groups (committed_at)",
            """
            INSERT INTO \(s).meta (k, v) VALUES ('pg.schema', convert_to('\(version)', 'UTF8'))
            ON CONFLICT (k) DO NOTHING
            """,
            // VOLATILE: in READ COMMITTED each statement of the function takes a new snapshot, so the head row is
            // read after the lock is granted, and shows the previous holder's commit.
            """
            CREATE OR REPLACE FUNCTION \(s).begin_group()
            RETURNS TABLE (
                last_seq bigint, last_time bigint, generation bigint, table_gens bigint[], projection_format text)
            LANGUAGE plpgsql VOLATILE AS $function$
            BEGIN
                PERFORM pg_advisory_xact_lock(\(lockKey(schema: s)));
                RETURN QUERY
                    SELECT h.last_seq, h.last_time, h.generation, h.table_gens, h.projection_format
                    FROM \(s).head AS h WHERE h.id = 1;
            END
            $function$
            """,
        ]
    }
}
