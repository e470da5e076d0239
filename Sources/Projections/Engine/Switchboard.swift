import EventLog
import SwitchboardEvents
import Foundation
import Logging

/// The settings of the deciders.
public struct EngineSettings: Sendable, Equatable {
    public var lease: LeaseTiming
    public var jobs = JobSettings()
    public var deliveries = DeliverySettings()
    public var contactPolicy = ContactPolicy.open

    public init(lease: LeaseTiming) { self.lease = lease }

    /// TTL 45 s, heartbeat 15 s, job visibility 60 s and 3 attempts, delivery visibility 120 s and 5 attempts.
    public static func defaults() -> EngineSettings {
        // The default timing is valid by construction.
        EngineSettings(lease: try! LeaseTiming())
    }
}

/// Switchboard's state engine: the event log opened with the projector, and every command as an async call
/// that runs its decider inside the write transaction.
///
/// Commands are decided against the state current in the write transaction — across every process sharing
/// the log — and their events (or the rejection) are committed with the state change. The caller's process
/// identity is the owner of leases and claims unless another ``Owner`` is given.
public final class Switchboard: Sendable {
    /// The underlying log.
    public let log: EventLog
    public let settings: EngineSettings
    /// This process as an owner.
    public let owner: Owner
    let sealer: SessionSealer

    /// Opens the log in `configuration.directory` with the Switchboard projector.
    public init(
        _ configuration: EventLogConfiguration, settings: EngineSettings = .defaults(),
        sessionKeyBase64: String? = nil, logger: Logger
    ) throws {
        var configuration = configuration
        configuration.projector = SwitchboardProjector()
        log = try EventLog(configuration, logger: logger)
        self.settings = settings
        owner = Owner(configuration.writer)
        sealer = try SessionSealer(keyBase64: sessionKeyBase64)
    }

    /// Closes the log (see ``EventLog/close()``).
    public func close() async { await log.close() }

    /// Closes the log, blocking the calling thread. For synchronous code only.
    @available(*, noasync, message: "blocks the thread until the writer finishes; use 'await close()'")
    public func close() { log.close() }

    func decide<R: Sendable>(_ body: @escaping @Sendable (inout WriteContext) throws -> R) async throws -> R {
        try await log.transact(body).value
    }

    // MARK: Leases

    /// Acquires `resource`; a grant that begins a new tenure of a channel account's lease settles, in the same
    /// transaction, the deliveries still claimed under earlier tenures
    /// (``DeliveryDecider/settleEarlierTenures(channel:accountID:leaseToken:settings:queue:now:)``).
    public func acquireLease(_ resource: String, as owner: Owner? = nil) async throws -> LeaseDecision {
        let owner = owner ?? self.owner
        let ttl = settings.lease.ttl
        let deliveries = settings.deliveries
        return try await decide { context in
            let decision = try LeaseShell.acquire(resource, owner: owner, ttl: ttl, &context)
            if let grant = decision.grant {
                try DeliveryShell.settleEarlierTenures(
                    resource: resource, leaseToken: grant.token, settings: deliveries, &context)
            }
            return decision
        }
    }

    public func renewLease(_ resource: String, token: UInt64, as owner: Owner? = nil) async throws -> LeaseDecision {
        let owner = owner ?? self.owner
        let ttl = settings.lease.ttl
        return try await decide { try LeaseShell.renew(resource, owner: owner, token: token, ttl: ttl, &$0) }
    }

    public func releaseLease(_ resource: String, token: UInt64, as owner: Owner? = nil) async throws -> LeaseDecision {
        let owner = owner ?? self.owner
        return try await decide { try LeaseShell.release(resource, owner: owner, token: token, &$0) }
    }

    // MARK: Jobs

    public func enqueueJob(_ job: NewJob) async throws -> JobEnqueue {
        let settings = settings.jobs
        return try await decide { try JobShell.enqueue(job, settings: settings, &$0) }
    }

    public func claimJob(as owner: Owner? = nil) async throws -> JobClaim? {
        let owner = owner ?? self.owner
        let settings = settings.jobs
        return try await decide { try JobShell.claim(owner: owner, settings: settings, &$0) }
    }

    public func heartbeatJob(_ jobID: String, token: UInt64, as owner: Owner? = nil) async throws -> JobCommandResult {
        let owner = owner ?? self.owner
        let settings = settings.jobs
        return try await decide { try JobShell.heartbeat(jobID, token: token, owner: owner, settings: settings, &$0) }
    }

    public func completeJob(
        _ jobID: String, token: UInt64, result: String? = nil, modelUsed: String? = nil, as owner: Owner? = nil
    ) async throws -> JobCommandResult {
        let owner = owner ?? self.owner
        return try await decide {
            try JobShell.complete(jobID, token: token, owner: owner, result: result, modelUsed: modelUsed, &$0)
        }
    }

    public func failJob(
        _ jobID: String, token: UInt64, reason: String, message: String, retryable: Bool, as owner: Owner? = nil
    ) async throws -> JobFailureOutcome {
        let owner = owner ?? self.owner
        let settings = settings.jobs
        return try await decide {
            try JobShell.fail(
                jobID, token: token, owner: owner, reason: reason, message: message, retryable: retryable,
                settings: settings, &$0)
        }
    }

    public func requeueJob(_ jobID: String, byOperator name: String, reason: String) async throws -> JobCommandResult {
        try await decide { try JobShell.requeue(jobID, byOperator: name, reason: reason, &$0) }
    }

    // MARK: Deliveries

    public func enqueueDelivery(_ delivery: NewDelivery) async throws -> DeliveryEnqueue {
        let settings = settings.deliveries
        return try await decide { try DeliveryShell.enqueue(delivery, settings: settings, &$0) }
    }

    public func claimDelivery(
        channel: String, accountID: String, leaseToken: UInt64, as owner: Owner? = nil
    ) async throws -> DeliveryClaimResult {
        let owner = owner ?? self.owner
        let settings = settings.deliveries
        return try await decide {
            try DeliveryShell.claim(
                channel: channel, accountID: accountID, owner: owner, leaseToken: leaseToken, settings: settings, &$0)
        }
    }

    /// Up to `limit` delivery claims in one transaction (see ``DeliveryShell/claim(channel:accountID:owner:leaseToken:settings:limit:_:)``).
    ///
    /// `rateLimits` replaces the channel's limits of ``EngineSettings`` for this claim (a transport with limits of its
    /// own: the WhatsApp linked device).
    public func claimDeliveries(
        channel: String, accountID: String, leaseToken: UInt64, limit: Int, rateLimits: RateLimits? = nil,
        as owner: Owner? = nil
    ) async throws -> DeliveryClaims {
        let owner = owner ?? self.owner
        var chosen = settings.deliveries
        if let rateLimits { chosen.rateLimits[channel] = rateLimits }
        let settings = chosen
        return try await decide {
            try DeliveryShell.claim(
                channel: channel, accountID: accountID, owner: owner, leaseToken: leaseToken, settings: settings,
                limit: limit, &$0)
        }
    }

    public func attemptDelivery(
        _ deliveryID: String, token: UInt64, leaseToken: UInt64, as owner: Owner? = nil
    ) async throws -> DeliveryCommandResult {
        let owner = owner ?? self.owner
        return try await decide {
            try DeliveryShell.attempt(deliveryID, token: token, leaseToken: leaseToken, owner: owner, &$0)
        }
    }

    public func deliverySent(
        _ deliveryID: String, token: UInt64, providerMessageID: String?, as owner: Owner? = nil
    ) async throws -> DeliveryCommandResult {
        let owner = owner ?? self.owner
        return try await decide {
            try DeliveryShell.sent(deliveryID, token: token, providerMessageID: providerMessageID, owner: owner, &$0)
        }
    }

    public func deliveryFailed(
        _ deliveryID: String, token: UInt64, permanent: Bool, retryAfter: LogTimestamp? = nil, errorCode: String?,
        message: String, as owner: Owner? = nil
    ) async throws -> DeliveryCommandResult {
        let owner = owner ?? self.owner
        let settings = settings.deliveries
        return try await decide {
            try DeliveryShell.failed(
                deliveryID, token: token, owner: owner, permanent: permanent, retryAfter: retryAfter,
                errorCode: errorCode, message: message, settings: settings, &$0)
        }
    }

    public func deliveryUncertain(
        _ deliveryID: String, token: UInt64, reason: String, as owner: Owner? = nil
    ) async throws -> DeliveryCommandResult {
        let owner = owner ?? self.owner
        let settings = settings.deliveries
        return try await decide {
            try DeliveryShell.uncertain(
                deliveryID, token: token, owner: owner, reason: reason, settings: settings, &$0)
        }
    }

    // MARK: Inbound and contacts

    /// Records an inbound message and, when its sender is allowed, its reply job (under `jobID`, made here by the
    /// caller's task before the transaction).
    public func ingest(_ message: InboundMessage, enqueueJob: Bool = true, jobID: String = timeOrderedID("j"))
        async throws -> IngestResult
    {
        let policy = settings.contactPolicy
        let jobs = settings.jobs
        return try await decide {
            try InboundShell.ingest(
                message, policy: policy, enqueueJob: enqueueJob, jobID: jobID, jobSettings: jobs, &$0)
        }
    }

    public func setContact(
        channel: String, accountID: String, contactID: String, status: ContactStatus, by name: String
    ) async throws {
        _ = try await decide {
            try InboundShell.setContact(
                channel: channel, accountID: accountID, contactID: contactID, status: status, by: name, &$0)
        }
    }

    public func startPairing(channel: String, accountID: String, contactID: String, code: String, by name: String)
        async throws
    {
        _ = try await decide {
            try InboundShell.startPairing(
                channel: channel, accountID: accountID, contactID: contactID, code: code, by: name, &$0)
        }
    }

    public func completePairing(channel: String, accountID: String, contactID: String, code: String) async throws
        -> PairingResult
    {
        try await decide {
            try InboundShell.completePairing(
                channel: channel, accountID: accountID, contactID: contactID, code: code, &$0)
        }
    }

    // MARK: Queries (consistent snapshots)

    /// Read-only queries over the live state.
    public var reader: StateReader { StateReader(log: log) }

    public func lease(_ resource: String) throws -> LeaseState? { try reader.lease(resource) }

    public func job(_ jobID: String) throws -> JobState? { try reader.job(jobID) }

    public func delivery(_ deliveryID: String) throws -> DeliveryState? { try reader.delivery(deliveryID) }

    /// The delivery enqueued under an idempotency key, if any.
    public func deliveryID(idempotencyKey: String) throws -> String? {
        try reader.deliveryID(idempotencyKey: idempotencyKey)
    }

    public func contact(channel: String, accountID: String, contactID: String) throws -> ContactState? {
        try reader.contact(channel: channel, accountID: accountID, contactID: contactID)
    }

    public func conversation(_ id: String) throws -> ConversationState? { try reader.conversation(id) }

    /// Jobs with `status`, in id order.
    public func jobs(_ status: JobStatus) throws -> [JobState] { try reader.jobs(status) }

    /// Deliveries with `status`, in id order.
    public func deliveries(_ status: DeliveryStatus) throws -> [DeliveryState] { try reader.deliveries(status) }

    /// The last `limit` messages of a conversation, oldest first.
    public func history(_ conversationID: String, limit: Int = 50) throws -> [HistoryMessage] {
        try reader.history(conversationID, limit: limit)
    }

    /// The log clock as a writer would stamp it now: the wall clock, never before the last record.
    public func logNow() throws -> LogTimestamp {
        let last = try log.withSnapshot { snapshot -> LogTimestamp? in
            try snapshot.record(at: try snapshot.lastSeq)?.timestamp
        }
        return max(log.configuration.wallClock(), last ?? LogTimestamp(microseconds: .min))
    }

    // MARK: Digest

    /// The digest of the live projection state.
    public func digest() throws -> StateDigest { try reader.digest() }
}
