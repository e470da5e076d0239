import EventLog
import Logging

/// The PostgreSQL backend of the event log (`EVENTLOG_BACKEND=postgres`, `DATABASE_URL`): choose it with
/// `configuration.backend = .postgres(url)`. The log lives in one schema of the database (``PostgresSchema``),
/// so several logs can share a database.
public struct PostgresLogBackend: LogBackendFactory {
    public var url: PostgresURL
    public var schema: String
    public var options: BlockingPostgres.Options
    public var recovery: Recovery

    public init(
        url: PostgresURL, schema: String = PostgresSchema.defaultName, options: BlockingPostgres.Options = .init(),
        recovery: Recovery = .init()
    ) {
        self.url = url
        self.schema = schema
        self.options = options
        self.recovery = recovery
    }

    /// How the writer rides over a lost connection or server (docs/architecture.md, "The log on PostgreSQL:
    /// failures").
    public struct Recovery: Sendable {
        /// How long a group that lost its connection before it committed keeps reconnecting and running again
        /// before its callers get ``EventLogPostgresError/Code/unavailable`` (nothing of it written). Once a
        /// group has given up, the next ones try once each until a connection succeeds.
        public var reconnectTimeout: Duration = .seconds(10)
        /// After a lost COMMIT reply, how long the old session may go on holding the writer lock (finishing its
        /// COMMIT) before the writer terminates it.
        public var inDoubtGrace: Duration = .seconds(2)
        /// After a lost COMMIT reply, how long the writer keeps trying to learn whether it applied before its
        /// callers get ``EventLogPostgresError/Code/inDoubt``.
        public var inDoubtTimeout: Duration = .seconds(60)
        /// Tests: the watchdog's limit for COMMIT alone (`nil`: the connection's `queryTimeout`), to lose a
        /// COMMIT's reply on purpose.
        package var commitTimeout: Duration?

        /// The defaults above.
        public init() {}
    }

    package func open(_ configuration: EventLogConfiguration, logger: Logger) throws -> any LogBackend {
        try PostgresSchema.validate(schema)
        return try PostgresLog(
            configuration, url: url, schema: schema, options: options, recovery: recovery, logger: logger)
    }

    public var description: String { "postgres \(url.redacted) schema \(schema)" }
}

extension LogBackendChoice {
    /// The log in `schema` of the PostgreSQL database at `url`.
    public static func postgres(
        _ url: PostgresURL, schema: String = PostgresSchema.defaultName, options: BlockingPostgres.Options = .init(),
        recovery: PostgresLogBackend.Recovery = .init()
    ) -> LogBackendChoice {
        .external(PostgresLogBackend(url: url, schema: schema, options: options, recovery: recovery))
    }
}
