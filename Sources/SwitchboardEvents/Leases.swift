import EventLog
/// A worker process acquired the single-owner lease on a resource (`lease.acquired`).
///
/// Written by the acquiring worker through a command decided by the Projections module (the resource must
/// be free, released or expired). Ownership is by process instance, not by worker id alone, so two processes
/// started with the same `WORKER_ID` never share a lease.
public struct LeaseAcquired: EventPayload {
    public static let eventType = "lease.acquired"

    /// The leased resource, `<channel>/<accountID>`, e.g. `whatsapp/default`.
    public var resource: String
    /// The operator-chosen worker id of the new owner.
    public var ownerWorkerID: String
    /// The new owner's per-process instance id (the UUID of its `WriterIdentity.instanceID`).
    public var ownerInstance: String
    /// The fencing token of this tenure, greater than every earlier token of the resource; renewals keep it.
    public var token: UInt64
    /// The log time the lease expires unless renewed.
    public var expiresAt: LogTimestamp
    /// The lease duration the owner asked for, in milliseconds.
    public var ttlMilliseconds: Int64
    /// The previous owner (`<workerID>#<instance>`), when the lease had one.
    public var previousOwner: String?

    /// Creates a `lease.acquired` event.
    public init(
        resource: String, ownerWorkerID: String, ownerInstance: String, token: UInt64, expiresAt: LogTimestamp,
        ttlMilliseconds: Int64, previousOwner: String? = nil
    ) {
        self.resource = resource
        self.ownerWorkerID = ownerWorkerID
        self.ownerInstance = ownerInstance
        self.token = token
        self.expiresAt = expiresAt
        self.ttlMilliseconds = ttlMilliseconds
        self.previousOwner = previousOwner
    }
}

/// The owner extended its lease (`lease.renewed`).
///
/// Accepted only from the current owner instance with the current, unexpired token (decided by the
/// Projections module); an expired lease must be acquired again.
public struct LeaseRenewed: EventPayload {
    public static let eventType = "lease.renewed"

    /// The leased resource.
    public var resource: String
    /// The owner's worker id.
    public var ownerWorkerID: String
    /// The owner's per-process instance id.
    public var ownerInstance: String
    /// The fencing token of the tenure being renewed.
    public var token: UInt64
    /// The new expiry.
    public var expiresAt: LogTimestamp

    /// Creates a `lease.renewed` event.
    public init(
        resource: String, ownerWorkerID: String, ownerInstance: String, token: UInt64, expiresAt: LogTimestamp
    ) {
        self.resource = resource
        self.ownerWorkerID = ownerWorkerID
        self.ownerInstance = ownerInstance
        self.token = token
        self.expiresAt = expiresAt
    }
}

/// The owner gave up its lease, e.g. on shutdown (`lease.released`).
///
/// Accepted only from the current owner instance with the current token (decided by the Projections module),
/// so a stale process cannot release its successor's lease.
public struct LeaseReleased: EventPayload {
    public static let eventType = "lease.released"

    /// The leased resource.
    public var resource: String
    /// The owner's worker id.
    public var ownerWorkerID: String
    /// The owner's per-process instance id.
    public var ownerInstance: String
    /// The fencing token of the tenure being released.
    public var token: UInt64

    /// Creates a `lease.released` event.
    public init(resource: String, ownerWorkerID: String, ownerInstance: String, token: UInt64) {
        self.resource = resource
        self.ownerWorkerID = ownerWorkerID
        self.ownerInstance = ownerInstance
        self.token = token
    }
}

/// A lease was found past its expiry (`lease.expired`).
///
/// Recorded by a decider (the Projections module) when it observes, at its transaction's log time, that the
/// tenure ``token`` expired without renewal or release. The owner fields name the tenure that lapsed.
public struct LeaseExpired: EventPayload {
    public static let eventType = "lease.expired"

    /// The leased resource.
    public var resource: String
    /// The worker id of the lapsed owner.
    public var ownerWorkerID: String
    /// The per-process instance id of the lapsed owner.
    public var ownerInstance: String
    /// The fencing token of the lapsed tenure.
    public var token: UInt64
    /// The expiry time of the tenure (its last `expiresAt`).
    public var expiredAt: LogTimestamp

    /// Creates a `lease.expired` event.
    public init(
        resource: String, ownerWorkerID: String, ownerInstance: String, token: UInt64, expiredAt: LogTimestamp
    ) {
        self.resource = resource
        self.ownerWorkerID = ownerWorkerID
        self.ownerInstance = ownerInstance
        self.token = token
        self.expiredAt = expiredAt
    }
}

/// A lease request was refused (`lease.denied`).
///
/// Written by the decider (the Projections module) so contention and stale owners are visible in the log.
/// The holder fields describe the current tenure, and are `nil` when the resource has none.
public struct LeaseDenied: EventPayload {
    public static let eventType = "lease.denied"

    /// The requested resource.
    public var resource: String
    /// The worker id of the refused requester.
    public var requesterWorkerID: String
    /// The per-process instance id of the refused requester.
    public var requesterInstance: String
    /// The worker id of the current holder.
    public var holderWorkerID: String?
    /// The per-process instance id of the current holder.
    public var holderInstance: String?
    /// The fencing token of the current tenure.
    public var holderToken: UInt64?
    /// The expiry of the current tenure.
    public var holderExpiresAt: LogTimestamp?
    /// Why: `held` (another instance holds an unexpired lease), `stale_token` (the presented token is not the
    /// current one), `expired` (renewal of a lapsed tenure), `not_owner` (renewal or release by a
    /// non-owner) or `not_held` (renewal or release of a lease nobody holds).
    public var reason: String
    /// The token the requester presented (renewal or release); `nil` for an acquisition.
    public var presentedToken: UInt64?

    /// Creates a `lease.denied` event.
    public init(
        resource: String, requesterWorkerID: String, requesterInstance: String, holderWorkerID: String?,
        holderInstance: String?, holderToken: UInt64?, holderExpiresAt: LogTimestamp?, reason: String,
        presentedToken: UInt64? = nil
    ) {
        self.resource = resource
        self.requesterWorkerID = requesterWorkerID
        self.requesterInstance = requesterInstance
        self.holderWorkerID = holderWorkerID
        self.holderInstance = holderInstance
        self.holderToken = holderToken
        self.holderExpiresAt = holderExpiresAt
        self.reason = reason
        self.presentedToken = presentedToken
    }
}
