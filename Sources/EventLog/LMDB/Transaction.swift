import CLMDB
import Foundation

/// One LMDB transaction, move-only so it cannot be used after it ends or be copied across threads by accident.
///
/// A transaction is bound to the thread that began it (write transactions) and must never be held across an
/// `await`. Ending it releases the environment's transaction gate (top-level transactions only).
struct Transaction: ~Copyable {
    let handle: OpaquePointer
    /// The gate held while this top-level transaction is open; `nil` for nested transactions.
    private let gate: Unmanaged<TransactionGate>?

    init(handle: OpaquePointer, gate: Unmanaged<TransactionGate>?) {
        self.handle = handle
        self.gate = gate
    }

    deinit {
        mdb_txn_abort(handle)
        gate?.takeUnretainedValue().unlock()
    }

    /// Commits the transaction. On failure LMDB has aborted it; nothing of it is visible.
    consuming func commit() throws(EventLogError) {
        let rc = mdb_txn_commit(handle)
        let gate = self.gate
        discard self
        gate?.takeUnretainedValue().unlock()
        if rc != 0 { throw lmdbError(rc, "mdb_txn_commit") }
    }

    /// Aborts the transaction, discarding its changes.
    consuming func abort() {
        mdb_txn_abort(handle)
        let gate = self.gate
        discard self
        gate?.takeUnretainedValue().unlock()
    }

    /// Begins a nested write transaction whose changes reach this one only when it commits.
    func child() throws(EventLogError) -> Transaction {
        var txn: OpaquePointer?
        let env = mdb_txn_env(handle)
        try check(mdb_txn_begin(env, handle, 0, &txn), "mdb_txn_begin(nested)")
        return Transaction(handle: txn!, gate: nil)
    }

    /// A non-owning view for key/value access; valid only while this transaction is open.
    var view: TxnView { TxnView(handle: handle) }
}

/// Key/value operations on an open transaction. It does not own the transaction and must not outlive it.
struct TxnView {
    let handle: OpaquePointer

    // MARK: Key/value access

    /// Calls `body` with the value stored under `key`, or `nil`. The bytes are valid only inside `body`.
    func get<R>(
        _ dbi: MDB_dbi, _ key: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer?) throws -> R
    ) throws -> R {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val()
        let rc = mdb_get(handle, dbi, &k, &v)
        if rc == MDB_NOTFOUND { return try body(nil) }
        try check(rc, "mdb_get")
        return try body(UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
    }

    /// Stores `value` under `key`.
    func put(_ dbi: MDB_dbi, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, append: Bool = false)
        throws(EventLogError)
    {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
        try check(mdb_put(handle, dbi, &k, &v, append ? UInt32(MDB_APPEND) : 0), "mdb_put")
    }

    /// Reserves `count` bytes under `key` and lets `fill` write them in place (no intermediate copy).
    func putReserved(
        _ dbi: MDB_dbi, _ key: UnsafeRawBufferPointer, count: Int, append: Bool,
        _ fill: (UnsafeMutableRawBufferPointer) -> Void
    ) throws(EventLogError) {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val(mv_size: count, mv_data: nil)
        var flags = UInt32(MDB_RESERVE)
        if append { flags |= UInt32(MDB_APPEND) }
        try check(mdb_put(handle, dbi, &k, &v, flags), "mdb_put(reserve)")
        fill(UnsafeMutableRawBufferPointer(start: v.mv_data, count: count))
    }

    /// Deletes `key`; returns whether it existed.
    @discardableResult
    func delete(_ dbi: MDB_dbi, _ key: UnsafeRawBufferPointer) throws(EventLogError) -> Bool {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        let rc = mdb_del(handle, dbi, &k, nil)
        if rc == MDB_NOTFOUND { return false }
        try check(rc, "mdb_del")
        return true
    }

    /// The last key/value of `dbi`, passed to `body`, or `nil` when the database is empty.
    func last<R>(_ dbi: MDB_dbi, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> R) throws -> R? {
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(handle, dbi, &cursor), "mdb_cursor_open")
        defer { mdb_cursor_close(cursor) }
        var k = MDB_val()
        var v = MDB_val()
        let rc = mdb_cursor_get(cursor, &k, &v, MDB_LAST)
        if rc == MDB_NOTFOUND { return nil }
        try check(rc, "mdb_cursor_get(LAST)")
        return try body(
            UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size),
            UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
    }

    /// Visits entries of `dbi` in key order starting at the first key ≥ `start` (or the first key when `nil`)
    /// until `body` returns `false` or the database ends.
    func scan(
        _ dbi: MDB_dbi, from start: UnsafeRawBufferPointer?,
        _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(handle, dbi, &cursor), "mdb_cursor_open")
        defer { mdb_cursor_close(cursor) }
        var k = MDB_val()
        var v = MDB_val()
        var rc: Int32
        if let start {
            k = MDB_val(mv_size: start.count, mv_data: UnsafeMutableRawPointer(mutating: start.baseAddress))
            rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE)
        } else {
            rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST)
        }
        while rc == 0 {
            let more = try body(
                UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size),
                UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
            if !more { return }
            rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)
        }
        if rc != MDB_NOTFOUND { try check(rc, "mdb_cursor_get(NEXT)") }
    }

    /// The number of entries in `dbi`.
    func count(_ dbi: MDB_dbi) throws(EventLogError) -> Int {
        var stat = MDB_stat()
        try check(mdb_stat(handle, dbi, &stat), "mdb_stat")
        return stat.ms_entries
    }

    /// Removes every entry of `dbi` (keeps the database).
    func drop(_ dbi: MDB_dbi) throws(EventLogError) {
        try check(mdb_drop(handle, dbi, 0), "mdb_drop")
    }
}
