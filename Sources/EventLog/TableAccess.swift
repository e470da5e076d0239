import CLMDB
import Foundation

// The storage seam: how a projector and the deciders' shells read and write tables. `TableReading` and
// `TableWriting` are what a storage backend provides; `TableReader`/`TableWriter` are LMDB's, over the current
// transaction; ``MemoryTables`` keeps tables in memory (the pure tests, and the seam's own conformance test).
// Code above the seam is generic over them (never `any`), so the LMDB path is specialized and costs nothing
// (docs/benchmarks.md, "Storage seam").

/// Read access to key-ordered byte tables, as one transaction sees them.
public protocol TableReading {
    /// The projector's table at `index` of ``Projector/tables`` (resolved once, when the log opened).
    func table(at index: Int) -> Table
    /// The value under `key`.
    func get(_ table: Table, _ key: [UInt8]) throws -> [UInt8]?
    /// The value under `key`, passed to `body` without copying where the backend can (valid only during the call).
    func withValue<R>(_ table: Table, _ key: [UInt8], _ body: (UnsafeRawBufferPointer?) throws -> R) throws -> R
    /// Visits entries in unsigned byte-wise key order from the first key ≥ `start` until `body` returns `false`.
    func scan(_ table: Table, from start: [UInt8]?, _ body: ([UInt8], [UInt8]) throws -> Bool) throws
    /// ``scan(_:from:_:)`` without copying where the backend can: each key and value is valid only until `body`
    /// returns, and only until `body` writes (read what it needs first).
    func scanBytes(
        _ table: Table, from start: [UInt8]?, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool
    ) throws
}

extension TableReading {
    /// Visits every entry in key order until `body` returns `false`.
    public func scan(_ table: Table, _ body: ([UInt8], [UInt8]) throws -> Bool) throws {
        try scan(table, from: nil, body)
    }

    /// Over ``scan(_:from:_:)``'s copies: for backends that have nothing to lend.
    public func scanBytes(
        _ table: Table, from start: [UInt8]?, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        try scan(table, from: start) { try lend($0, $1, to: body) }
    }
}

/// Read/write access to the tables, inside the transaction that appends the events being applied.
public protocol TableWriting: TableReading {
    /// Whether records are being replayed in bulk (a rebuild, an upgrade in place): the projector may defer
    /// what ``Projector/finishReplay(_:)`` builds. `false` for every append.
    var replaying: Bool { get }
    /// Stores `value` under `key`.
    func put(_ table: Table, _ key: [UInt8], _ value: [UInt8]) throws
    /// Deletes `key`; returns whether it existed.
    @discardableResult
    func delete(_ table: Table, _ key: [UInt8]) throws -> Bool
    /// Deletes every entry of `table`.
    func removeAll(_ table: Table) throws
}

/// Where one write transaction's table reads and writes go: LMDB's transaction, or an external backend's.
enum TxnStore {
    case lmdb(TxnView)
    case external(any WriteTransactionStore)

    @inline(__always)
    func get(_ table: Table, _ key: [UInt8]) throws -> [UInt8]? {
        switch self {
        case .lmdb(let txn): try key.withUnsafeBytes { k in try txn.get(table.dbi, k) { $0.map { [UInt8]($0) } } }
        case .external(let store): try store.get(table, key)
        }
    }

    @inline(__always)
    func withValue<R>(_ table: Table, _ key: [UInt8], _ body: (UnsafeRawBufferPointer?) throws -> R) throws -> R {
        switch self {
        case .lmdb(let txn):
            return try key.withUnsafeBytes { k in try txn.get(table.dbi, k, body) }
        case .external(let store):
            guard let value = try store.get(table, key) else { return try body(nil) }
            return try value.withUnsafeBytes { try body($0) }
        }
    }

    @inline(__always)
    func scan(_ table: Table, from start: [UInt8]?, _ body: ([UInt8], [UInt8]) throws -> Bool) throws {
        switch self {
        case .lmdb(let txn): try scanTable(txn, table, from: start, body)
        case .external(let store): try store.scan(table, from: start, body)
        }
    }

    @inline(__always)
    func scanBytes(
        _ table: Table, from start: [UInt8]?, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        switch self {
        case .lmdb(let txn): try scanTableBytes(txn, table, from: start, body)
        case .external(let store): try store.scan(table, from: start) { try lend($0, $1, to: body) }
        }
    }

    @inline(__always)
    func put(_ table: Table, _ key: [UInt8], _ value: [UInt8]) throws {
        switch self {
        case .lmdb(let txn):
            try key.withUnsafeBytes { k in try value.withUnsafeBytes { v in try txn.put(table.dbi, k, v) } }
        case .external(let store): try store.put(table, key, value)
        }
    }

    @inline(__always)
    func delete(_ table: Table, _ key: [UInt8]) throws -> Bool {
        switch self {
        case .lmdb(let txn): try key.withUnsafeBytes { k in try txn.delete(table.dbi, k) }
        case .external(let store): try store.delete(table, key)
        }
    }

    func removeAll(_ table: Table) throws {
        switch self {
        case .lmdb(let txn): try txn.drop(table.dbi)
        case .external(let store): try store.removeAll(table)
        }
    }
}

/// Read/write access to the tables inside the current write transaction. Valid only during the call it is
/// passed to.
public struct TableWriter: TableWriting {
    let store: TxnStore
    let projectionTables: [Table]
    /// Told of every write, when the writer needs to know whether a command wrote.
    let writes: WriteTracker?
    /// Whether records are being replayed in bulk (a rebuild, an upgrade in place): the projector may defer
    /// what ``Projector/finishReplay(_:)`` builds. `false` for every append.
    public let replaying: Bool

    init(store: TxnStore, projectionTables: [Table], writes: WriteTracker? = nil, replaying: Bool = false) {
        self.store = store
        self.projectionTables = projectionTables
        self.writes = writes
        self.replaying = replaying
    }

    init(txn: TxnView, projectionTables: [Table], writes: WriteTracker? = nil, replaying: Bool = false) {
        self.init(store: .lmdb(txn), projectionTables: projectionTables, writes: writes, replaying: replaying)
    }

    /// The projector's table at `index` of ``Projector/tables`` (resolved once, when the log opened).
    @inline(__always)
    public func table(at index: Int) -> Table { projectionTables[index] }

    /// A read-only view of the same tables.
    public var reader: TableReader { TableReader(store: store, projectionTables: projectionTables) }

    /// The value under `key`.
    public func get(_ table: Table, _ key: [UInt8]) throws -> [UInt8]? { try store.get(table, key) }

    /// The value under `key`, passed to `body` without copying where the backend can (valid only during the call).
    public func withValue<R>(_ table: Table, _ key: [UInt8], _ body: (UnsafeRawBufferPointer?) throws -> R) throws -> R
    {
        try store.withValue(table, key, body)
    }

    /// Stores `value` under `key`.
    public func put(_ table: Table, _ key: [UInt8], _ value: [UInt8]) throws {
        writes?.happened = true
        try store.put(table, key, value)
    }

    /// Deletes `key`; returns whether it existed.
    @discardableResult
    public func delete(_ table: Table, _ key: [UInt8]) throws -> Bool {
        writes?.happened = true
        return try store.delete(table, key)
    }

    /// Visits entries in key order from the first key ≥ `start` until `body` returns `false`.
    public func scan(_ table: Table, from start: [UInt8]?, _ body: ([UInt8], [UInt8]) throws -> Bool) throws {
        try store.scan(table, from: start, body)
    }

    /// ``scan(_:from:_:)`` over LMDB's own pages: each key and value is valid until `body` returns or writes.
    public func scanBytes(
        _ table: Table, from start: [UInt8]?, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        try store.scanBytes(table, from: start, body)
    }

    /// Deletes every entry of `table`.
    public func removeAll(_ table: Table) throws {
        writes?.happened = true
        try store.removeAll(table)
    }
}

/// Read-only access to the tables inside the current write transaction: what a decider's shell loads state
/// through. Only the projector writes projection tables. Valid only during the call it is passed to.
public struct TableReader: TableReading {
    let store: TxnStore
    let projectionTables: [Table]

    /// The projector's table at `index` of ``Projector/tables`` (resolved once, when the log opened).
    @inline(__always)
    public func table(at index: Int) -> Table { projectionTables[index] }

    /// The value under `key`.
    public func get(_ table: Table, _ key: [UInt8]) throws -> [UInt8]? { try store.get(table, key) }

    /// The value under `key`, passed to `body` without copying where the backend can (valid only during the call).
    public func withValue<R>(_ table: Table, _ key: [UInt8], _ body: (UnsafeRawBufferPointer?) throws -> R) throws -> R
    {
        try store.withValue(table, key, body)
    }

    /// Visits entries in key order from the first key ≥ `start` until `body` returns `false`.
    public func scan(_ table: Table, from start: [UInt8]?, _ body: ([UInt8], [UInt8]) throws -> Bool) throws {
        try store.scan(table, from: start, body)
    }

    /// ``scan(_:from:_:)`` over LMDB's own pages: each key and value is valid until `body` returns or writes.
    public func scanBytes(
        _ table: Table, from start: [UInt8]?, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        try store.scanBytes(table, from: start, body)
    }
}

/// Whether a command wrote anything.
final class WriteTracker {
    var happened = false
}

/// Tables kept in memory, in unsigned byte-wise key order: the storage seam's reference backend. Decider and
/// projector tests run on it without an environment, and the seam's conformance test replays one log into it and
/// into LMDB and compares the two byte for byte. Not thread-safe: one transaction's worth of state, used by one
/// task at a time.
public final class MemoryTables: TableWriting {
    /// The tables, in the order their handles were made (``table(at:)`` indexes it).
    public let tables: [Table]
    private var entries: [[(key: [UInt8], value: [UInt8])]]
    public var replaying: Bool

    /// Empty tables named `names` (a projector's ``Projector/tables``).
    public init(_ names: [String], replaying: Bool = false) {
        tables = names.enumerated().map { Table(name: $0.element, id: UInt32($0.offset)) }
        entries = Array(repeating: [], count: names.count)
        self.replaying = replaying
    }

    public func table(at index: Int) -> Table { tables[index] }

    /// The handle of the table named `name`.
    public func table(_ name: String) -> Table? { tables.first { $0.name == name } }

    /// Every entry of `table`, in key order.
    public func entries(_ table: Table) -> [(key: [UInt8], value: [UInt8])] { entries[Int(table.dbi)] }

    public func get(_ table: Table, _ key: [UInt8]) throws -> [UInt8]? {
        let rows = entries[Int(table.dbi)]
        let index = Self.lowerBound(rows, key)
        return index < rows.count && rows[index].key == key ? rows[index].value : nil
    }

    public func withValue<R>(_ table: Table, _ key: [UInt8], _ body: (UnsafeRawBufferPointer?) throws -> R) throws
        -> R
    {
        guard let value = try get(table, key) else { return try body(nil) }
        return try value.withUnsafeBytes { try body($0) }
    }

    public func scan(_ table: Table, from start: [UInt8]?, _ body: ([UInt8], [UInt8]) throws -> Bool) throws {
        // A copy: `body` may write to the table it scans, as it may in an LMDB transaction.
        let rows = entries[Int(table.dbi)]
        var index = start.map { Self.lowerBound(rows, $0) } ?? 0
        while index < rows.count {
            guard try body(rows[index].key, rows[index].value) else { return }
            index += 1
        }
    }

    public func put(_ table: Table, _ key: [UInt8], _ value: [UInt8]) throws {
        let t = Int(table.dbi)
        let index = Self.lowerBound(entries[t], key)
        if index < entries[t].count && entries[t][index].key == key {
            entries[t][index].value = value
        } else {
            entries[t].insert((key, value), at: index)
        }
    }

    @discardableResult
    public func delete(_ table: Table, _ key: [UInt8]) throws -> Bool {
        let t = Int(table.dbi)
        let index = Self.lowerBound(entries[t], key)
        guard index < entries[t].count && entries[t][index].key == key else { return false }
        entries[t].remove(at: index)
        return true
    }

    public func removeAll(_ table: Table) throws { entries[Int(table.dbi)].removeAll() }

    /// The first index whose key is ≥ `key`, comparing bytes unsigned (LMDB's default order).
    private static func lowerBound(_ rows: [(key: [UInt8], value: [UInt8])], _ key: [UInt8]) -> Int {
        var low = 0
        var high = rows.count
        while low < high {
            let mid = (low + high) / 2
            if rows[mid].key.lexicographicallyPrecedes(key) { low = mid + 1 } else { high = mid }
        }
        return low
    }
}
