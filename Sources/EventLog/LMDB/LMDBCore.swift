import CLMDB
import Foundation

/// The raw LMDB return code of a failed call, kept as the `cause` of an ``EventLogError``.
struct LMDBStatus: Error, Sendable, CustomStringConvertible {
    let rc: Int32
    let call: String
    var description: String { "\(call): \(String(cString: mdb_strerror(rc))) (\(rc))" }
}

/// Maps an LMDB or errno return code into an ``EventLogError``.
func lmdbError(_ rc: Int32, _ call: String, path: String? = nil) -> EventLogError {
    let status = LMDBStatus(rc: rc, call: call)
    let at = path.map { " at \($0)" } ?? ""
    switch rc {
    case MDB_MAP_FULL:
        return EventLogError(.mapFull, "the LMDB map is full\(at)", cause: status)
    case MDB_INVALID:
        return EventLogError(.notAnEnvironment, "not an LMDB environment\(at)", cause: status)
    case MDB_VERSION_MISMATCH:
        return EventLogError(.versionMismatch, "LMDB version mismatch\(at)", cause: status)
    case MDB_READERS_FULL:
        return EventLogError(.readersFull, "all LMDB reader slots are in use\(at)", cause: status)
    case MDB_PANIC:
        return EventLogError(.panic, "LMDB panic: the environment must be reopened\(at)", cause: status)
    case MDB_CORRUPTED, MDB_PAGE_NOTFOUND:
        return EventLogError(.corruptRecord, "LMDB reports a corrupted database\(at)", cause: status)
    case EACCES, EPERM, EROFS:
        return EventLogError(.permissionDenied, "permission denied\(at)", cause: status)
    case ENOSPC, EFBIG, EDQUOT:
        return EventLogError(
            .diskFull, "the filesystem refused the write (no space or file size limit)\(at)", cause: status)
    case ENOTDIR, ENOENT:
        return EventLogError(.notAnEnvironment, "not a directory holding an LMDB environment\(at)", cause: status)
    case EIO:
        return EventLogError(.io, "I/O error\(at)", cause: status)
    case EINVAL:
        return EventLogError(.invalidArgument, "invalid argument to \(call)\(at)", cause: status)
    default:
        return EventLogError(.lmdb, "\(call) failed\(at)", cause: status)
    }
}

@inline(__always)
func check(_ rc: Int32, _ call: @autoclosure () -> String) throws(EventLogError) {
    if rc != 0 { throw lmdbError(rc, call()) }
}

/// A read/write lock around transactions of one environment in this process.
///
/// LMDB may only change the map size when no transaction of the process is active. Every transaction holds
/// the shared side while it is open; growing the map takes the exclusive side.
final class TransactionGate: @unchecked Sendable {  // @unchecked: the pthread lock is the synchronization.
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>

    init() {
        lock = .allocate(capacity: 1)
        var attr = pthread_rwlockattr_t()
        pthread_rwlockattr_init(&attr)
        // Prefer writers (the map grower) so a stream of readers cannot starve a resize.
        pthread_rwlockattr_setkind_np(&attr, Int32(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP))
        pthread_rwlock_init(lock, &attr)
        pthread_rwlockattr_destroy(&attr)
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    func lockShared() { pthread_rwlock_rdlock(lock) }
    func lockExclusive() { pthread_rwlock_wrlock(lock) }
    func unlock() { pthread_rwlock_unlock(lock) }
}
