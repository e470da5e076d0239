import EventLog
import EventLogPostgres
import Foundation
import Logging
import TestSupport
import Testing

/// The engines the conformance suite runs on.
enum LogBackendKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case lmdb
    case postgres

    var testDescription: String { rawValue }
}

/// Runs `body` with a log on `backend` (LMDB in a temporary directory; PostgreSQL in a fresh schema of the test
/// cluster) and an opener of further logs on the same storage — other "processes" (PostgreSQL only: LMDB allows
/// one per process, and its multi-process tests spawn helpers). Everything is closed and removed afterwards.
func withBackendLog<R>(
    _ backend: LogBackendKind, worker: String = "tester", tables: [String] = [],
    configure: @escaping (inout EventLogConfiguration) -> Void = { _ in },
    _ body: (EventLog, _ another: (String) throws -> EventLog) async throws -> R
) async throws -> R {
    let directory = TemporaryDirectory()
    defer { withExtendedLifetime(directory) {} }
    func configuration(_ worker: String, _ choice: LogBackendChoice) -> EventLogConfiguration {
        var configuration = EventLogConfiguration(
            directory: directory.path, writer: WriterIdentity(role: "test", workerID: worker))
        configuration.tables = tables
        configuration.backend = choice
        configure(&configuration)
        return configuration
    }
    switch backend {
    case .lmdb:
        let log = try EventLog(configuration(worker, .lmdb), logger: quietLogger)
        return try await log.closeAfter {
            try await body(log) { _ in throw PostgresClusterError("a second LMDB log in one process") }
        }
    case .postgres:
        return try await PostgresCluster.withPostgres { url, schema in
            let choice = LogBackendChoice.postgres(try PostgresURL(url), schema: schema)
            let log = try EventLog(configuration(worker, choice), logger: quietLogger)
            var others: [EventLog] = []
            let result: Result<R, any Error>
            do {
                result = .success(
                    try await log.closeAfter {
                        try await body(log) { worker in
                            let other = try EventLog(configuration(worker, choice), logger: quietLogger)
                            others.append(other)
                            return other
                        }
                    })
            } catch {
                result = .failure(error)
            }
            // Awaited, not waited for on a semaphore: two tests blocking the pool's two threads on closes that
            // need a pool thread to run would never wake.
            for other in others { await other.close() }
            return try result.get()
        }
    }
}
