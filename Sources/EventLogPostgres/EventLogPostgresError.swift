import PostgresNIO

/// An error raised by the PostgreSQL backend: a stable ``Code``, a message for people, the server's SQLSTATE when
/// the server reported it, and the underlying error.
///
/// Equality compares the code only, so callers can write `error.code == .timeout`. The message never contains a
/// password.
public struct EventLogPostgresError: Error, Sendable, CustomStringConvertible, Equatable {
    /// A stable classification of an ``EventLogPostgresError``. New codes may be added; switch with a default.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case invalidURL, invalidArgument, unavailable, query, timeout, tls, inDoubt
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// `DATABASE_URL` (or another connection URL) is malformed or names something unsupported.
        public static let invalidURL = Code(.invalidURL)
        /// A caller passed a value the backend refuses (a schema name that is not a plain identifier...).
        public static let invalidArgument = Code(.invalidArgument)
        /// The server cannot be reached, or the connection was lost or closed: retrying on a new connection may
        /// succeed.
        public static let unavailable = Code(.unavailable)
        /// The server refused a statement or the connection's start (the SQLSTATE says why).
        public static let query = Code(.query)
        /// A query did not finish in time: the client's watchdog closed the connection, or the server cancelled
        /// the statement (`statement_timeout`, SQLSTATE 57014).
        public static let timeout = Code(.timeout)
        /// The TLS settings could not be turned into a TLS context.
        public static let tls = Code(.tls)
        /// A COMMIT was sent, its reply lost, and the server stayed out of reach for so long that whether it applied
        /// could not be learnt: the writes may or may not be in the log (the message names the group's id, which
        /// `command_groups` holds when it committed). Never retry blindly after this one.
        public static let inDoubt = Code(.inDoubt)

        public var description: String { base.rawValue }
    }

    /// The classification of this error.
    public var code: Code
    /// What went wrong, for people.
    public var message: String
    /// The five-character SQLSTATE the server reported (`23505`, `57P01`...), if it reported one.
    public var sqlState: String?
    /// The underlying error, if any.
    public var cause: (any Error & Sendable)?

    /// Creates an error.
    public init(_ code: Code, _ message: String, sqlState: String? = nil, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
        self.cause = cause
    }

    public var description: String {
        var text = "EventLogPostgresError(\(code)): \(message)"
        if let sqlState { text += " [SQLSTATE \(sqlState)]" }
        return text
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
}

extension EventLogPostgresError {
    /// Classifies an error from postgres-nio or NIO: lost connections are ``Code/unavailable``, the server's own
    /// refusals ``Code/query`` (or ``Code/unavailable`` for the SQLSTATEs of a server shutting down or refusing
    /// connections, ``Code/timeout`` for a cancelled statement).
    ///
    /// - Parameter context: what was being done, first in the message ("connecting to …", "query").
    package static func classify(_ error: any Error, context: String) -> EventLogPostgresError {
        if let error = error as? EventLogPostgresError { return error }
        guard let psql = error as? PSQLError else {
            // NIO's channel and socket errors (connection refused, reset, no such socket file).
            return EventLogPostgresError(.unavailable, "\(context): \(error)", cause: error)
        }
        if psql.code == .server, let info = psql.serverInfo {
            let state = info[.sqlState]
            let text = [info[.severity], info[.message], info[.detail].map { "(\($0))" }]
                .compactMap { $0 }.joined(separator: " ")
            return EventLogPostgresError(classify(sqlState: state), "\(context): \(text)", sqlState: state, cause: psql)
        }
        let underlying = psql.underlying.map { ": \($0)" } ?? ""
        let code: Code =
            switch psql.code {
            case .serverClosedConnection, .clientClosedConnection, .connectionError, .uncleanShutdown,
                .sslUnsupported, .failedToAddSSLHandler, .poolClosed:
                .unavailable
            default: .query
            }
        return EventLogPostgresError(code, "\(context): \(psql.code)\(underlying)", cause: psql)
    }

    /// The code for a server error's SQLSTATE: class 08 (connection exception), 57P01-57P03 (shutting down,
    /// cannot connect now), 25P03 and 57P05 (the session ended for idling in a transaction or idling) and 25006
    /// (read-only: a demoted primary) are ``Code/unavailable``; 57014 (statement cancelled) is ``Code/timeout``;
    /// the rest ``Code/query``.
    package static func classify(sqlState: String?) -> Code {
        guard let sqlState else { return .query }
        if sqlState.hasPrefix("08") || ["57P01", "57P02", "57P03", "57P05", "25P03", "25006"].contains(sqlState) {
            return .unavailable
        }
        if sqlState == "57014" { return .timeout }
        return .query
    }
}
