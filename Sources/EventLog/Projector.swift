import CLMDB
import Foundation

/// Derives state from events, inside the write transaction that appends them.
///
/// Give a projector to ``EventLogConfiguration/projector``: every record appended through that log — by
/// ``EventLog/append(_:)`` or inside ``EventLog/transact(_:)`` — is passed to ``apply(_:to:)`` right after it is
/// written, in the same LMDB transaction, so projection state can never drift from the log, even after a
/// crash. `apply` must be a pure function of the record and the tables (a rebuild from seq 1 must reproduce
/// the same state); it must not read the clock or anything outside the tables.
public protocol Projector: Sendable {
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
    /// Updates the tables for one appended record.
    func apply(_ record: ProjectedRecord, to tables: TableWriter) throws
}

extension Projector {
    public var retiredTables: [String] { [] }
}

/// A record as a projector sees it: the envelope fields and the event, typed when the appender had it typed.
public struct ProjectedRecord: Sendable {
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
    /// The payload bytes.
    public var payload: [UInt8]
    /// The event as the appender passed it, when it was typed.
    public var typed: (any EventPayload)?

    /// The event decoded with the v1 catalog (`nil` for an unknown type or newer schema).
    public func event() throws -> (any EventPayload)? {
        if let typed { return typed }
        return try asRecord.event()
    }

    /// The record form (as readers see it).
    public var asRecord: Record {
        Record(
            seq: seq, timestamp: timestamp, type: type, schemaVersion: schemaVersion, writer: writer,
            correlationID: correlationID, causationID: causationID, payloadEncoding: .json, payload: payload)
    }

    /// A projected record from a stored record (for rebuilds).
    public init(_ record: Record) {
        seq = record.seq
        timestamp = record.timestamp
        type = record.type
        schemaVersion = record.schemaVersion
        writer = record.writer
        correlationID = record.correlationID
        causationID = record.causationID
        payload = record.payload
        typed = nil
    }

    init(_ event: PendingEvent, seq: UInt64, timestamp: LogTimestamp, writer: WriterIdentity) {
        self.seq = seq
        self.timestamp = timestamp
        type = event.type
        schemaVersion = event.schemaVersion
        self.writer = writer
        correlationID = event.correlationID
        causationID = event.causationID
        payload = event.payload
        typed = event.typed
    }
}

/// Read/write access to the tables inside the current write transaction. Valid only during the call it is
/// passed to.
public struct TableWriter {
    let txn: TxnView
    let resolve: (String) -> MDB_dbi?
    /// Told of every write, when the writer needs to know whether a command wrote.
    let writes: WriteTracker?

    init(txn: TxnView, resolve: @escaping (String) -> MDB_dbi?, writes: WriteTracker? = nil) {
        self.txn = txn
        self.resolve = resolve
        self.writes = writes
    }

    /// The table named `name`, declared by the projector or the configuration.
    public func table(_ name: String) -> Table {
        guard let dbi = resolve(name) else { preconditionFailure("table \(name) is not declared") }
        return Table(name: name, dbi: dbi)
    }

    /// The value under `key`.
    public func get(_ table: Table, _ key: [UInt8]) throws -> [UInt8]? {
        try key.withUnsafeBytes { k in try txn.get(table.dbi, k) { $0.map { [UInt8]($0) } } }
    }

    /// Stores `value` under `key`.
    public func put(_ table: Table, _ key: [UInt8], _ value: [UInt8]) throws {
        writes?.happened = true
        try key.withUnsafeBytes { k in try value.withUnsafeBytes { v in try txn.put(table.dbi, k, v) } }
    }

    /// Deletes `key`; returns whether it existed.
    @discardableResult
    public func delete(_ table: Table, _ key: [UInt8]) throws -> Bool {
        writes?.happened = true
        return try key.withUnsafeBytes { k in try txn.delete(table.dbi, k) }
    }

    /// Visits entries in key order from the first key ≥ `start` until `body` returns `false`.
    public func scan(_ table: Table, from start: [UInt8]? = nil, _ body: ([UInt8], [UInt8]) throws -> Bool) throws {
        try scanTable(txn, table, from: start, body)
    }
}

/// Whether a command wrote anything.
final class WriteTracker {
    var happened = false
}
