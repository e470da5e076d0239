import Foundation
import Logging

/// What the writer's instrumentation hears (``EventLogConfiguration/writerProbe``): package-level, for tests that
/// model what a power cut would keep.
package enum WriterEvent: Sendable {
    /// `mdb_txn_commit` returned for a group that wrote (a group that only read is aborted, with no event): when
    /// the transaction had changes, LMDB synced its data pages (unless the log is ``Durability/unsynced``), then
    /// wrote its meta page — synced only by a later sync.
    case committed
    /// An explicit `mdb_env_sync` returned: everything written to the data file before it is durable.
    case synced
    /// Callers are about to be told their commands committed, with these seqs (one range per command).
    case acknowledging([Range<UInt64>])
}

/// Called on the writer thread, synchronously: the writer waits while it runs.
package typealias WriterProbe = @Sendable (WriterEvent) -> Void

/// The groups committed but not yet known to be durable, with ``Durability/durable``: a commit syncs its data
/// pages but not its meta page, so its callers wait until a later sync covers that page — the next commit's data
/// sync (the same file), or an explicit `mdb_env_sync` when the writer has nothing more queued.
///
/// The writer thread alone uses it. Ids are LMDB transaction ids, which increase along the environment's commits
/// (of every process), so the groups' requirements increase in commit order too.
struct PendingAcknowledgements {
    /// Every transaction up to this id, of any process, is durable as far as this writer knows.
    private(set) var durableThrough: Int
    /// Committed groups in commit order, each with the id of the transaction that must be durable before its
    /// callers are told.
    private var groups: [(needs: Int, commands: [WriteCommand])] = []

    init(durableThrough: Int) { self.durableThrough = durableThrough }

    var isEmpty: Bool { groups.isEmpty }

    /// Records a committed group that needs transaction `needs` durable: its own commit, or — for a group that
    /// wrote nothing — the last commit it read. Returns the commands that may be acknowledged now, in order.
    mutating func committed(_ commands: [WriteCommand], needs: Int) -> [WriteCommand] {
        groups.append((needs, commands))
        return takeDurable()
    }

    /// A commit's data sync made every transaction before `txnID` durable (their meta pages were written before
    /// it began). Returns the commands that may be acknowledged now, in order.
    mutating func synced(before txnID: Int) -> [WriteCommand] {
        durableThrough = max(durableThrough, txnID - 1)
        return takeDurable()
    }

    /// An explicit sync began once transaction `txnID` was the last one: it and every group recorded here are
    /// durable. Returns every pending command, in order.
    mutating func syncedAll(through txnID: Int) -> [WriteCommand] {
        durableThrough = max(durableThrough, txnID)
        return takeAll()
    }

    /// Removes and returns every pending command, in order (their sync failed).
    mutating func takeAll() -> [WriteCommand] {
        defer { groups.removeAll() }
        return groups.flatMap(\.commands)
    }

    private mutating func takeDurable() -> [WriteCommand] {
        let ready = groups.prefix { $0.needs <= durableThrough }
        guard !ready.isEmpty else { return [] }
        groups.removeFirst(ready.count)
        return ready.flatMap(\.commands)
    }
}

/// The outcome of one group's write transaction on LMDB.
struct GroupCommit {
    /// Whether and how the transaction was committed.
    enum Kind {
        /// No command changed anything: the transaction was aborted and nothing was synced.
        case readOnly
        /// A command changed the transaction: LMDB committed it, syncing its data pages first (unless the log
        /// is ``Durability/unsynced``).
        case synced
        /// A command tried to write but no write is known to have succeeded (a body that swallowed a failed
        /// put): committed, but the commit may have had nothing to write and so synced nothing.
        case unsure
    }

    var kind: Kind
    /// The transaction's id: the commit's own, or one past the last commit it read when it was aborted.
    var txnID: Int
    /// The last seq appended, or `nil` if none.
    var lastSeq: UInt64?
}

/// The commit of a group failed with an operating-system error: it may have been the data sync, and after a
/// failed `fdatasync` Linux may drop the unwritten pages and report success to the next one, so the groups
/// waiting for that sync can no longer be told they are durable.
struct CommitCallFailed: Error {
    let error: EventLogError

    /// `error` as this when it carries an errno (a write or the sync failed), unchanged when it is LMDB's own
    /// (a full map while saving the free list: nothing was written).
    static func classify(_ error: EventLogError) -> any Error {
        guard let status = error.cause as? LMDBStatus, status.rc > 0 else { return error }
        return CommitCallFailed(error: error)
    }
}

extension WriteCommand {
    /// The seqs the command appended in its committed run, or `nil` for a rejected decider.
    var committedSeqs: Range<UInt64>? {
        switch self {
        case .append(let command): command.seqs
        case .transact(let command): command.committedSeqs
        }
    }
}

extension GroupCommitWriter {
    /// Resumes the callers of a committed group: at once, or once a sync has covered its meta page.
    func acknowledge(_ batch: [WriteCommand], _ commit: GroupCommit) {
        guard defersAcknowledgement else {
            resumeCommitted(batch)
            return
        }
        // A commit that changed the log synced its data file first: that carried the meta pages of the commits
        // before it (this process's waiting groups among them) to disk.
        if commit.kind == .synced { resumeCommitted(pending.synced(before: commit.txnID)) }
        // A group that wrote nothing needs only what it read to be durable.
        let needs = commit.kind == .readOnly ? commit.txnID - 1 : commit.txnID
        resumeCommitted(pending.committed(batch, needs: needs))
    }

    /// Syncs the data file, which makes every waiting group durable, and resumes their callers; when the sync
    /// fails, they learn that their commands committed but may not survive a power loss.
    func syncPending() {
        guard case .lmdb(let env, _, _) = engine else { return }
        let last = env.lastTransactionID()
        do {
            try env.sync()
        } catch {
            failPending(error, env: env)
            return
        }
        syncs.add(1, ordering: .relaxed)
        probe?(.synced)
        resumeCommitted(pending.syncedAll(through: last))
    }

    func resumeCommitted(_ commands: [WriteCommand]) {
        guard !commands.isEmpty else { return }
        probe?(.acknowledging(commands.compactMap(\.committedSeqs)))
        for command in commands { command.resumeCommitted() }
        if defersAcknowledgement { awaited += commands.count }
    }

    func fail(_ batch: [WriteCommand], _ error: any Error, env: LMDBEnvironment) {
        let error = (error as? EventLogError).map(env.diagnose) ?? error
        logger.error("eventlog.commit.failed", metadata: ["error": "\(error)"])
        for command in batch { command.resume(throwing: error) }
        if defersAcknowledgement { awaited += batch.count }
    }

    /// Fails the waiting groups after the sync that was to make them durable failed (or may have).
    func failPending(_ cause: EventLogError, env: LMDBEnvironment) {
        let commands = pending.takeAll()
        guard !commands.isEmpty else { return }
        let cause = env.diagnose(cause)
        let error = EventLogError(
            cause.code == .diskFull ? .diskFull : .io,
            "committed and visible to readers, but syncing it to disk failed, so it may not survive a power loss",
            cause: cause)
        logger.error("eventlog.sync.failed", metadata: ["error": "\(cause)", "eventlog.commands": "\(commands.count)"])
        for command in commands { command.resume(throwing: error) }
        awaited += commands.count
    }
}
