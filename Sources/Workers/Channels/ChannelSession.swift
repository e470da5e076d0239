import EventLog
import Foundation
import Logging
import Projections

/// A channel account's session entries (namespace `<channel>/<account>`, the resource of its lease), on the
/// configured backend: read at start by any process, written only by the lease holder under its current token.
public struct ChannelSession: Sendable {
    public let store: SessionStore
    public let keeper: LeaseKeeper
    let logger: Logger

    public init(store: SessionStore, keeper: LeaseKeeper, logger: Logger) {
        self.store = store
        self.keeper = keeper
        self.logger = logger
    }

    public var namespace: String { keeper.resource }

    /// Every entry, decrypted (empty when nothing was written or the store cannot be read).
    public func entries() -> [String: Data] {
        do {
            return try store.entries(namespace)
        } catch {
            logger.error("session.read.failed", metadata: ["session.namespace": "\(namespace)", "error": "\(error)"])
            return [:]
        }
    }

    public func string(_ key: String) -> String? {
        entries()[key].map { String(decoding: $0, as: UTF8.self) }
    }

    /// Writes `changes` under `tenure` (default: the current one); `false` when this process does not hold the
    /// lease (nothing written) or the write failed.
    @discardableResult
    public func write(_ changes: SessionChanges, under tenure: Tenure? = nil) async -> Bool {
        guard let tenure = tenure ?? keeper.current() else { return false }
        do {
            switch try await store.write(changes, namespace: namespace, leaseToken: tenure.token) {
            case .accepted:
                return true
            case .rejected(let reason):
                logger.warning(
                    "session.write.rejected",
                    metadata: ["session.namespace": "\(namespace)", "session.reason": "\(reason)"])
                keeper.lost(tenure, reason: "session_write_rejected")
                return false
            }
        } catch {
            logger.error("session.write.failed", metadata: ["session.namespace": "\(namespace)", "error": "\(error)"])
            return false
        }
    }
}
