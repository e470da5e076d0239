import EventLog
import SwitchboardEvents
import Foundation

// MARK: - Shell: load, decide, append inside the write transaction

/// The LeaseDecider's shell: loads its state inside the write transaction, calls the pure decider with the
/// transaction's log time and next seq, and appends its events.
public enum LeaseShell {
    static func load(_ resource: String, _ context: borrowing WriteContext) throws -> LeaseState? {
        try context.tables.load(LeaseState.self, ProjectionTables.leases, Key(resource))
    }

    /// ``LeaseDecider/acquire(_:resource:owner:ttl:now:nextSeq:)`` of the stored lease, appended.
    public static func acquire(
        _ resource: String, owner: Owner, ttl: Duration, _ context: inout WriteContext
    ) throws -> LeaseDecision {
        let lease = try load(resource, context)
        return try context.commit(
            LeaseDecider.acquire(
                lease, resource: resource, owner: owner, ttl: ttl, now: context.now, nextSeq: context.nextSeq))
    }

    /// ``LeaseDecider/renew(_:resource:owner:token:ttl:now:)`` of the stored lease, appended.
    public static func renew(
        _ resource: String, owner: Owner, token: UInt64, ttl: Duration, _ context: inout WriteContext
    ) throws -> LeaseDecision {
        let lease = try load(resource, context)
        return try context.commit(
            LeaseDecider.renew(lease, resource: resource, owner: owner, token: token, ttl: ttl, now: context.now))
    }

    /// ``LeaseDecider/release(_:resource:owner:token:now:)`` of the stored lease, appended.
    public static func release(
        _ resource: String, owner: Owner, token: UInt64, _ context: inout WriteContext
    ) throws -> LeaseDecision {
        let lease = try load(resource, context)
        return try context.commit(
            LeaseDecider.release(lease, resource: resource, owner: owner, token: token, now: context.now))
    }

    /// ``LeaseDecider/gate(_:owner:leaseToken:now:)`` of the stored lease of `resource` (records nothing).
    public static func gate(
        _ resource: String, owner: Owner, leaseToken: UInt64, _ context: borrowing WriteContext
    ) throws -> LeaseGateRefusal? {
        LeaseDecider.gate(try load(resource, context), owner: owner, leaseToken: leaseToken, now: context.now)
    }
}
