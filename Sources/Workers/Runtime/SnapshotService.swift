import EventLog
import SwitchboardEvents
import Foundation
import Logging
import Projections
import ServiceLifecycle

/// Takes a snapshot of the projections every `every` events (see ``StateSnapshots``) and keeps the newest
/// `keep`, so `replay --at` rebuilds from a nearby point instead of from seq 1.
///
/// Every agent process may run it: processes take snapshots one at a time (a lock file), and one that finds a
/// recent enough snapshot skips. Woken by commits, not by polling. A failed snapshot (a full disk, say) is
/// logged and retried at the next interval; it never stops the agent.
public struct SnapshotService: Service {
    let log: EventLog
    let every: UInt64
    let keep: Int
    let logger: Logger

    /// Creates the service over an open log (opened with the Switchboard projector).
    public init(log: EventLog, every: UInt64, keep: Int, logger: Logger) {
        precondition(every > 0, "a SnapshotService needs an interval; do not run one when snapshots are off")
        self.log = log
        self.every = every
        self.keep = keep
        self.logger = logger
    }

    public func run() async throws {
        let snapshots = StateSnapshots(logDirectory: log.configuration.directory)
        while !Task.isShuttingDownGracefully {
            let newest = snapshots.list().last?.seq ?? 0
            let reached = await cancelWhenGracefulShutdown { await log.waitForLastSeq(atLeast: newest + every) }
            guard reached != nil, !Task.isShuttingDownGracefully else { return }
            do {
                let taken = try await onOwnThread { try snapshots.take(of: log, minimumGap: every, logger: logger) }
                if taken != nil {
                    let pruned = snapshots.prune(keeping: keep)
                    if !pruned.isEmpty {
                        logger.info(
                            "snapshot.pruned",
                            metadata: ["snapshot.seqs": "\(pruned.map(String.init).joined(separator: ","))"])
                    }
                    continue
                }
            } catch {
                logger.error("snapshot.failed", metadata: ["error": "\(error)"])
            }
            // Another process is taking one, or this one failed: look again in a while rather than spin.
            // (A graceful shutdown ends the wait early.)
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(5)) }
        }
    }

    /// Runs blocking LMDB and file work off the cooperative pool.
    private func onOwnThread<R: Sendable>(_ body: @escaping @Sendable () throws -> R) async throws -> R {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
        }
    }
}
