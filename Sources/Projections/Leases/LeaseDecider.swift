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

/// Why a lease command was refused: the `reason` of its `lease.denied` event (the raw value is what is stored).
public enum LeaseDenialReason: String, Sendable, Equatable, CaseIterable {
    /// Another owner holds an unexpired lease (acquire).
    case held
    /// The presented token is not the resource's current one (renew, release).
    case staleToken = "stale_token"
    /// The tenure lapsed; an expired lease cannot be renewed back.
    case expired
    /// The token is current but another owner instance holds it (renew, release).
    case notOwner = "not_owner"
    /// The resource has no tenure to renew or release.
    case notHeld = "not_held"
}

/// Why a lease-gated command (a delivery claim or attempt, a session write) was refused: the `reason` of its
/// `command.rejected` event (the raw value is what is stored).
public enum LeaseGateRefusal: String, Sendable, Equatable, CaseIterable {
    /// The presented lease token is not the current tenure's.
    case staleLease = "stale_lease"
    /// Another owner instance holds the lease under that token.
    case notOwner = "not_owner"
    /// The tenure has lapsed.
    case expired
    /// Nobody holds the lease.
    case notHeld = "not_held"

    /// The gate's reading of a lease refusal: a stale token is a stale lease here (`held` answers an acquisition,
    /// never a presented token).
    fileprivate init(_ reason: LeaseDenialReason) {
        switch reason {
        case .staleToken, .held: self = .staleLease
        case .notOwner: self = .notOwner
        case .expired: self = .expired
        case .notHeld: self = .notHeld
        }
    }
}

/// The outcome of a lease command.
public enum LeaseDecision: Sendable, Equatable {
    case granted(LeaseGrant)
    /// Refused; `holder` is the current live holder, if any.
    case denied(reason: LeaseDenialReason, holder: LeaseGrant?)

    /// The grant, when granted.
    public var grant: LeaseGrant? {
        if case .granted(let grant) = self { return grant }
        return nil
    }
}

/// The lease deciders: pure functions of the lease's state, the command, the log time and the next seq, whose
/// events a shell appends inside the write transaction (see ``Decision``).
public enum LeaseDecider {
    /// Acquires `resource` for `owner` for `ttl`: granted with a new fencing token when free or expired
    /// (recording the expiry first), the same tenure extended when `owner` already holds it live, denied with the
    /// holder otherwise. The token is the seq the `lease.acquired` event gets: `nextSeq`, or `nextSeq + 1` after
    /// a `lease.expired`.
    public static func acquire(
        _ lease: LeaseState?, resource: String, owner: Owner, ttl: Duration, now: LogTimestamp, nextSeq: UInt64
    ) -> Decision<LeaseDecision> {
        if let lease, lease.isLive(at: now), lease.owner == owner {
            return renew(lease, resource: resource, owner: owner, token: lease.token, ttl: ttl, now: now)
        }
        var events: [SwitchboardEvent] = []
        events.reserveCapacity(2)
        let lease = lapse(lease, now: now, into: &events)
        if let lease, lease.isLive(at: now) {
            events.append(denied(resource, owner: owner, token: nil, reason: .held, live: lease))
            return Decision(.denied(reason: .held, holder: grant(lease)), events: events)
        }
        // The seq of the lease.acquired record: greater than every earlier token of the resource.
        let token = nextSeq + UInt64(events.count)
        let expiresAt = now.advanced(by: ttl)
        events.append(
            .leaseAcquired(
                LeaseAcquired(
                    resource: resource, ownerWorkerID: owner.workerID, ownerInstance: owner.instance, token: token,
                    expiresAt: expiresAt, ttlMilliseconds: ttl.milliseconds,
                    previousOwner: lease.map { "\($0.owner.workerID)#\($0.owner.instance)" })))
        return Decision(
            .granted(LeaseGrant(resource: resource, owner: owner, token: token, expiresAt: expiresAt)), events: events)
    }

    /// Extends a live lease held by `owner` under `token`. An expired lease cannot be renewed back (its expiry is
    /// recorded, then the renewal denied).
    public static func renew(
        _ lease: LeaseState?, resource: String, owner: Owner, token: UInt64, ttl: Duration, now: LogTimestamp
    ) -> Decision<LeaseDecision> {
        var events: [SwitchboardEvent] = []
        events.reserveCapacity(2)
        let lease = lapse(lease, now: now, into: &events)
        if let reason = refusal(lease, owner: owner, token: token, now: now) {
            let live = lease.flatMap { $0.isLive(at: now) ? $0 : nil }
            events.append(denied(resource, owner: owner, token: token, reason: reason, live: live))
            return Decision(.denied(reason: reason, holder: live.map(grant)), events: events)
        }
        let expiresAt = now.advanced(by: ttl)
        events.append(
            .leaseRenewed(
                LeaseRenewed(
                    resource: resource, ownerWorkerID: owner.workerID, ownerInstance: owner.instance, token: token,
                    expiresAt: expiresAt)))
        return Decision(
            .granted(LeaseGrant(resource: resource, owner: owner, token: token, expiresAt: expiresAt)), events: events)
    }

    /// Releases the lease held by `owner` under `token` (even past its expiry, while nobody else took it). One
    /// instance's release never frees another's tenure.
    public static func release(
        _ lease: LeaseState?, resource: String, owner: Owner, token: UInt64, now: LogTimestamp
    ) -> Decision<LeaseDecision> {
        guard let lease, lease.held, lease.token == token, lease.owner == owner else {
            let reason = refusal(lease, owner: owner, token: token, now: now) ?? .notHeld
            let live = lease.flatMap { $0.isLive(at: now) ? $0 : nil }
            return Decision(
                .denied(reason: reason, holder: live.map(grant)),
                events: [denied(resource, owner: owner, token: token, reason: reason, live: live)])
        }
        return Decision(
            .granted(grant(lease)),
            events: [
                .leaseReleased(
                    LeaseReleased(
                        resource: resource, ownerWorkerID: owner.workerID, ownerInstance: owner.instance, token: token))
            ])
    }

    /// Whether `owner` holds the lease live under `token` at `now`: `nil` when it does, else why not.
    public static func refusal(_ lease: LeaseState?, owner: Owner, token: UInt64, now: LogTimestamp)
        -> LeaseDenialReason?
    {
        guard let lease else { return .notHeld }
        if lease.token != token { return .staleToken }
        if lease.owner != owner { return .notOwner }
        if !lease.held && now > lease.expiresAt { return .expired }
        if !lease.held { return .notHeld }
        if now > lease.expiresAt { return .expired }
        return nil
    }

    /// The gate of a lease-gated command: `nil` when `owner` holds the lease live under `leaseToken` at `now`,
    /// else the refusal to record (nothing is recorded about the lease itself).
    public static func gate(_ lease: LeaseState?, owner: Owner, leaseToken: UInt64, now: LogTimestamp)
        -> LeaseGateRefusal?
    {
        refusal(lease, owner: owner, token: leaseToken, now: now).map(LeaseGateRefusal.init)
    }

    static func grant(_ lease: LeaseState) -> LeaseGrant {
        LeaseGrant(resource: lease.resource, owner: lease.owner, token: lease.token, expiresAt: lease.expiresAt)
    }

    /// Appends `lease.expired` to `events` for a lease that is held but past its expiry at `now`, and returns the
    /// lease as that event leaves it.
    static func lapse(_ lease: LeaseState?, now: LogTimestamp, into events: inout [SwitchboardEvent]) -> LeaseState? {
        guard var lease, lease.held, now > lease.expiresAt else { return lease }
        events.append(
            .leaseExpired(
                LeaseExpired(
                    resource: lease.resource, ownerWorkerID: lease.owner.workerID, ownerInstance: lease.owner.instance,
                    token: lease.token, expiredAt: lease.expiresAt)))
        lease.held = false
        return lease
    }

    static func denied(
        _ resource: String, owner: Owner, token: UInt64?, reason: LeaseDenialReason, live: LeaseState?
    ) -> SwitchboardEvent {
        .leaseDenied(
            LeaseDenied(
                resource: resource, requesterWorkerID: owner.workerID, requesterInstance: owner.instance,
                holderWorkerID: live?.owner.workerID, holderInstance: live?.owner.instance, holderToken: live?.token,
                holderExpiresAt: live?.expiresAt, reason: reason.rawValue, presentedToken: token))
    }
}

extension Duration {
    /// Whole milliseconds.
    var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}

/// The projections layer's errors (bad input to a command; a rejection is a decision, not an error).
public enum ProjectionErrors: ErrorDomain {
    public static let name = "ProjectionError"
}

/// An error of the projections layer.
public typealias ProjectionError = CodedError<ProjectionErrors>

extension CodedError.Code where Domain == ProjectionErrors {
    /// A command argument is invalid.
    public static let invalidArgument = Self("invalidArgument")
    /// The named job, delivery or entry does not exist.
    public static let notFound = Self("notFound")
    /// The conversation was deleted: it takes no more messages.
    public static let deleted = Self("deleted")
    /// Session values could not be sealed or opened.
    public static let crypto = Self("crypto")
    /// A local session file could not be written or read.
    public static let io = Self("io")
}
