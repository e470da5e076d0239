import CLMDB
import Foundation
import Synchronization

/// Environments open in this process, by real path. LMDB forbids opening one environment twice in a process.
private let openEnvironments = Mutex<Set<String>>([])

/// An open LMDB environment: the map, its named databases, and the gate that lets the map grow.
///
/// Only `EventLog` code uses this type; nothing outside the module sees LMDB.
final class LMDBEnvironment: @unchecked Sendable {  // @unchecked: mutable state is guarded by `gate`.
    let handle: OpaquePointer
    let path: String
    let gate = TransactionGate()
    let maxMapSize: Int
    /// The current map size; changed only while `gate` is held exclusively.
    private(set) var mapSize: Int
    /// Named databases opened at start, by name.
    private(set) var databases: [String: MDB_dbi] = [:]
    private let realPath: String
    private let closed = Atomic<Bool>(false)

    /// Opens (creating when needed) the environment in `directory`.
    init(
        directory: String, initialMapSize: Int, maxMapSize: Int, maxReaders: UInt32,
        durability: Durability, databases names: [String]
    ) throws {
        try LMDBEnvironment.makeDirectory(directory)
        guard let resolved = realpath(directory, nil) else {
            throw lmdbError(errno, "realpath", path: directory)
        }
        let real = String(cString: resolved)
        free(resolved)
        realPath = real
        let inserted = openEnvironments.withLock { $0.insert(real).inserted }
        guard inserted else {
            throw EventLogError(.alreadyOpen, "the log at \(real) is already open in this process; share one EventLog")
        }
        var env: OpaquePointer?
        var rc = mdb_env_create(&env)
        guard rc == 0, let env else {
            openEnvironments.withLock { _ = $0.remove(real) }
            throw lmdbError(rc, "mdb_env_create", path: directory)
        }
        handle = env
        path = directory
        self.maxMapSize = max(maxMapSize, initialMapSize)
        mapSize = LMDBEnvironment.round(initialMapSize)
        do {
            try check(mdb_env_set_maxdbs(env, 64), "mdb_env_set_maxdbs")
            try check(mdb_env_set_maxreaders(env, maxReaders), "mdb_env_set_maxreaders")
            try check(mdb_env_set_mapsize(env, mapSize), "mdb_env_set_mapsize")
            rc = mdb_env_open(env, directory, UInt32(MDB_NOTLS) | durability.syncFlags, 0o644)
            if rc != 0 { throw lmdbError(rc, "mdb_env_open", path: directory) }
            var info = MDB_envinfo()
            mdb_env_info(env, &info)
            mapSize = info.me_mapsize
            var dead: Int32 = 0
            mdb_reader_check(env, &dead)
            staleReadersCleared = Int(dead)
            try openDatabases(names)
        } catch {
            close()  // every stored property is set, so deinit will run too; close() is idempotent
            throw error
        }
    }

    /// Reader slots of dead processes cleared by `mdb_reader_check` at open.
    private(set) var staleReadersCleared = 0

    private func openDatabases(_ names: [String]) throws {
        try withWriteTransaction { txn in
            var opened: [String: MDB_dbi] = [:]
            for name in names {
                var dbi: MDB_dbi = 0
                try check(mdb_dbi_open(txn.handle, name, UInt32(MDB_CREATE), &dbi), "mdb_dbi_open(\(name))")
                opened[name] = dbi
            }
            databases = opened
        }
    }

    /// Closes the environment once every transaction of this process has ended (it takes the gate
    /// exclusively); later transactions fail with ``EventLogError/Code/closed``.
    func close() {
        gate.lockExclusive()
        defer { gate.unlock() }
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        mdb_env_close(handle)
        openEnvironments.withLock { _ = $0.remove(realPath) }
    }

    deinit { close() }

    /// The id of the last committed transaction of any process: a cheap change detector.
    func lastTransactionID() -> Int {
        var info = MDB_envinfo()
        mdb_env_info(handle, &info)
        return info.me_last_txnid
    }

    /// The bytes of the map in use (up to the last page written).
    func usedBytes() -> Int {
        var info = MDB_envinfo()
        mdb_env_info(handle, &info)
        var stat = MDB_stat()
        mdb_env_stat(handle, &stat)
        return (info.me_last_pgno + 1) * Int(stat.ms_psize)
    }

    /// Clears reader slots left by dead processes; returns how many.
    @discardableResult
    func readerCheck() -> Int {
        var dead: Int32 = 0
        mdb_reader_check(handle, &dead)
        return Int(dead)
    }

    /// Flushes buffers to disk (used after relaxed-mode commits on close).
    func sync() throws(EventLogError) {
        try check(mdb_env_sync(handle, 1), "mdb_env_sync")
    }

    /// The database handle for `name`, opened at start.
    func database(_ name: String) -> MDB_dbi {
        guard let dbi = databases[name] else { preconditionFailure("database \(name) was not opened") }
        return dbi
    }

    // MARK: Transactions

    /// Begins a transaction holding the gate's shared side; adopts a map grown by another process.
    func begin(readOnly: Bool) throws(EventLogError) -> Transaction {
        while true {
            gate.lockShared()
            if closed.load(ordering: .acquiring) {
                gate.unlock()
                throw EventLogError(.closed, "the event log at \(path) is closed")
            }
            var txn: OpaquePointer?
            let rc = mdb_txn_begin(handle, nil, readOnly ? UInt32(MDB_RDONLY) : 0, &txn)
            if rc == 0, let txn {
                return Transaction(handle: txn, gate: Unmanaged.passUnretained(gate))
            }
            gate.unlock()
            guard rc == MDB_MAP_RESIZED else { throw lmdbError(rc, "mdb_txn_begin", path: path) }
            try adoptGrownMap()
        }
    }

    /// Runs `body` in a read-only snapshot on the calling thread. Never call it from inside a write transaction.
    func withReadTransaction<R>(_ body: (borrowing Transaction) throws -> R) throws -> R {
        let txn = try begin(readOnly: true)
        let result = try body(txn)
        txn.abort()
        return result
    }

    /// Runs `body` in a write transaction on the calling thread and commits it.
    func withWriteTransaction<R>(_ body: (borrowing Transaction) throws -> R) throws -> R {
        let txn = try begin(readOnly: false)
        let result: R
        do {
            result = try body(txn)
        } catch {
            txn.abort()
            throw error
        }
        try txn.commit()
        return result
    }

    private func adoptGrownMap() throws(EventLogError) {
        gate.lockExclusive()
        defer { gate.unlock() }
        try check(mdb_env_set_mapsize(handle, 0), "mdb_env_set_mapsize(0)")
        var info = MDB_envinfo()
        mdb_env_info(handle, &info)
        mapSize = info.me_mapsize
    }

    /// Doubles the map (up to `maxMapSize`). Call with no transaction of this process open on this thread.
    /// - Returns: `false` when the map is already at its maximum.
    func grow() throws(EventLogError) -> Bool {
        gate.lockExclusive()
        defer { gate.unlock() }
        var info = MDB_envinfo()
        mdb_env_info(handle, &info)
        let current = max(info.me_mapsize, mapSize)
        guard current < maxMapSize else { return false }
        let next = min(maxMapSize, LMDBEnvironment.round(current * 2))
        try check(mdb_env_set_mapsize(handle, next), "mdb_env_set_mapsize")
        mdb_env_info(handle, &info)
        mapSize = info.me_mapsize
        return true
    }

    /// Explains a failed commit. LMDB reports a short write — what a full disk or a file-size limit gives —
    /// as a plain `EIO`; when the filesystem is (nearly) full or `data.mdb` has reached the process's file-size
    /// limit, the error becomes ``EventLogError/Code/diskFull``.
    func diagnose(_ error: EventLogError) -> EventLogError {
        guard error.code == .io else { return error }
        let slack = 4 << 20
        var fs = statvfs()
        if statvfs(path, &fs) == 0 {
            let free = Int(fs.f_bavail) * Int(fs.f_frsize)
            if free < slack {
                return EventLogError(
                    .diskFull, "no space left on the filesystem of \(path) (\(free) bytes free)", cause: error.cause)
            }
        }
        var limit = rlimit()
        if getrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max {
            var info = stat()
            if stat(path + "/data.mdb", &info) == 0, Int(info.st_size) + slack > Int(limit.rlim_cur) {
                return EventLogError(
                    .diskFull, "data.mdb reached the process's file size limit (RLIMIT_FSIZE \(limit.rlim_cur) bytes)",
                    cause: error.cause)
            }
        }
        return error
    }

    /// Creates `path` and missing parents; a clear error when it is a file or cannot be created.
    static func makeDirectory(_ path: String) throws(EventLogError) {
        var info = stat()
        if stat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFDIR else {
                throw EventLogError(.notAnEnvironment, "\(path) is a file, not a directory holding an LMDB environment")
            }
            return
        }
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty && parent != path { try makeDirectory(parent) }
        if mkdir(path, 0o755) != 0 && errno != EEXIST {
            let code = errno
            if code == EACCES || code == EPERM || code == EROFS {
                throw EventLogError(.permissionDenied, "cannot create the log directory \(path): permission denied")
            }
            throw lmdbError(code, "mkdir", path: path)
        }
    }

    private static func round(_ size: Int) -> Int {
        let unit = 1 << 20
        return max(unit, (size + unit - 1) / unit * unit)
    }
}

extension Durability {
    /// The `mdb_env_open` flags of this durability (for the log and for the raw baseline alike).
    var syncFlags: UInt32 {
        switch self {
        case .durable: 0
        case .relaxed: UInt32(MDB_NOMETASYNC)
        case .unsynced: UInt32(MDB_NOSYNC)
        }
    }
}
