import CLMDB

/// How commits reach the disk.
public enum Durability: String, Sendable, CaseIterable, Codable {
    /// Every commit is fully synced (data and meta page) before `append` returns. The default.
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
    /// The `mdb_env_open` flags of this durability (for the log and for the raw baseline alike).
    var syncFlags: UInt32 {
        switch self {
        case .durable: 0
        case .relaxed: UInt32(MDB_NOMETASYNC)
        case .unsynced: UInt32(MDB_NOSYNC)
        }
    }
}
