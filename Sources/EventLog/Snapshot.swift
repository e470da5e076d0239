import CLMDB
import Foundation

/// A consistent point-in-time view of the log and its tables (one LMDB read transaction).
///
/// A snapshot lives only inside the closure given to ``EventLog/withSnapshot(_:)`` or ``EventLog/read(_:)``;
/// keep it short: an open snapshot keeps LMDB from reusing pages freed after it began and delays map growth.
public struct Snapshot: ~Copyable {
    enum Store {
        case lmdb(TxnView, logDB: MDB_dbi)
        case external(any ReadTransactionStore)
    }

    let store: Store

    init(txn: TxnView, logDB: MDB_dbi) { store = .lmdb(txn, logDB: logDB) }

    init(external: any ReadTransactionStore) { store = .external(external) }

    /// The last seq in this snapshot; 0 when the log is empty.
    public var lastSeq: UInt64 {
        get throws {
            switch store {
            case .lmdb(let txn, let logDB): try txn.last(logDB) { k, _ in seqFromKey(k) } ?? 0
            case .external(let store): try store.lastSeq()
            }
        }
    }

    /// The record at `seq`, or `nil` when there is none. Throws ``EventLogError/Code/corruptRecord`` when the
    /// stored bytes fail their checksum.
    public func record(at seq: UInt64) throws -> Record? {
        switch store {
        case .lmdb(let txn, let logDB): try readRecord(txn, logDB, seq)
        case .external(let store): try store.record(at: seq)
        }
    }

    /// Visits records in seq order from `start` (inclusive) until `body` returns `false` or the log ends.
    /// Each record's checksum is verified before `body` sees it.
    public func forEach(from start: UInt64 = 1, _ body: (Record) throws -> Bool) throws {
        switch store {
        case .lmdb(let txn, let logDB):
            try withSeqKey(start) { k in
                try txn.scan(logDB, from: k) { key, value in
                    try body(try Envelope.decode(seq: seqFromKey(key), value))
                }
            }
        case .external(let store):
            try store.forEach(from: start, body)
        }
    }

    /// Up to `limit` records from `start` (inclusive), in order.
    public func records(from start: UInt64, limit: Int = .max) throws -> [Record] {
        var out: [Record] = []
        if limit <= 0 { return out }
        try forEach(from: start) { record in
            out.append(record)
            return out.count < limit
        }
        return out
    }

    /// The value stored under `key` in `table`.
    public func get(_ table: Table, _ key: [UInt8]) throws -> [UInt8]? {
        switch store {
        case .lmdb(let txn, _): try key.withUnsafeBytes { k in try txn.get(table.dbi, k) { $0.map { [UInt8]($0) } } }
        case .external(let store): try store.get(table, key)
        }
    }

    /// Visits `table` in key order from the first key ≥ `start` until `body` returns `false`.
    public func scan(_ table: Table, from start: [UInt8]? = nil, _ body: ([UInt8], [UInt8]) throws -> Bool) throws {
        switch store {
        case .lmdb(let txn, _): try scanTable(txn, table, from: start, body)
        case .external(let store): try store.scan(table, from: start, body)
        }
    }

    /// ``scan(_:from:_:)`` without copying: `body` sees each key and value where the backend keeps them, valid
    /// only during the call (LMDB's mapped pages; a copy for an external backend).
    public func scanBytes(
        _ table: Table, from start: [UInt8]? = nil,
        _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        switch store {
        case .lmdb(let txn, _): try scanTableBytes(txn, table, from: start, body)
        case .external(let store): try store.scan(table, from: start) { try lend($0, $1, to: body) }
        }
    }

    /// Number of entries in `table`.
    public func count(_ table: Table) throws -> Int {
        switch store {
        case .lmdb(let txn, _): try txn.count(table.dbi)
        case .external(let store): try store.count(table)
        }
    }
}
