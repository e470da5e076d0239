import CLMDB
import Foundation

/// Derives state from events, inside the write transaction that appends them.
///
/// Give a projector to ``EventLogConfiguration/projector``: every record appended through that log — by
/// ``EventLog/append(_:)`` or inside ``EventLog/transact(_:)`` — is applied right after it is written, in the
/// same LMDB transaction, so projection state can never drift from the log, even after a crash.
///
/// The log knows nothing of the events themselves: a projector names its own ``Event`` type, decodes records
/// into it (``decode(_:)``) and applies them (``apply(_:_:to:)``). `apply` must be a pure function of the
/// event, its ``RecordMeta`` and the tables (a rebuild from seq 1 must reproduce the same state); it must not
/// read the clock or anything outside the tables.
public protocol Projector: Sendable {
    /// The projector's events: typically one `enum` of everything its vocabulary holds.
    associatedtype Event: Sendable
    /// The tables (LMDB sub-databases) the projector owns; opened with the log.
    var tables: [String] { get }
    /// The layout `apply` writes. Bump its version whenever the tables, keys or values it writes for the same
    /// events change: opening a log whose tables are in an older format rebuilds them (see
    /// ``EventLogConfiguration/projectionUpgrade``).
    var format: ProjectionFormat { get }
    /// Tables earlier formats used and this one does not, dropped when the projections are rebuilt. (Formats
    /// recorded by this build onwards also store their table list, so only tables of builds that did not record
    /// one need naming here.)
    var retiredTables: [String] { get }
    /// The event a stored record holds; `nil` for a type (or a newer schema of a type) this projector does not
    /// know, which it then does not apply. Throws when a known type's payload does not decode.
    func decode(_ record: Record) throws -> Event?
    /// Updates the tables for one appended (or replayed) event.
    ///
    /// During a bulk replay (``TableWriting/replaying``) a projector may leave out state that is a function of
    /// the rest of its state — indexes — and build it once in ``finishReplay(_:)``, which the replay calls before
    /// anything reads the tables.
    func apply<Tables: TableWriting>(_ event: Event, _ meta: RecordMeta, to tables: Tables) throws
    /// Completes the tables after a bulk replay: builds what `apply` left out while
    /// ``TableWriting/replaying``. Called at the end of a replay and at each point where it is read.
    func finishReplay<Tables: TableWriting>(_ tables: Tables) throws
    /// Writes what `apply` kept in memory during a bulk replay, if anything: called at the end of each batch's
    /// transaction, before it commits. (``finishReplay(_:)`` must also write it.)
    func endReplayBatch<Tables: TableWriting>(_ tables: Tables) throws
    /// Forgets what `apply` kept in memory for a batch whose transaction did not commit (it is applied again).
    func discardReplayBatch()
}

extension Projector {
    public var retiredTables: [String] { [] }
    public func finishReplay<Tables: TableWriting>(_ tables: Tables) throws {}
    public func endReplayBatch<Tables: TableWriting>(_ tables: Tables) throws {}
    public func discardReplayBatch() {}

    /// Decodes `record` and applies it when it holds an event of this projector.
    func applyRecord(_ record: Record, to tables: TableWriter) throws {
        guard let event = try decodeStopping(record) else { return }
        try apply(event, RecordMeta(record), to: tables)
    }

    /// ``decode(_:)``, with a failure named by the record's seq (a rebuild stops there, never skipping it).
    func decodeStopping(_ record: Record) throws(EventLogError) -> Event? {
        do {
            return try decode(record)
        } catch let error as EventLogError {
            throw error.seq == nil
                ? EventLogError(error.code, error.message, seq: record.seq, cause: error.cause) : error
        } catch {
            throw EventLogError(
                .decoding, "record \(record.seq) (\(record.type)) does not decode: \(error)", seq: record.seq,
                cause: nil)
        }
    }
}

/// The envelope fields of a record, as a projector sees them beside its decoded event.
public struct RecordMeta: Sendable, Hashable {
    /// The record's seq.
    public var seq: UInt64
    /// The log time of the record's transaction.
    public var timestamp: LogTimestamp
    /// The event type.
    public var type: String
    /// The schema version of the payload.
    public var schemaVersion: UInt16
    /// The writer of the record.
    public var writer: WriterIdentity
    /// The correlation id, if any.
    public var correlationID: String?
    /// The causing record's seq, if any.
    public var causationID: UInt64?

    /// The envelope of a stored record.
    public init(_ record: Record) {
        seq = record.seq
        timestamp = record.timestamp
        type = record.type
        schemaVersion = record.schemaVersion
        writer = record.writer
        correlationID = record.correlationID
        causationID = record.causationID
    }

    init(_ event: PendingEvent, seq: UInt64, timestamp: LogTimestamp, writer: WriterIdentity) {
        self.seq = seq
        self.timestamp = timestamp
        type = event.type
        schemaVersion = event.schemaVersion
        self.writer = writer
        correlationID = event.correlationID
        causationID = event.causationID
    }
}

extension Record {
    /// The record an appended event becomes (for projecting events appended without their typed form).
    init(_ event: PendingEvent, seq: UInt64, timestamp: LogTimestamp, writer: WriterIdentity) {
        self.init(
            seq: seq, timestamp: timestamp, type: event.type, schemaVersion: event.schemaVersion, writer: writer,
            correlationID: event.correlationID, causationID: event.causationID,
            payloadEncoding: event.payloadEncoding, payload: event.payload)
    }
}
