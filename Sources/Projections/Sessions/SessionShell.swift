import Crypto
import EventLog
import SwitchboardEvents
import Foundation

// MARK: - Shell: load, decide, append inside the write transaction

/// The SessionDecider's shell: loads its state inside the write transaction, calls the pure decider with the
/// transaction's log time and next seq, and appends its events.
public enum SessionShell {
    /// ``SessionDecider/write(_:namespace:changes:owner:leaseToken:sealer:now:)`` against the namespace's stored lease, appended.
    public static func write(
        namespace: String, changes: SessionChanges, owner: Owner, leaseToken: UInt64, sealer: SessionSealer,
        _ context: inout WriteContext
    ) throws -> SessionWriteResult {
        let lease = try LeaseShell.load(namespace, context)
        return try context.commit(
            SessionDecider.write(
                lease, namespace: namespace, changes: changes, owner: owner, leaseToken: leaseToken, sealer: sealer,
                now: context.now))
    }
}

/// Files-on-disk session store (`local` backend): one JSON file per namespace, written to a temporary file,
