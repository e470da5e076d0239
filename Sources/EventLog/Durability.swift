import CLMDB

/// How commits reach the disk.
public enum Durability: String, Sendable, CaseIterable, Codable {
    /// Every append and every ``EventLog/transact(_:)`` is on disk before it returns: a power loss undoes nothing
    /// that was acknowledged. The default.
    ///
    /// A group commit syncs its data pages and writes its meta page — the root that makes it the current state —
    /// without syncing it (`MDB_NOMETASYNC`). The writer resumes the group's callers only once that meta page is on
    /// disk too: after the next group's commit, whose data sync flushes it, or after an explicit `mdb_env_sync`
    /// when nothing more is queued. Under load that is one sync per group commit; a lone append costs its commit's
    /// sync and the meta page's, as a fully synced commit would. Readers (tails, in this process and in others) see
    /// a commit as soon as it is made, before it is durable, so a power loss may undo the last one or two commits:
    /// nobody was told they were durable, but a reader may have seen them. A process crash loses nothing.
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

extension Durability {
    /// The `mdb_env_open` flags of a plain environment whose every commit has this durability when
    /// `mdb_txn_commit` returns: the raw baseline's (``RawLMDBBaseline``), which has no writer to defer
    /// acknowledgements.
    var syncFlags: UInt32 {
        switch self {
        case .durable: 0
        case .relaxed: UInt32(MDB_NOMETASYNC)
        case .unsynced: UInt32(MDB_NOSYNC)
        }
    }

    /// The `mdb_env_open` flags of the log's environment. `durable` leaves the meta page unsynced too: the
    /// group-commit writer syncs it before acknowledging, and ``LMDBEnvironment/withWriteTransaction(_:)`` right
    /// after its commit.
    var environmentFlags: UInt32 { defersMetaSync ? UInt32(MDB_NOMETASYNC) : syncFlags }

    /// Whether commits leave their meta page unsynced and are acknowledged only after a later sync (`durable`).
    var defersMetaSync: Bool { self == .durable }
}
