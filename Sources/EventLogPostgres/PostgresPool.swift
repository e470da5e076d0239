import Foundation
import Logging
import PostgresNIO

/// The read side's connections: each snapshot and one-shot read takes one for itself (a snapshot is a transaction
/// on it), so readers on several threads do not wait for each other, and a snapshot taken inside another gets a
/// connection of its own. At most ``limit`` are open; a caller beyond that waits for one to come back.
final class PostgresPool: @unchecked Sendable {  // @unchecked: every mutable property is guarded by `condition`.
    let url: PostgresURL
    let options: BlockingPostgres.Options
    let logger: Logger
    let limit: Int
    private let condition = NSCondition()
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
        condition.lock()
        let connections = idle
        idle.removeAll()
        open -= connections.count
        condition.broadcast()
        condition.unlock()
        for database in connections { database.close() }
    }

    private func take() throws -> BlockingPostgres {
        condition.lock()
        while true {
            if closed {
                condition.unlock()
                throw EventLogPostgresError(.unavailable, "the event log is closed")
            }
            if let database = idle.popLast() {
                if database.isClosed {
                    open -= 1
                    continue
                }
                condition.unlock()
                return database
            }
            if open < limit {
                open += 1
                condition.unlock()
                do {
                    return try BlockingPostgres(url: url, options: options, logger: logger)
                } catch {
                    condition.lock()
                    open -= 1
                    condition.signal()
                    condition.unlock()
                    throw error
                }
            }
            condition.wait()
        }
    }

    private func give(_ database: BlockingPostgres) {
        condition.lock()
        if closed || database.isClosed {
            open -= 1
            condition.unlock()
            if !database.isClosed { database.close() }
        } else {
            idle.append(database)
            condition.unlock()
        }
        condition.lock()
        condition.signal()
        condition.unlock()
    }

    func close() {
        condition.lock()
        closed = true
        condition.unlock()
        discardIdle()
    }
}
