import Foundation
import Logging

// The seam between the log and a storage engine other than LMDB (PostgreSQL, in `EventLogPostgres`). LMDB stays
// built in (`TxnStore.lmdb`, `ReadStore.lmdb`: a static branch the writer's hot path specializes); another engine
// implements these `package` protocols and is chosen with ``EventLogConfiguration/backend``. Everything above
// the log — deciders, projector, readers — is the same on both: they see `WriteContext`, `TableReader`/`TableWriter`
// and `Snapshot`.

/// One write transaction of an external backend, as the writer thread sees it: its reads are current (the
/// backend holds the one writer lock across every process), its writes become visible at the group's commit.
package protocol WriteTransactionStore: AnyObject {
    /// The value under `key`, this transaction's own writes included.
    func get(_ table: Table, _ key: [UInt8]) throws -> [UInt8]?
    /// Entries in unsigned byte-wise key order from the first key ≥ `start`, until `body` returns `false`. The
    /// entries are those that stood when the scan began; `body` may write to the table.
    func scan(_ table: Table, from start: [UInt8]?, _ body: ([UInt8], [UInt8]) throws -> Bool) throws
    func put(_ table: Table, _ key: [UInt8], _ value: [UInt8]) throws
    @discardableResult func delete(_ table: Table, _ key: [UInt8]) throws -> Bool
    func removeAll(_ table: Table) throws
    /// The record at `seq`: appended earlier in this transaction, or committed.
    func record(at seq: UInt64) throws -> Record?
    /// Appends `record` (its seq is the next one: the writer hands them out gaplessly).
    func append(_ record: Record) throws
    /// Records that reader `name` has processed everything up to `seq`.
    func putCheckpoint(_ name: String, seq: UInt64) throws
    /// A command of the group begins: what follows can be undone alone by ``endCommand(keep:)``.
    func beginCommand()
    /// The command ends: its writes and appends stay (`keep`) or are undone, the others' untouched.
    func endCommand(keep: Bool)
}

/// A consistent read view of an external backend: one commit point for the log and every table.
package protocol ReadTransactionStore: AnyObject {
    func lastSeq() throws -> UInt64
    func record(at seq: UInt64) throws -> Record?
    /// Records in seq order from `start`, until `body` returns `false` or the log ends.
    func forEach(from start: UInt64, _ body: (Record) throws -> Bool) throws
    func get(_ table: Table, _ key: [UInt8]) throws -> [UInt8]?
    func scan(_ table: Table, from start: [UInt8]?, _ body: ([UInt8], [UInt8]) throws -> Bool) throws
    func count(_ table: Table) throws -> Int
}

/// A storage engine for the log other than LMDB: what ``EventLog`` delegates to it.
package protocol LogBackend: AnyObject, Sendable {
    /// Whether the projection tables were in the projector's format when the log opened.
    var projections: ProjectionStatus { get }
    /// The handle of a declared table (the configured ones and the projector's), `nil` when not declared.
    func table(named name: String) -> Table?
    /// Runs one group commit on the calling (writer) thread: takes the writer lock, reads the next seq and the
    /// last record's time, calls `run` with the transaction, the next seq and the log time
    /// (`max(wallClock(), last record's time)`), and commits. `run` returns the last seq it appended (`nil`:
    /// none). A group whose commit cannot be confirmed is resolved, never guessed: the backend either reports
    /// it committed or runs it again. Throws when the group failed as a whole.
    func commitGroup(
        wallClock: @Sendable () -> LogTimestamp,
        _ run: (any WriteTransactionStore, _ nextSeq: UInt64, _ now: LogTimestamp) throws -> UInt64?
    ) throws -> UInt64?
    /// Runs `body` with a consistent read view, on the calling thread.
    func withSnapshot<R>(_ body: (any ReadTransactionStore) throws -> R) throws -> R
    /// The seq reader `name` saved, or `nil`.
    func checkpoint(_ name: String) throws -> UInt64?
    /// The last committed seq, cheaply: what the tail's fallback poll compares.
    func committedSeq() -> Int
    /// Starts telling `ring` of commits by other processes (PostgreSQL: LISTEN/NOTIFY).
    func startWakeups(_ ring: @escaping @Sendable () -> Void)
    /// Whether `error` (thrown by a read) means the backend is away for now — a dropped connection, a server
    /// restarting — so a tail waits and reads again instead of ending.
    func isTransient(_ error: any Error) -> Bool
    /// Closes every connection; later calls fail with ``EventLogError/Code/closed``.
    func close()
}

/// Opens a ``LogBackend`` for a configuration.
package protocol LogBackendFactory: Sendable {
    /// Opens (creating when missing and allowed) the log; the tables are the configured ones then the
    /// projector's. Reconciles the projection format as LMDB does (``ProjectionUpgrade``).
    func open(_ configuration: EventLogConfiguration, logger: Logger) throws -> any LogBackend
    /// Where the log is, for messages (never a password).
    var description: String { get }
}

/// Which engine stores the log.
public struct LogBackendChoice: Sendable {
    let factory: (any LogBackendFactory)?

    /// LMDB in ``EventLogConfiguration/directory``: the default, embedded, one host.
    public static let lmdb = LogBackendChoice(factory: nil)

    /// Another engine (PostgreSQL: `EventLogPostgres`).
    package static func external(_ factory: any LogBackendFactory) -> LogBackendChoice {
        LogBackendChoice(factory: factory)
    }

    /// `lmdb`, or where the external log is.
    public var description: String { factory?.description ?? "lmdb" }
}
