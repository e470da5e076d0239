import EventLog
import EventLogPostgres
import Foundation

/// Where the event log is stored (`EVENTLOG_BACKEND`): LMDB in `DATA_DIR` (the default, embedded, one host), or a
/// PostgreSQL database (`DATABASE_URL`, schema `EVENTLOG_SCHEMA`) that roles on several hosts share.
public enum EventLogLocation: Sendable, Equatable, CustomStringConvertible {
    case lmdb
    case postgres(PostgresURL, schema: String)

    /// Reads `EVENTLOG_BACKEND` (`lmdb` or `postgres`), `DATABASE_URL` and `EVENTLOG_SCHEMA` (default `switchboard`).
    static func read(_ env: EnvironmentReader) throws(SettingsError) -> EventLogLocation {
        let backend = (env.value("EVENTLOG_BACKEND") ?? "lmdb").lowercased()
        switch backend {
        case "lmdb":
            return .lmdb
        case "postgres", "postgresql":
            guard let text = env.value(PostgresURL.environmentKey) else {
                throw SettingsError(
                    variable: PostgresURL.environmentKey,
                    message: "EVENTLOG_BACKEND=postgres needs DATABASE_URL (postgres://user:password@host:5432/db)")
            }
            let url: PostgresURL
            do {
                url = try PostgresURL(text)
            } catch {
                // The error names what is wrong; the URL itself (and its password) is never repeated.
                throw SettingsError(variable: PostgresURL.environmentKey, message: "\(error)")
            }
            let schema = env.value("EVENTLOG_SCHEMA") ?? PostgresSchema.defaultName
            do {
                try PostgresSchema.validate(schema)
            } catch {
                throw SettingsError(variable: "EVENTLOG_SCHEMA", message: "\(error)")
            }
            return .postgres(url, schema: schema)
        default:
            throw SettingsError(variable: "EVENTLOG_BACKEND", message: "expected lmdb or postgres, got '\(backend)'")
        }
    }

    /// The engine's choice for ``EventLogConfiguration/backend``.
    public var backend: LogBackendChoice {
        switch self {
        case .lmdb: .lmdb
        case .postgres(let url, let schema): .postgres(url, schema: schema)
        }
    }

    /// For messages: `lmdb`, or the database without its password.
    public var description: String {
        switch self {
        case .lmdb: "lmdb"
        case .postgres(let url, let schema): "postgres \(url.redacted) schema \(schema)"
        }
    }
}

extension AgentSettings {
    /// The log's configuration for a process writing as `writer`: `DATA_DIR`, the durability and the backend.
    public func logConfiguration(writer: WriterIdentity) -> EventLogConfiguration {
        var configuration = EventLogConfiguration(directory: dataDirectory, writer: writer)
        configuration.durability = durability
        configuration.backend = eventLog.backend
        return configuration
    }

    /// Where the log is, for messages: `DATA_DIR` for LMDB, the database for PostgreSQL.
    public var logDescription: String {
        switch eventLog {
        case .lmdb: dataDirectory
        case .postgres: eventLog.description
        }
    }
}
