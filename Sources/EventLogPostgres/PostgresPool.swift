import Foundation
import Logging
import PostgresNIO

/// The read side's connections: each snapshot and one-shot read takes one for itself (a snapshot is a transaction
/// on it), so readers on several threads do not wait for each other, and a snapshot taken inside another gets a
/// connection of its own. No caller waits for another's connection; at most ``limit`` are kept idle.
final class PostgresPool: @unchecked Sendable {  // @unchecked: every mutable property is guarded by `lock`.
    let url: PostgresURL
    let options: BlockingPostgres.Options
    let logger: Logger
    let limit: Int
    private let lock = NSLock()
    private var idle: [BlockingPostgres] = []
    private var open = 0
    private var closed = false

    init(url: PostgresURL, options: BlockingPostgres.Options, logger: Logger, limit: Int = 4) {
        self.url = url
        self.options = options
        self.logger = logger
        self.limit = limit
    }

    /// Runs `body` with a connection of its own, blocking the calling thread.
    ///
    /// A connection found lost (the server restarted, or ended the session) is closed, and so are the idle ones,
    /// likely lost with it. When `mayRetry` then says nothing `body` did can matter (it failed on a pooled
    /// connection at its first statement, say), `body` runs once more on a new connection.
    func with<R>(mayRetry: () -> Bool = { true }, _ body: (BlockingPostgres) throws -> R) throws -> R {
        var retried = false
        while true {
            let database = try take()
            defer { give(database) }
            do {
                return try body(database)
            } catch let error as EventLogPostgresError where error.code == .unavailable || database.isClosed {
                database.close()
                discardIdle()
                guard !retried, mayRetry() else { throw error }
                retried = true
                logger.debug("eventlog.postgres.read_retry", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Closes the idle connections.
    private func discardIdle() {
        lock.lock()
        let connections = idle
        idle.removeAll()
        open -= connections.count
        lock.unlock()
        for database in connections { database.close() }
    }

    /// An idle connection, or a new one: a caller never waits for another's (a snapshot taken inside another on the
    /// same thread would wait for itself), so the number open follows the readers at work; ``limit`` bounds how
    /// many are kept idle.
    private func take() throws -> BlockingPostgres {
        lock.lock()
        while let database = idle.popLast() {
            if database.isClosed {
                open -= 1
                continue
            }
            lock.unlock()
            return database
        }
        if closed {
            lock.unlock()
            throw EventLogPostgresError(.unavailable, "the event log is closed")
        }
        open += 1
        lock.unlock()
        do {
            return try BlockingPostgres(url: url, options: options, logger: logger)
        } catch {
            lock.lock()
            open -= 1
            lock.unlock()
            throw error
        }
    }

    private func give(_ database: BlockingPostgres) {
        lock.lock()
        if closed || database.isClosed || idle.count >= limit {
            open -= 1
            lock.unlock()
            if !database.isClosed { database.close() }
        } else {
            idle.append(database)
            lock.unlock()
        }
    }

    func close() {
        lock.lock()
        closed = true
        lock.unlock()
        discardIdle()
    }
}
