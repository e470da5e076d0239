import EventLog
import Foundation
import Logging
import Synchronization
import Testing
@_exported import TestSupport

let quietLogger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

func openLog(
    _ directory: String, worker: String = "tester", tables: [String] = [],
    configure: (inout EventLogConfiguration) -> Void = { _ in }
) throws -> EventLog {
    var configuration = EventLogConfiguration(
        directory: directory, writer: WriterIdentity(role: "test", workerID: worker))
    configuration.tables = tables
    configure(&configuration)
    return try EventLog(configuration, logger: quietLogger)
}

/// Runs `body` with a log opened in a fresh temporary directory, then closes the log and removes the
/// directory, whether `body` returned or threw.
func withLog<R>(
    isolation: isolated (any Actor)? = #isolation, worker: String = "tester", tables: [String] = [],
    _ configure: (inout EventLogConfiguration) -> Void = { _ in }, _ body: (EventLog) async throws -> R
) async throws -> R {
    let directory = TemporaryDirectory()
    defer { withExtendedLifetime(directory) {} }  // removed once the log is closed
    let log = try openLog(directory.path, worker: worker, tables: tables, configure: configure)
    return try await log.closeAfter { try await body(log) }
}

func testEvent(_ index: Int, writer: String = "tester") -> PendingEvent {
    PendingEvent(type: "test.appended", payload: Array("{\"i\":\(index),\"writer\":\"\(writer)\"}".utf8))
}

/// The payload fields the helper and `testEvent` write.
struct TestPayload: Decodable, Equatable {
    var i: Int
    var writer: String
}

func testPayload(_ record: Record) throws -> TestPayload {
    try JSONDecoder().decode(TestPayload.self, from: Data(record.payload))
}

/// A spawned `switchboard-test-helper` process.
typealias HelperProcess = SpawnedProcess

extension SpawnedProcess {
    convenience init(_ arguments: [String]) throws {
        try self.init("switchboard-test-helper", arguments)
    }
}

/// Runs the helper to completion.
func runHelper(_ arguments: [String]) async throws -> (status: Int32, lines: [String]) {
    try await SpawnedProcess.run("switchboard-test-helper", arguments)
}

/// `withDeadline` gave up: the body did not finish within its time limit.
struct DeadlineExceeded: Error, CustomStringConvertible {
    var what: String
    var limit: Duration
    var description: String { "\(what) did not finish within \(limit)" }
}

/// Runs `body` and returns its result, or throws ``DeadlineExceeded`` once `limit` has passed, so a hang fails
/// the test instead of stalling it. A body still running at the deadline is cancelled and left behind (an
/// await that never resumes cannot be joined).
func withDeadline<R: Sendable>(
    _ limit: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> R
) async throws -> R {
    let first = FirstOutcome<R>()
    return try await withCheckedThrowingContinuation { continuation in
        first.arm(continuation)
        let work = Task {
            do {
                first.finish(.success(try await body()))
            } catch {
                first.finish(.failure(error))
            }
        }
        first.timer = Task {
            try? await Task.sleep(for: limit)
            if first.finish(.failure(DeadlineExceeded(what: what, limit: limit))) { work.cancel() }
        }
    }
}

/// The continuation of ``withDeadline(_:_:_:)``, resumed by whichever of the body and the deadline ends first.
private final class FirstOutcome<R: Sendable>: Sendable {
    private let continuation = Mutex<CheckedContinuation<R, any Error>?>(nil)
    private let timerTask = Mutex<Task<Void, Never>?>(nil)

    var timer: Task<Void, Never>? {
        get { timerTask.withLock { $0 } }
        set { timerTask.withLock { $0 = newValue } }
    }

    func arm(_ continuation: CheckedContinuation<R, any Error>) { self.continuation.withLock { $0 = continuation } }

    /// Resumes the caller unless it was resumed already; returns whether this call did.
    @discardableResult
    func finish(_ result: Result<R, any Error>) -> Bool {
        guard let continuation = continuation.withLock({ $0.take() }) else { return false }
        timer?.cancel()
        continuation.resume(with: result)
        return true
    }
}
