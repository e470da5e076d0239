import EventLog
import EventLogPostgres
import Foundation
import Logging
import Synchronization
import TestSupport

/// Counts the messages a logger is given (notice and above), so a test can tell which recovery path the backend
/// took (`eventlog.postgres.commit_confirmed`...).
final class MessageCounter: Sendable {
    private let counts = Mutex<[String: Int]>([:])

    /// A logger that counts into this counter.
    var logger: Logger {
        Logger(label: "test.postgres.failures") { _ in Handler(counter: self) }
    }

    /// How many times `message` was logged.
    func count(_ message: String) -> Int { counts.withLock { $0[message, default: 0] } }

    /// Every message and its count, for reports.
    var all: [String: Int] { counts.withLock { $0 } }

    fileprivate func record(_ message: String) { counts.withLock { $0[message, default: 0] += 1 } }

    private struct Handler: LogHandler {
        let counter: MessageCounter
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .notice

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) { counter.record(event.message.description) }
    }
}

/// Opens a log on the PostgreSQL database at `url`, in `schema`, with the given recovery settings.
func openPostgresLog(
    url: String, schema: String, directory: TemporaryDirectory, worker: String = "tester",
    options: BlockingPostgres.Options = .init(), recovery: PostgresLogBackend.Recovery = .init(),
    logger: Logger = quietLogger
) throws -> EventLog {
    var configuration = EventLogConfiguration(
        directory: directory.path, writer: WriterIdentity(role: "test", workerID: worker))
    configuration.tables = ["kv"]
    configuration.backend = .postgres(try PostgresURL(url), schema: schema, options: options, recovery: recovery)
    return try EventLog(configuration, logger: logger)
}

/// An event whose payload is `text`.
func event(_ text: String) -> PendingEvent {
    PendingEvent(type: "test.appended", payload: Array(text.utf8))
}

/// Adds one to the counter under `key` in `table` and appends `text`: a decision that would show a lost update
/// or one applied twice.
func incrementAndAppend(_ table: Table, _ text: String) -> @Sendable (inout WriteContext) throws -> Void {
    { context in
        let key = Array("counter".utf8)
        let current = try context.get(table, key).map { Int(String(decoding: $0, as: UTF8.self))! } ?? 0
        try context.put(table, key, Array(String(current + 1).utf8))
        _ = try context.append(event(text))
    }
}

/// The counter `incrementAndAppend` keeps.
func counter(_ log: EventLog) throws -> Int {
    let table = log.table("kv")
    let value = try log.withSnapshot { try $0.get(table, Array("counter".utf8)) }
    return value.map { Int(String(decoding: $0, as: UTF8.self))! } ?? 0
}

/// Waits until `condition` holds, checking every few milliseconds; throws after `timeout`.
func waitUntil(
    _ what: String, timeout: Duration = .seconds(20), _ condition: @Sendable () throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while try !condition() {
        guard ContinuousClock.now < deadline else { throw PostgresClusterError("timed out waiting until \(what)") }
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// A value shared between tasks, behind a lock.
final class Shared<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) { mutex = Mutex(value) }

    func withLock<R: Sendable>(_ body: (inout Value) throws -> R) rethrows -> R {
        try mutex.withLock { value in try body(&value) }
    }

    var value: Value { mutex.withLock { $0 } }
}
