import Logging
import PostgresNIO
import Synchronization

/// One dedicated PostgreSQL connection for code that blocks: the event log's writer thread, its opening thread.
///
/// Every query is guarded by a watchdog: when it has not finished after ``queryTimeout`` (or the timeout passed
/// to the call), the connection is closed and the call throws ``EventLogPostgresError/Code/timeout``. postgres-nio
/// sets no TCP keepalive, so without it a half-open socket would hang the caller for as long as the kernel keeps
/// the connection. A closed connection stays closed: make a new ``BlockingPostgres`` to go on.
///
/// The blocking calls (``init(configuration:options:eventLoopGroup:logger:)``, `query(_:timeout:)`,
/// `close()`) wait on an `EventLoopFuture`: call them from a thread that is neither an event loop's nor
/// Swift concurrency's. Async code uses ``connect(to:options:eventLoopGroup:logger:)`` and the async
/// `query(_:timeout:)`. Queries from several threads are run one after the other, in the order sent.
public final class BlockingPostgres: Sendable {
    /// Per-connection settings, sent as startup parameters (no extra round trip) or enforced by the client.
    public struct Options: Sendable {
        /// The session's `application_name`. When `nil`, the URL's, else `switchboard`.
        public var applicationName: String?
        /// The client's watchdog: a query that has not finished after this long closes the connection.
        public var queryTimeout: Duration = .seconds(30)
        /// The server's `statement_timeout` (it cancels the statement with SQLSTATE 57014); `nil` leaves the
        /// server's setting.
        public var statementTimeout: Duration? = .seconds(30)
        /// The server's `idle_in_transaction_session_timeout`: a client that stops in the middle of a transaction
        /// (SIGSTOP, a hung thread) loses its session, and so its locks, after this long; `nil` leaves the
        /// server's setting.
        public var idleInTransactionSessionTimeout: Duration? = .seconds(10)
        /// The server's TCP keepalive for this session: the server drops a client that has vanished. Ignored on a
        /// Unix socket. `nil` leaves the server's settings.
        public var tcpKeepalive: TCPKeepalive? = TCPKeepalive()

        /// The defaults above.
        public init() {}

        /// The server's `tcp_keepalives_idle`, `tcp_keepalives_interval` and `tcp_keepalives_count`.
        public struct TCPKeepalive: Sendable, Equatable {
            /// Silence before the first probe.
            public var idle: Duration
            /// Time between probes.
            public var interval: Duration
            /// Unanswered probes before the server drops the connection.
            public var count: Int

            /// Ten seconds idle, then a probe every five seconds, three times: a vanished client is dropped
            /// within about 25 seconds.
            public init(idle: Duration = .seconds(10), interval: Duration = .seconds(5), count: Int = 3) {
                self.idle = idle
                self.interval = interval
                self.count = count
            }
        }

        /// The startup parameters these options send, after the configuration's own.
        package func startupParameters(after existing: [(String, String)]) -> [(String, String)] {
            var parameters = existing
            func set(_ name: String, _ value: String) {
                parameters.removeAll { $0.0 == name }
                parameters.append((name, value))
            }
            if let applicationName {
                set("application_name", applicationName)
            } else if !parameters.contains(where: { $0.0 == "application_name" }) {
                set("application_name", "switchboard")
            }
            if let statementTimeout { set("statement_timeout", "\(Self.milliseconds(statementTimeout))") }
            if let idleInTransactionSessionTimeout {
                set("idle_in_transaction_session_timeout", "\(Self.milliseconds(idleInTransactionSessionTimeout))")
            }
            if let tcpKeepalive {
                set("tcp_keepalives_idle", "\(max(1, tcpKeepalive.idle.components.seconds))")
                set("tcp_keepalives_interval", "\(max(1, tcpKeepalive.interval.components.seconds))")
                set("tcp_keepalives_count", "\(max(1, tcpKeepalive.count))")
            }
            return parameters
        }

        /// Whole milliseconds, at least 1 (0 would mean "no timeout" to the server).
        private static func milliseconds(_ duration: Duration) -> Int64 {
            let (seconds, attoseconds) = duration.components
            return max(1, seconds * 1_000 + attoseconds / 1_000_000_000_000_000)
        }
    }

    /// The connection. Its async API (`listen`, `query`) may be used directly; such uses have no watchdog.
    public let connection: PostgresConnection
    /// The watchdog's default limit for one query.
    public let queryTimeout: Duration
    private let logger: Logger

    private static let nextID = Atomic<Int>(1)

    /// Connects and logs in, blocking the calling thread.
    ///
    /// The whole start (TCP or socket connect, TLS, authentication, startup parameters) is bounded by the
    /// configuration's `options.connectTimeout`.
    ///
    /// - Throws: ``EventLogPostgresError``: ``EventLogPostgresError/Code/unavailable`` when the server cannot be
    ///   reached, ``EventLogPostgresError/Code/query`` when it refuses the login (the SQLSTATE says why),
    ///   ``EventLogPostgresError/Code/timeout`` when the start takes too long.
    @available(*, noasync, message: "blocks the thread; use BlockingPostgres.connect(to:) from async code")
    public convenience init(
        configuration: PostgresConnection.Configuration, options: Options = Options(),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger
    ) throws {
        let future = Self.start(configuration, options: options, on: eventLoopGroup.next(), logger: logger)
        self.init(connection: try future.wait(), options: options, logger: logger)
    }

    /// Connects to `url`, blocking the calling thread; see ``init(configuration:options:eventLoopGroup:logger:)``.
    @available(*, noasync, message: "blocks the thread; use BlockingPostgres.connect(to:) from async code")
    public convenience init(
        url: PostgresURL, options: Options = Options(),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger
    ) throws {
        try self.init(
            configuration: try url.makeConfiguration(), options: options, eventLoopGroup: eventLoopGroup,
            logger: logger)
    }

    /// Connects without blocking a thread; see ``init(configuration:options:eventLoopGroup:logger:)``.
    public static func connect(
        to url: PostgresURL, options: Options = Options(),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger
    ) async throws -> BlockingPostgres {
        let configuration = try url.makeConfiguration()
        let future = start(configuration, options: options, on: eventLoopGroup.next(), logger: logger)
        return BlockingPostgres(connection: try await future.get(), options: options, logger: logger)
    }

    private init(connection: PostgresConnection, options: Options, logger: Logger) {
        self.connection = connection
        self.queryTimeout = options.queryTimeout
        self.logger = logger
    }

    deinit { connection.closeSoon() }

    /// Whether the connection is closed (by `close()`, the watchdog, the server or the network).
    public var isClosed: Bool { connection.isClosed }

    /// Runs `query` and returns all its rows, blocking the calling thread.
    ///
    /// - Parameter timeout: the watchdog's limit for this query; ``queryTimeout`` when `nil`.
    /// - Throws: ``EventLogPostgresError``: ``EventLogPostgresError/Code/timeout`` (the connection is then
    ///   closed), ``EventLogPostgresError/Code/unavailable`` (the connection is lost or closed),
    ///   ``EventLogPostgresError/Code/query`` (the server refused the statement; see `sqlState`).
    @discardableResult
    @available(*, noasync, message: "blocks the thread; use the async query(_:timeout:) from async code")
    public func query(_ query: PostgresQuery, timeout: Duration? = nil) throws -> [PostgresRow] {
        try run(query, timeout: timeout).wait()
    }

    /// Runs `query` and returns all its rows without blocking a thread (tails, the listener). The same watchdog
    /// and errors as the blocking `query(_:timeout:)`.
    @discardableResult
    public func query(_ query: PostgresQuery, timeout: Duration? = nil) async throws -> [PostgresRow] {
        try await run(query, timeout: timeout).get()
    }

    /// Closes the connection, blocking until it is closed. Idempotent.
    @available(*, noasync, message: "blocks the thread; use the async close() from async code")
    public func close() {
        try? connection.close().wait()
    }

    /// Closes the connection. Idempotent.
    public func close() async {
        try? await connection.close().get()
    }

    // MARK: - Watchdogs

    /// The query with its watchdog. On expiry the watchdog closes the connection (which fails the query and any
    /// queued after it) and fails the caller's future itself: postgres-nio leaves a query sent on a connection
    /// that has just closed pending forever, and the caller must not wait for it.
    private func run(_ query: PostgresQuery, timeout: Duration?) -> EventLoopFuture<[PostgresRow]> {
        let connection = self.connection
        // Abbreviated only for an error: it costs more than a short statement's round trip.
        let sql = query.sql
        guard !connection.isClosed else {
            return connection.eventLoop.makeFailedFuture(
                EventLogPostgresError(.unavailable, "the connection is closed: \(Self.abbreviate(sql))"))
        }
        let limit = timeout ?? queryTimeout
        return Self.bounded(
            connection.query(query, logger: logger).map { $0.rows }, within: TimeAmount(limit),
            on: connection.eventLoop,
            expired: {
                connection.closeSoon()
                return EventLogPostgresError(
                    .timeout,
                    "query did not finish within \(limit), the connection was closed: \(Self.abbreviate(sql))")
            },
            late: { _ in },
            failed: { EventLogPostgresError.classify($0, context: "query failed: \(Self.abbreviate(sql))") })
    }

    /// Connects and logs in, bounded as a whole by the configuration's connect timeout. A connection that
    /// arrives after the deadline is closed.
    private static func start(
        _ configuration: PostgresConnection.Configuration, options: Options, on eventLoop: any EventLoop,
        logger: Logger
    ) -> EventLoopFuture<PostgresConnection> {
        var configuration = configuration
        configuration.options.additionalStartupParameters = options.startupParameters(
            after: configuration.options.additionalStartupParameters)
        let target = configuration.unixSocketPath ?? "\(configuration.host ?? "?"):\(configuration.port ?? 0)"
        let limit = configuration.options.connectTimeout
        let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        return bounded(
            PostgresConnection.connect(on: eventLoop, configuration: configuration, id: id, logger: logger),
            within: limit, on: eventLoop,
            expired: {
                EventLogPostgresError(.timeout, "connecting to \(target) did not finish within \(limit.seconds) s")
            },
            late: { $0.closeSoon() },
            failed: { EventLogPostgresError.classify($0, context: "connecting to \(target) failed") })
    }

    /// `future`, or the error of `expired` when it has not completed `within` the limit: whichever comes first
    /// completes the result. A value that arrives later goes to `late`; errors are mapped by `failed`.
    private static func bounded<Value: Sendable>(
        _ future: EventLoopFuture<Value>, within limit: TimeAmount, on eventLoop: any EventLoop,
        expired: @escaping @Sendable () -> EventLogPostgresError, late: @escaping @Sendable (Value) -> Void,
        failed: @escaping @Sendable (any Error) -> EventLogPostgresError
    ) -> EventLoopFuture<Value> {
        let promise = eventLoop.makePromise(of: Value.self)
        let settled = Flag()
        let deadline = eventLoop.scheduleTask(in: limit) {
            guard settled.setIfUnset() else { return }
            promise.fail(expired())
        }
        future.whenComplete { result in
            deadline.cancel()
            guard settled.setIfUnset() else {
                if case .success(let value) = result { late(value) }
                return
            }
            switch result {
            case .success(let value): promise.succeed(value)
            case .failure(let error): promise.fail(failed(error))
            }
        }
        return promise.futureResult
    }

    private static func abbreviate(_ sql: String) -> String {
        let line = sql.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        return line.count <= 120 ? line : String(line.prefix(117)) + "..."
    }
}

/// A flag set once, readable from any thread.
private final class Flag: Sendable {
    private let value = Atomic<Bool>(false)

    /// Sets the flag; `true` when this call set it.
    func setIfUnset() -> Bool {
        value.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
    }
}

extension PostgresConnection {
    /// Starts closing the connection without waiting (the future-returning `close()`, named apart from the async
    /// one).
    fileprivate func closeSoon() {
        let _: EventLoopFuture<Void> = close()
    }
}

extension TimeAmount {
    /// Whole seconds, for messages.
    fileprivate var seconds: Int64 { nanoseconds / 1_000_000_000 }
}
