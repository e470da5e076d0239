import EventLog
import Logging

/// The PostgreSQL backend of the event log (`EVENTLOG_BACKEND=postgres`, `DATABASE_URL`): choose it with
/// `configuration.backend = .postgres(url)`. The log lives in one schema of the database (``PostgresSchema``),
/// so several logs can share a database.
public struct PostgresLogBackend: LogBackendFactory {
    public var url: PostgresURL
    public var schema: String
    public var options: BlockingPostgres.Options

    public init(
        url: PostgresURL, schema: String = PostgresSchema.defaultName, options: BlockingPostgres.Options = .init()
    ) {
        self.url = url
        self.schema = schema
        self.options = options
    }

    package func open(_ configuration: EventLogConfiguration, logger: Logger) throws -> any LogBackend {
        try PostgresSchema.validate(schema)
        return try PostgresLog(configuration, url: url, schema: schema, options: options, logger: logger)
    }

    public var description: String { "postgres \(url.redacted) schema \(schema)" }
}

extension LogBackendChoice {
    /// The log in `schema` of the PostgreSQL database at `url`.
    public static func postgres(
        _ url: PostgresURL, schema: String = PostgresSchema.defaultName, options: BlockingPostgres.Options = .init()
    ) -> LogBackendChoice {
        .external(PostgresLogBackend(url: url, schema: schema, options: options))
    }
}
