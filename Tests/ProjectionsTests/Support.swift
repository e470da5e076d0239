import EventLog
import EventLogPostgres
import SwitchboardEvents
import Foundation
import Logging
import Projections
@_exported import TestSupport

let quietLogger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

/// A Switchboard engine on a fresh log in `directory`. `clock` replaces the wall clock (the log clock still
/// never goes back), so tests move time forward explicitly instead of sleeping.
func openEngine(
    _ directory: String, worker: String = "tester", settings: EngineSettings = .defaults(),
    clock: TestClock? = nil, sessionKey: String? = nil
) throws -> Switchboard {
    var configuration = EventLogConfiguration(
        directory: directory, writer: WriterIdentity(role: "test", workerID: worker))
    if let clock { configuration.wallClock = { clock.now } }
    if let url = TestBackend.postgresURL {
        // One schema per directory, as one LMDB log per directory: a fresh directory is a fresh log, and opening
        // the same directory again opens the same log (the cluster is the test process's own).
        configuration.backend = .postgres(try PostgresURL(url), schema: TestBackend.schema(for: directory))
    }
    return try Switchboard(configuration, settings: settings, sessionKeyBase64: sessionKey, logger: quietLogger)
}

/// The storage engine `openEngine` uses in the current task: LMDB, or PostgreSQL inside ``onPostgres(_:)``.
enum TestBackend {
    @TaskLocal static var postgresURL: String?

    /// `t_` and the FNV-1a hash of `directory`.
    static func schema(for directory: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in directory.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return "t_" + String(hash, radix: 16)
    }
}

/// Runs `body` with every `openEngine` on the test cluster's PostgreSQL.
func onPostgres(_ body: () async throws -> Void) async throws {
    let url = try await PostgresCluster.shared().url()
    try await TestBackend.$postgresURL.withValue(url, operation: body)
}

/// Runs `body` with an engine on a fresh log in a temporary directory, then closes the engine and removes the
/// directory, whether `body` returned or threw.
func withEngine<R>(
    isolation: isolated (any Actor)? = #isolation, worker: String = "tester", settings: EngineSettings = .defaults(),
    clock: TestClock? = nil, _ body: (Switchboard) async throws -> R
) async throws -> R {
    let directory = TemporaryDirectory()
    defer { withExtendedLifetime(directory) {} }  // removed once the engine is closed
    let engine = try openEngine(directory.path, worker: worker, settings: settings, clock: clock)
    return try await engine.log.closeAfter { try await body(engine) }
}

/// A settable wall clock for deciders under test.
final class TestClock: @unchecked Sendable {  // @unchecked: `lock` guards `current`.
    private let lock = NSLock()
    private var current: LogTimestamp

    init(_ start: LogTimestamp = LogTimestamp(microseconds: 1_800_000_000_000_000)) { current = start }

    var now: LogTimestamp { lock.withLock { current } }

    func advance(_ duration: Duration) { lock.withLock { current = current.advanced(by: duration) } }
}
