import EventLog
import SwitchboardEvents
import Foundation

/// Lease timing: TTL 45 s and heartbeat 15 s by default; a heartbeat not below TTL/2 is refused.
public struct LeaseTiming: Sendable, Equatable {
    public var ttl: Duration
    public var heartbeat: Duration

    /// - Throws: ``ProjectionError`` when `heartbeat` is not below half of `ttl`.
    public init(ttl: Duration = .seconds(45), heartbeat: Duration = .seconds(15)) throws(ProjectionError) {
        guard ttl > .zero, heartbeat > .zero else {
            throw ProjectionError(.invalidArgument, "lease TTL and heartbeat must be positive")
        }
        guard heartbeat < ttl / 2 else {
            throw ProjectionError(
                .invalidArgument, "lease heartbeat \(heartbeat) must be below half the TTL \(ttl)")
        }
        self.ttl = ttl
        self.heartbeat = heartbeat
    }
}

/// A granted (or renewed) lease tenure.
public struct LeaseGrant: Sendable, Equatable {
    public var resource: String
    public var owner: Owner
    /// The fencing token: strictly increasing per resource; renewals keep it.
    public var token: UInt64
    public var expiresAt: LogTimestamp
}

/// The outcome of a lease command.
public enum LeaseDecision: Sendable, Equatable {
    case granted(LeaseGrant)
    /// Refused: `reason` is `held`, `stale_token`, `expired`, `not_owner` or `not_held`; `holder` is the current
    /// live holder, if any.
    case denied(reason: String, holder: LeaseGrant?)

    /// The grant, when granted.
    public var grant: LeaseGrant? {
        if case .granted(let grant) = self { return grant }
        return nil
    }
}

/// Lease deciders: run inside the write transaction (``EventLog/transact(_:)``).
public enum LeaseDecider {
    static func load(_ resource: String, _ context: borrowing WriteContext) throws -> LeaseState? {
        try context.tables.load(LeaseState.self, ProjectionTables.leases, Key(resource))
    }

    static func grant(_ lease: LeaseState) -> LeaseGrant {
        LeaseGrant(resource: lease.resource, owner: lease.owner, token: lease.token, expiresAt: lease.expiresAt)
    }

    /// Records `lease.expired` for a lease that is held but past its expiry at `context.now`.
    static func expireIfNeeded(_ lease: LeaseState?, _ context: inout WriteContext) throws -> LeaseState? {
        guard var lease, lease.held, context.now > lease.expiresAt else { return lease }
        try context.append(
            .leaseExpired(
                LeaseExpired(
                    resource: lease.resource, ownerWorkerID: lease.owner.workerID, ownerInstance: lease.owner.instance,
                    token: lease.token, expiredAt: lease.expiresAt)))
        lease.held = false
        return lease
    }

    /// Acquires `resource` for `owner` for `ttl`: granted with a new fencing token when free or expired
    /// (recording the expiry), the same tenure extended when `owner` already holds it, denied with the holder
    /// otherwise.
    public static func acquire(
        _ resource: String, owner: Owner, ttl: Duration, _ context: inout WriteContext
    ) throws -> LeaseDecision {
        let lease = try expireIfNeeded(try load(resource, context), &context)
        if let lease, lease.isLive(at: context.now) {
            if lease.owner == owner {
                return try renew(resource, owner: owner, token: lease.token, ttl: ttl, &context)
            }
            try context.append(
                .leaseDenied(
                    LeaseDenied(
                        resource: resource, requesterWorkerID: owner.workerID, requesterInstance: owner.instance,
                        holderWorkerID: lease.owner.workerID, holderInstance: lease.owner.instance,
                        holderToken: lease.token, holderExpiresAt: lease.expiresAt, reason: "held", presentedToken: nil)
                ))
            return .denied(reason: "held", holder: grant(lease))
        }
        let token = context.nextSeq  // the seq of the lease.acquired record: greater than every earlier token
        let expiresAt = context.now.advanced(by: ttl)
        try context.append(
            .leaseAcquired(
                LeaseAcquired(
                    resource: resource, ownerWorkerID: owner.workerID, ownerInstance: owner.instance, token: token,
                    expiresAt: expiresAt, ttlMilliseconds: ttl.milliseconds,
                    previousOwner: lease.map { "\($0.owner.workerID)#\($0.owner.instance)" })))
        return .granted(LeaseGrant(resource: resource, owner: owner, token: token, expiresAt: expiresAt))
    }

    /// Extends a live lease held by `owner` under `token`. An expired lease cannot be renewed back.
    public static func renew(
        _ resource: String, owner: Owner, token: UInt64, ttl: Duration, _ context: inout WriteContext
    ) throws -> LeaseDecision {
        let lease = try expireIfNeeded(try load(resource, context), &context)
        if let reason = refusal(lease, owner: owner, token: token, now: context.now) {
            try deny(resource, owner: owner, token: token, reason: reason, lease: lease, &context)
            return .denied(reason: reason, holder: lease.flatMap { $0.isLive(at: context.now) ? grant($0) : nil })
        }
        let expiresAt = context.now.advanced(by: ttl)
        try context.append(
            .leaseRenewed(
                LeaseRenewed(
                    resource: resource, ownerWorkerID: owner.workerID, ownerInstance: owner.instance, token: token,
                    expiresAt: expiresAt)))
        return .granted(LeaseGrant(resource: resource, owner: owner, token: token, expiresAt: expiresAt))
    }

    /// Releases the lease held by `owner` under `token`. One instance's release never frees another's tenure.
    public static func release(
        _ resource: String, owner: Owner, token: UInt64, _ context: inout WriteContext
    ) throws -> LeaseDecision {
        let lease = try load(resource, context)
        guard let lease, lease.held, lease.token == token, lease.owner == owner else {
            let reason = refusal(lease, owner: owner, token: token, now: context.now) ?? "not_held"
            try deny(resource, owner: owner, token: token, reason: reason, lease: lease, &context)
            return .denied(reason: reason, holder: lease.flatMap { $0.isLive(at: context.now) ? grant($0) : nil })
        }
        try context.append(
            .leaseReleased(
                LeaseReleased(
                    resource: resource, ownerWorkerID: owner.workerID, ownerInstance: owner.instance, token: token)))
        return .granted(grant(lease))
    }

    /// Checks that `owner` holds `resource` live under `token` now; `nil` when it does, else the reason.
    static func refusal(_ lease: LeaseState?, owner: Owner, token: UInt64, now: LogTimestamp) -> String? {
        guard let lease else { return "not_held" }
        if lease.token != token { return "stale_token" }
        if lease.owner != owner { return "not_owner" }
        if !lease.held && now > lease.expiresAt { return "expired" }
        if !lease.held { return "not_held" }
        if now > lease.expiresAt { return "expired" }
        return nil
    }

    static func deny(
        _ resource: String, owner: Owner, token: UInt64?, reason: String, lease: LeaseState?,
        _ context: inout WriteContext
    ) throws {
        let live = lease.flatMap { $0.isLive(at: context.now) ? $0 : nil }
        try context.append(
            .leaseDenied(
                LeaseDenied(
                    resource: resource, requesterWorkerID: owner.workerID, requesterInstance: owner.instance,
                    holderWorkerID: live?.owner.workerID, holderInstance: live?.owner.instance,
                    holderToken: live?.token,
                    holderExpiresAt: live?.expiresAt, reason: reason, presentedToken: token)))
    }

    /// Checks a lease-gated command: `owner` must hold `resource` live under `leaseToken` at `context.now`.
    /// Returns the refusal reason (recording nothing), or `nil`.
    public static func checkHolder(
        _ resource: String, owner: Owner, leaseToken: UInt64, _ context: borrowing WriteContext
    ) throws -> String? {
        let lease = try load(resource, context)
        guard let reason = refusal(lease, owner: owner, token: leaseToken, now: context.now) else { return nil }
        return reason == "stale_token" ? "stale_lease" : reason
    }
}

extension Duration {
    /// Whole milliseconds.
    var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}

/// An error of the projections layer (bad input to a command; a rejection is a decision, not an error).
public struct ProjectionError: Error, Sendable, CustomStringConvertible, Equatable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// A command argument is invalid.
        public static let invalidArgument = Code("invalidArgument")
        /// The named job, delivery or entry does not exist.
        public static let notFound = Code("notFound")
        /// Session values could not be sealed or opened.
        public static let crypto = Code("crypto")
        /// A local session file could not be written or read.
        public static let io = Code("io")
        public var description: String { name }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "ProjectionError(\(code)): \(message)" }
    public static func == (lhs: ProjectionError, rhs: ProjectionError) -> Bool { lhs.code == rhs.code }
}
