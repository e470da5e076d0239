import CLMDB
import Foundation
import Logging

/// How commits reach the disk.
public enum Durability: String, Sendable, CaseIterable, Codable {
    /// Every commit is fully synced (data and meta page) before `append` returns. The default.
    case durable
    /// `MDB_NOMETASYNC`: data pages are synced, the meta page is not. The log stays consistent, but an
    /// operating-system crash or power loss may undo the last committed transaction (one group commit).
    /// A process crash loses nothing.
    case relaxed
    /// `MDB_NOSYNC`: never synced; the operating system writes pages back when it likes. Only for throwaway
    /// environments that are rebuilt when in doubt (a rebuild's scratch copy): an operating-system crash or
    /// power loss may lose or corrupt the whole environment. A process crash loses nothing.
    case unsynced
}

/// How to open an ``EventLog``.
public struct EventLogConfiguration: Sendable {
    /// The directory holding the LMDB environment (`data.mdb`, `lock.mdb`) and the `doorbell` file.
    public var directory: String
    /// The identity stamped on every record this process appends.
    public var writer: WriterIdentity
    /// Commit durability; ``Durability/durable`` by default.
    public var durability: Durability = .durable
    /// The map size to start with, in bytes. The map grows (doubling) when full.
    public var initialMapSize: Int = 256 << 20
    /// The largest the map may grow to; beyond it appends fail with ``EventLogError/Code/mapFull``.
    public var maxMapSize: Int = 1 << 40
    /// LMDB reader slots (one per concurrent read transaction across all processes).
    public var maxReaders: UInt32 = 126
    /// Extra named tables (LMDB sub-databases) kept beside the log, e.g. projection state.
    public var tables: [String] = []
    /// The most events one group commit may carry.
    public var maxBatchEvents: Int = 8192
    /// The longest the writer waits, after a group of several commands, for the callers it resumed to queue
    /// their next commands so they share one sync. A lone sequential appender never waits. `.zero` disables.
    public var groupCommitWindow: Duration = .microseconds(200)
    /// How often tailing readers check for commits when no doorbell rang (fallback for a crashed writer).
    public var pollInterval: Duration = .milliseconds(100)
    /// Derives state from every appended record inside its write transaction (see ``Projector``). Its tables
    /// are opened with the log.
    public var projector: (any Projector)?
    /// What opening does when the projection tables are in an older format than the projector's: rebuild them
    /// in place (the default, for processes that write) or leave them and report it in
    /// ``EventLog/projections`` (for read-only tools).
    public var projectionUpgrade = ProjectionUpgrade.rebuildInPlace
    /// Whether opening creates the directory and an empty log when none exists. Read-only tools set it to
    /// `false` and get ``EventLogError/Code/notFound`` instead.
    public var createIfMissing = true
    /// The wall clock the writer reads before clamping it to the last record's time. Replace it only to
    /// simulate clock skew in tests.
    public var wallClock: @Sendable () -> LogTimestamp = { LogTimestamp.wallClock() }
    /// The engine that stores the log: LMDB in ``directory`` (the default), or an external one (PostgreSQL,
    /// `EventLogPostgres`); ``directory`` then holds only what stays local (snapshots).
    public var backend = LogBackendChoice.lmdb

    /// Creates a configuration for the log in `directory`.
    public init(directory: String, writer: WriterIdentity) {
        self.directory = directory
        self.writer = writer
    }
}

/// The durable, append-only event log on LMDB that several processes on one host share.
///
/// - Appends from many tasks are grouped into one write transaction and one durable commit
///   (``append(_:)``, ``transact(_:)``); each caller resumes after its commit with its seqs.
/// - Records are keyed by a gapless big-endian `UInt64` seq starting at 1 and carry a checksummed envelope
///   (see ``Record``), verified on every read.
/// - ``tail(from:)`` streams committed records, in order, across processes.
///
/// Open one `EventLog` per environment per process (LMDB forbids opening it twice) and share it.
public final class EventLog: Sendable {
    /// The configuration the log was opened with.
    public let configuration: EventLogConfiguration
    /// LMDB's environment and databases; `nil` on an external backend.
    let lmdb: LMDBStore?
    /// The external backend, when the log is not on LMDB.
    let external: (any LogBackend)?
    @usableFromInline let writer: GroupCommitWriter
    let notifier: CommitNotifier
    private let logger: Logger
    /// Whether the projection tables are in the projector's format (see ``ProjectionUpgrade``).
    public let projections: ProjectionStatus

    static let logDatabase = "log"
    static let metaDatabase = "meta"
    static let checkpointDatabase = "checkpoints"
    /// The databases every log environment has beside its projection and configured tables.
    static let reservedDatabases = [logDatabase, metaDatabase, checkpointDatabase]
    static let formatKey = Array("format".utf8)
    static let format = Array("switchboard-eventlog/1".utf8)

    /// Opens (creating when needed) the log in `configuration.directory`.
    ///
    /// - Throws: ``EventLogError`` with ``EventLogError/Code/notAnEnvironment`` when the directory holds
    ///   something that is not this log, ``EventLogError/Code/permissionDenied`` when its files cannot be
    ///   created or written, ``EventLogError/Code/alreadyOpen`` when this process has it open already.
    public init(_ configuration: EventLogConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        let reserved = Self.reservedDatabases
        if let clash = configuration.tables.first(where: reserved.contains) {
            throw EventLogError(.invalidArgument, "table name \(clash) is reserved")
        }
        if let factory = configuration.backend.factory {
            // The directory keeps what stays local to this host (the web chat's files, snapshots).
            if configuration.createIfMissing {
                do {
                    try FileManager.default.createDirectory(
                        atPath: configuration.directory, withIntermediateDirectories: true)
                } catch {
                    throw EventLogError(
                        .permissionDenied, "cannot create \(configuration.directory) for this host's files",
                        cause: error)
                }
            }
            let backend = try factory.open(configuration, logger: logger)
            external = backend
            lmdb = nil
            projections = backend.projections
            let projection = try configuration.projector.map { projector in
                for name in projector.tables where backend.table(named: name) == nil {
                    throw EventLogError(.invalidArgument, "the backend has no table \(name)")
                }
                return ProjectionBinding(projector, resolve: { backend.table(named: $0)?.dbi })
            }
            let notifier = try CommitNotifier(
                directory: nil, pollInterval: configuration.pollInterval,
                lastTransactionID: { backend.committedSeq() })
            self.notifier = notifier
            backend.startWakeups { notifier.heard() }
            writer = try GroupCommitWriter(
                engine: .external(backend), writer: configuration.writer,
                maxBatchEvents: configuration.maxBatchEvents, groupCommitWindow: configuration.groupCommitWindow,
                wallClock: configuration.wallClock, projection: projection, logger: logger,
                afterCommit: { _ in notifier.ring() })
            logger.info("eventlog.opened", metadata: ["eventlog.backend": "\(factory.description)"])
            return
        }
        if !configuration.createIfMissing
            && !FileManager.default.fileExists(atPath: configuration.directory + "/data.mdb")
        {
            throw EventLogError(.notFound, "no event log at \(configuration.directory) (no data.mdb)")
        }
        let env = try LMDBEnvironment(
            directory: configuration.directory, initialMapSize: configuration.initialMapSize,
            maxMapSize: configuration.maxMapSize, maxReaders: configuration.maxReaders,
            durability: configuration.durability,
            databases: reserved + configuration.tables + (configuration.projector?.tables ?? []))
        let logDB = env.database(Self.logDatabase)
        let metaDB = env.database(Self.metaDatabase)
        lmdb = LMDBStore(env: env, logDB: logDB, metaDB: metaDB, checkpointsDB: env.database(Self.checkpointDatabase))
        external = nil
        let projection = configuration.projector.map { ProjectionBinding($0, resolve: { env.databases[$0] }) }
        var status = ProjectionStatus.current
        while true {
            do {
                status = try env.withWriteTransaction { txn in
                    try Self.checkFormat(txn.view, metaDB, directory: configuration.directory)
                    guard let projection else { return .current }
                    return try Self.reconcileProjections(
                        txn.view, metaDB: metaDB, logDB: logDB, projection: projection,
                        upgrade: configuration.projectionUpgrade, directory: configuration.directory, logger: logger)
                }
                break
            } catch let error as EventLogError where error.code == .mapFull {
                // Only a projection rebuild writes enough to fill the map here.
                guard try env.grow() else { throw error }
            }
        }
        projections = status
        let notifier = try CommitNotifier(
            directory: configuration.directory, pollInterval: configuration.pollInterval,
            lastTransactionID: { [env] in env.lastTransactionID() })
        self.notifier = notifier
        writer = try GroupCommitWriter(
            engine: .lmdb(env: env, logDB: logDB, metaDB: metaDB), writer: configuration.writer,
            maxBatchEvents: configuration.maxBatchEvents, groupCommitWindow: configuration.groupCommitWindow,
            wallClock: configuration.wallClock, projection: projection, logger: logger,
            afterCommit: { _ in notifier.ring() })
        logger.info(
            "eventlog.opened",
            metadata: [
                "eventlog.directory": "\(configuration.directory)",
                "eventlog.map_size": "\(env.mapSize)",
                "eventlog.durability": "\(configuration.durability.rawValue)",
                "eventlog.stale_readers_cleared": "\(env.staleReadersCleared)",
            ])
    }

    /// Refuses an environment written in another log format; records the format in a new one.
    private static func checkFormat(_ txn: TxnView, _ metaDB: MDB_dbi, directory: String) throws {
        let stored = try formatKey.withUnsafeBytes { k in try txn.get(metaDB, k) { $0.map { [UInt8]($0) } } }
        if let stored {
            guard stored == format else {
                throw EventLogError(
                    .versionMismatch,
                    "\(directory) holds log format \(String(decoding: stored, as: UTF8.self)), "
                        + "this build reads \(String(decoding: format, as: UTF8.self))")
            }
        } else {
            try formatKey.withUnsafeBytes { k in try format.withUnsafeBytes { v in try txn.put(metaDB, k, v) } }
        }
    }

    /// Finishes queued appends, stops background threads and closes the environment; tails end. Later calls
    /// fail with ``EventLogError/Code/closed``. Idempotent: every call returns once the log is closed.
    ///
    /// Closing waits for the writer to finish its queue and for the doorbell watcher to stop, so the blocking
    /// part runs on a thread of its own, never on the cooperative pool.
    public func close() async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let thread = Thread {
                self.closeBlocking()
                continuation.resume()
            }
            thread.name = "eventlog-close"
            thread.start()
        }
    }

    /// Closes the log, blocking the calling thread until the writer has finished its queue and the watcher stopped.
    /// For synchronous code only; async code awaits the other `close()`.
    @available(*, noasync, message: "blocks the thread until the writer finishes; use 'await close()'")
    public func close() {
        closeBlocking()
    }

    /// Runs `body`, then closes the log (see ``close()``) whether `body` returned or threw.
    public func closeAfter<R>(
        isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> R
    ) async throws -> R {
        let result: R
        do {
            result = try await body()
        } catch {
            await close()
            throw error
        }
        await close()
        return result
    }

    private func closeBlocking() {
        writer.stop()
        notifier.shutdown()
        lmdb?.env.close()
        external?.close()
    }

    /// LMDB's parts, for what only LMDB does (a rebuild's scratch copy, reader maintenance).
    func lmdbOnly(_ what: String) throws(EventLogError) -> LMDBStore {
        guard let lmdb else {
            throw EventLogError(.invalidArgument, "\(what) needs an LMDB log; this one is on an external backend")
        }
        return lmdb
    }

    // MARK: Writing

    /// Appends `events` in order, atomically, and returns their seqs once durably committed.
    ///
    /// Concurrent calls share one write transaction and one sync (group commit).
    @discardableResult
    public func append(_ events: [PendingEvent]) async throws -> Range<UInt64> {
        for event in events { try Envelope.validate(event) }
        return try await writer.append(events)
    }

    /// Runs `body` inside the write transaction — the seam for deciders — and commits.
    ///
    /// The body reads state that is current at that moment (no other process can commit in between), decides,
    /// and appends events or writes tables through the ``WriteContext``; its result is returned with the seqs
    /// it appended. Throwing from the body rejects the command: its changes are rolled back and the error is
    /// rethrown here, while other commands of the same group commit are unaffected. The body runs on the
    /// writer thread and may run again (if the map has to grow, or if another body of the group threw after
    /// writing and the group is rerun with each body in a nested transaction), so it must not block or have
    /// outside effects.
    @inlinable
    public func transact<R: Sendable>(_ body: @escaping @Sendable (inout WriteContext) throws -> R) async throws
        -> Committed<R>
    {
        try await withUnsafeThrowingContinuation { continuation in
            writer.submit(.transact(DeciderCommand(TransactCommand(body, continuation: continuation))))
        }
    }

    // MARK: Reading

    /// Runs `body` with a consistent snapshot, on the calling thread. Keep it short; never call it from inside
    /// a ``transact(_:)`` body.
    public func withSnapshot<R>(_ body: (borrowing Snapshot) throws -> R) throws -> R {
        if let external {
            // A named local: `body(Snapshot(external: $0))` crashes Swift 6.3.1's optimizer (release builds,
            // GenericSpecializer: "Cannot initialize a nonCopyable type with a guaranteed value").
            return try external.withSnapshot { store in
                let snapshot = Snapshot(external: store)
                return try body(snapshot)
            }
        }
        let lmdb = try lmdbOnly("a snapshot")
        return try lmdb.env.withReadTransaction { txn in
            try body(Snapshot(txn: txn.view, logDB: lmdb.logDB))
        }
    }

    /// Runs `body` with a consistent snapshot on a background thread, keeping the caller's executor free.
    public func read<R: Sendable>(_ body: @escaping @Sendable (borrowing Snapshot) throws -> R) async throws -> R {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try self.withSnapshot(body) })
            }
        }
    }

    /// The last committed seq; 0 when the log is empty.
    public func lastSeq() throws -> UInt64 { try withSnapshot { try $0.lastSeq } }

    /// The record at `seq`, or `nil`.
    public func record(at seq: UInt64) throws -> Record? { try withSnapshot { try $0.record(at: seq) } }

    /// Up to `limit` records from `start` (inclusive), in order.
    public func records(from start: UInt64, limit: Int = .max) throws -> [Record] {
        try withSnapshot { try $0.records(from: start, limit: limit) }
    }

    /// The table declared as `name` in ``EventLogConfiguration/tables`` or by the projector.
    public func table(_ name: String) -> Table {
        let declared = configuration.tables + (configuration.projector?.tables ?? [])
        precondition(declared.contains(name), "table \(name) is not declared in the configuration")
        if let external, let table = external.table(named: name) { return table }
        guard let lmdb else { preconditionFailure("table \(name) is not declared by the backend") }
        return Table(name: name, id: lmdb.env.database(name))
    }

    // MARK: Tailing and checkpoints

    /// Committed records from `seq` (inclusive) on, in order, waiting for new ones at the end: across
    /// processes, woken by the doorbell, with polling as the fallback.
    public func tail(from seq: UInt64 = 1) -> LogTail { LogTail(log: self, start: max(1, seq)) }

    /// The seq a reader named `name` saved with ``saveCheckpoint(_:seq:)``, or `nil`.
    public func checkpoint(_ name: String) throws -> UInt64? {
        if let external { return try external.checkpoint(name) }
        let lmdb = try lmdbOnly("a checkpoint")
        return try lmdb.env.withReadTransaction { txn in
            try Array(name.utf8).withUnsafeBytes { k in
                try txn.view.get(lmdb.checkpointsDB, k) {
                    $0.map { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
                }
            }
        }
    }

    /// Durably records that reader `name` has processed everything up to and including `seq`.
    public func saveCheckpoint(_ name: String, seq: UInt64) async throws {
        let db = lmdb?.checkpointsDB ?? 0
        _ = try await transact { context in
            try context.putCheckpoint(name, seq: seq, lmdbDatabase: db)
            return ()
        }
    }

    /// A tail that resumes after reader `name`'s checkpoint (from seq 1 when it has none).
    public func tail(resumingAfter name: String) throws -> LogTail {
        tail(from: (try checkpoint(name) ?? 0) + 1)
    }

    // MARK: Maintenance

    /// Current map size in bytes (0 on an external backend).
    public var mapSize: Int { lmdb?.env.mapSize ?? 0 }

    /// Whether `error` means an external backend is away for now (LMDB's errors never are).
    func isTransient(_ error: any Error) -> Bool { external?.isTransient(error) ?? false }

    /// Clears reader slots left by dead processes; returns how many were cleared (0 on an external backend).
    @discardableResult
    public func clearStaleReaders() -> Int { lmdb?.env.readerCheck() ?? 0 }
}

/// LMDB's environment and the log's own databases in it.
struct LMDBStore: Sendable {
    let env: LMDBEnvironment
    let logDB: MDB_dbi
    let metaDB: MDB_dbi
    let checkpointsDB: MDB_dbi
}
