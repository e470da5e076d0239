import CLMDB
import Foundation

/// A named sub-database of the log's environment, for state kept beside the log (projections, checkpoints).
///
/// Tables are declared in ``EventLogConfiguration/tables`` and obtained with ``EventLog/table(_:)``.
public struct Table: Hashable, Sendable, CustomStringConvertible {
    /// The table name.
    public let name: String
    let dbi: UInt32

    public var description: String { name }

    /// A table of an external backend, `id` being its handle there (unique per log).
    package init(name: String, id: UInt32) {
        self.name = name
        dbi = id
    }

    /// The table's handle: an LMDB database, or an external backend's table id.
    package var id: UInt32 { dbi }
}

/// The write transaction as seen by one command: read current state, decide, then append events and write
/// tables — or throw to reject, which rolls back only this command's changes.
///
/// A `WriteContext` exists only inside the body passed to ``EventLog/transact(_:)``, which runs on the log's
/// writer thread inside an LMDB write transaction; a throwing command does not disturb the others of its group
/// commit (see ``EventLog/transact(_:)``). Everything read here is current: no other writer, in this process or
/// another, can commit between the read and the append. The body may run more than once (after the map grows,
/// or when another command of its group threw after writing), so it must have no side effects outside this
/// context.
public struct WriteContext: ~Copyable {
    let store: TxnStore
    /// The log's database, for LMDB's store.
    let logDB: MDB_dbi
    let writerEncoding: WriterEncoding
    let projection: ProjectionBinding?

    /// The log time of this transaction: every record it appends carries it. Judge expiry against it.
    public let now: LogTimestamp
    /// The identity stamped on appended records.
    public let writer: WriterIdentity
    /// The seq the next appended record will get.
    public private(set) var nextSeq: UInt64
    /// The seqs appended by this command so far.
    public var appended: Range<UInt64> { firstSeq..<nextSeq }
    private let firstSeq: UInt64

    init(
        store: TxnStore, logDB: MDB_dbi, writer: WriterIdentity, writerEncoding: WriterEncoding, now: LogTimestamp,
        nextSeq: UInt64, projection: ProjectionBinding?
    ) {
        self.projection = projection
        self.store = store
        self.logDB = logDB
        self.writer = writer
        self.writerEncoding = writerEncoding
        self.now = now
        self.nextSeq = nextSeq
        self.firstSeq = nextSeq
    }

    /// The last committed seq as this transaction sees it (including this command's appends); 0 when empty.
    public var lastSeq: UInt64 { nextSeq - 1 }

    /// Appends `event` and returns its seq. The log's projector (if any) decodes and applies it before this
    /// returns, so reads that follow in the same body see its effect.
    @discardableResult
    public mutating func append(_ event: PendingEvent) throws -> UInt64 {
        let seq = try appendUnprojected(event)
        if let projection {
            try projection.applyRecord(Record(event, seq: seq, timestamp: now, writer: writer), projectionWriter)
        }
        return seq
    }

    /// Appends `encoded` — the stored form of `event` — and applies `event` with `projector` without decoding
    /// it again. `projector` must be the log's projector (the same type as ``EventLogConfiguration/projector``).
    @discardableResult
    public mutating func append<P: Projector>(_ event: P.Event, encoded: PendingEvent, projectedBy projector: P)
        throws -> UInt64
    {
        guard let projection, projection.type == ObjectIdentifier(P.self) else {
            throw EventLogError(.invalidArgument, "\(P.self) is not the projector this log was opened with")
        }
        let seq = try appendUnprojected(encoded)
        try projector.apply(
            event, RecordMeta(encoded, seq: seq, timestamp: now, writer: writer), to: projectionWriter)
        return seq
    }

    private mutating func appendUnprojected(_ event: PendingEvent) throws -> UInt64 {
        try Envelope.validate(event)
        let seq = nextSeq
        writes.happened = true
        switch store {
        case .lmdb(let txn): try appendRecord(txn, logDB, event, seq: seq, timestamp: now, writer: writerEncoding)
        case .external(let store): try store.append(Record(event, seq: seq, timestamp: now, writer: writer))
        }
        nextSeq += 1
        return seq
    }

    /// Appends a record copied from another log as it is — its seq, timestamp and writer, so its envelope (and
    /// checksum) equals the source's — and applies it with the log's projector, as an append does.
    /// ``EventLog/importRecords(_:after:)`` checks the seq and time order before calling it.
    mutating func appendImported(_ record: Record) throws {
        let event = PendingEvent(record)
        try Envelope.validate(event)
        precondition(record.seq == nextSeq, "an imported record's seq is checked before it is appended")
        writes.happened = true
        switch store {
        case .lmdb(let txn):
            try appendRecord(
                txn, logDB, event, seq: record.seq, timestamp: record.timestamp,
                writer: try WriterEncoding(record.writer))
        case .external(let store): try store.append(record)
        }
        nextSeq += 1
        if let projection { try projection.applyRecord(record, projectionWriter) }
    }

    /// Read-only access to every table: deciders load state here. Projection state changes only through
    /// appended events (the projector), so a rebuild reproduces it.
    public var tables: TableReader { TableReader(store: store, projectionTables: projection?.tables ?? []) }

    /// The projector's write access (only appends use it; tests that forge state use it with `@testable`).
    var projectionWriter: TableWriter {
        TableWriter(store: store, projectionTables: projection?.tables ?? [], writes: writes)
    }

    /// Whether this command has written anything (a record or a table entry).
    var wrote: Bool { writes.happened }
    private let writes = WriteTracker()

    /// The record at `seq`, or `nil` when there is none.
    public func record(at seq: UInt64) throws -> Record? {
        switch store {
        case .lmdb(let txn): try readRecord(txn, logDB, seq)
        case .external(let store): try store.record(at: seq)
        }
    }

    /// Records that reader `name` has processed everything up to `seq` (``EventLog/saveCheckpoint(_:seq:)``).
    func putCheckpoint(_ name: String, seq: UInt64, lmdbDatabase: MDB_dbi) throws {
        writes.happened = true
        switch store {
        case .lmdb(let txn):
            try Array(name.utf8).withUnsafeBytes { k in
                try withUnsafeBytes(of: seq.littleEndian) { v in try txn.put(lmdbDatabase, k, v) }
            }
        case .external(let store): try store.putCheckpoint(name, seq: seq)
        }
    }

    /// The value stored under `key` in `table`.
    public func get(_ table: Table, _ key: [UInt8]) throws -> [UInt8]? { try tables.get(table, key) }

    /// Stores `value` under `key` in `table`, one of ``EventLogConfiguration/tables`` (never a projector's).
    public func put(_ table: Table, _ key: [UInt8], _ value: [UInt8]) throws {
        try checkWritable(table)
        try projectionWriter.put(table, key, value)
    }

    /// Deletes `key` from `table`, one of ``EventLogConfiguration/tables``; returns whether it existed.
    @discardableResult
    public func delete(_ table: Table, _ key: [UInt8]) throws -> Bool {
        try checkWritable(table)
        return try projectionWriter.delete(table, key)
    }

    /// Visits `table` in key order from the first key ≥ `start` until `body` returns `false`.
    public func scan(_ table: Table, from start: [UInt8]? = nil, _ body: ([UInt8], [UInt8]) throws -> Bool) throws {
        try tables.scan(table, from: start, body)
    }

    private func checkWritable(_ table: Table) throws(EventLogError) {
        if let projection, projection.tables.contains(table) {
            throw EventLogError(
                .invalidArgument, "table \(table.name) belongs to the projector: only appended events change it")
        }
    }
}

/// The log's projector with its tables resolved once, at open.
struct ProjectionBinding: Sendable {
    let projector: any Projector
    /// The identity of the projector's type (typed appends must come from the same projector).
    let type: ObjectIdentifier
    /// The projector's tables, in the order of ``Projector/tables``.
    let tables: [Table]

    init(_ projector: any Projector, resolve: (String) -> MDB_dbi?) {
        self.projector = projector
        type = ObjectIdentifier(Swift.type(of: projector))
        tables = projector.tables.map { name in
            guard let dbi = resolve(name) else { preconditionFailure("projector table \(name) was not opened") }
            return Table(name: name, id: dbi)
        }
    }

    /// Decodes `record` with the projector and applies it.
    func applyRecord(_ record: Record, _ tables: TableWriter) throws {
        try projector.applyRecord(record, to: tables)
    }
}

/// Encodes `event` straight into the page LMDB reserves for it.
func appendRecord(
    _ txn: TxnView, _ logDB: MDB_dbi, _ event: PendingEvent, seq: UInt64, timestamp: LogTimestamp,
    writer: WriterEncoding
) throws(EventLogError) {
    let size = Envelope.size(of: event, writer: writer)
    var key = seq.bigEndian
    try withUnsafeBytes(of: &key) { (k) throws(EventLogError) in
        try txn.putReserved(logDB, k, count: size, append: true) { out in
            Envelope.encode(event, seq: seq, timestamp: timestamp, writer: writer, into: out)
        }
    }
}

func readRecord(_ txn: TxnView, _ logDB: MDB_dbi, _ seq: UInt64) throws -> Record? {
    try withSeqKey(seq) { k in
        try txn.get(logDB, k) { value in try value.map { v throws(EventLogError) in try Envelope.decode(seq: seq, v) } }
    }
}

func scanTable(_ txn: TxnView, _ table: Table, from start: [UInt8]?, _ body: ([UInt8], [UInt8]) throws -> Bool) throws {
    if let start {
        try start.withUnsafeBytes { s in try txn.scan(table.dbi, from: s) { try body([UInt8]($0), [UInt8]($1)) } }
    } else {
        try txn.scan(table.dbi, from: nil) { try body([UInt8]($0), [UInt8]($1)) }
    }
}

/// ``scanTable(_:_:from:_:)`` without copies: keys and values where LMDB's pages hold them.
func scanTableBytes(
    _ txn: TxnView, _ table: Table, from start: [UInt8]?,
    _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool
) throws {
    if let start {
        try start.withUnsafeBytes { s in try txn.scan(table.dbi, from: s, body) }
    } else {
        try txn.scan(table.dbi, from: nil, body)
    }
}

/// Passes a copied key and value to a `scanBytes` body, for a backend that has nothing to lend.
func lend(
    _ key: [UInt8], _ value: [UInt8], to body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool
) rethrows -> Bool {
    try key.withUnsafeBytes { k in try value.withUnsafeBytes { v in try body(k, v) } }
}
