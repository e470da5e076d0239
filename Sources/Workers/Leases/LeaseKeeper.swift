import EventLog
import Foundation
import Logging
import Projections
import ServiceLifecycle
import SwitchboardEvents
import Synchronization

/// A lease tenure as this process holds it.
public struct Tenure: Sendable, Equatable {
    public var resource: String
    /// The fencing token (the seq of `lease.acquired`).
    public var token: UInt64
    /// The expiry by the log clock, as last granted.
    public var expiresAt: LogTimestamp
    /// The local instant by which the tenure must be renewed: when the last granting command was submitted,
    /// plus the TTL. Never later than the expiry by the log clock, so a process that cannot renew in time
    /// stops sending before another can take over.
    public var deadline: ContinuousClock.Instant
}

/// Keeps the single-owner lease of one channel account (`<channel>/<account>`): contends for it, renews it
/// every heartbeat, gives it up the moment a renewal is denied or not written before its deadline, and
/// releases it (an event) on graceful shutdown.
///
/// Contention is event-driven: a standby follows the log and tries again the moment the lease is released or
/// expires, or when the holder's expiry passes by the log clock (a timer re-armed by every renewal it sees).
public final class LeaseKeeper: Service, Sendable {
    public let channel: String
    public let accountID: String
    let engine: Switchboard
    let ttl: Duration
    let heartbeat: Duration
    let logger: Logger
    let metrics: WorkerMetrics
    let status: WorkerStatus

    private struct State {
        var tenure: Tenure?
        var listeners: [Wakeup] = []
        /// The holder's expiry, as last seen (a denial or another owner's grant or renewal).
        var holderExpiry: LogTimestamp?
        /// Set when the tail shows the lease released or expired.
        var freed = false
    }

    private let state = Mutex(State())
    private let wakeup = Wakeup()
    private let stopping = Flag()
    /// Set while the keeper waits for ``activate()`` before it contends at all (an idle WhatsApp linked device).
    private let dormant = Flag()
    private let awake = Flag()

    public init(
        channel: String, accountID: String, engine: Switchboard, timing: LeaseTiming, status: WorkerStatus,
        metrics: WorkerMetrics = WorkerMetrics(), logger: Logger
    ) {
        self.channel = channel
        self.accountID = accountID
        self.engine = engine
        ttl = timing.ttl
        heartbeat = timing.heartbeat
        self.status = status
        self.metrics = metrics
        self.logger = logger
    }

    /// Makes the keeper contend only once ``activate()`` is called: a process that may use the account later does
    /// not take the lease from one that uses it now. Call before `run()`.
    public func startDormant() { dormant.set() }

    /// Starts contending (after ``startDormant()``); nothing when already contending.
    public func activate() {
        awake.set()
        wakeup.signal()
    }

    /// The leased resource, `<channel>/<account>`.
    public var resource: String { "\(channel)/\(accountID)" }
    var workerID: String { engine.owner.workerID }

    /// The tenure this process holds now (before its local deadline), or `nil`.
    public func current() -> Tenure? {
        state.withLock { state in
            guard let tenure = state.tenure, ContinuousClock.now < tenure.deadline else { return nil }
            return tenure
        }
    }

    /// Signals `wakeup` whenever the tenure changes.
    public func notify(_ wakeup: Wakeup) { state.withLock { $0.listeners.append(wakeup) } }

    /// Gives up `tenure` at once (a lease-gated command was refused under it).
    public func lost(_ tenure: Tenure, reason: String) {
        guard set(nil, ifToken: tenure.token) else { return }
        logLost(reason: reason)
        wakeup.signal()
    }

    @discardableResult
    private func set(_ tenure: Tenure?, ifToken token: UInt64? = nil) -> Bool {
        let listeners = state.withLock { state -> [Wakeup]? in
            if let token, state.tenure?.token != token { return nil }
            state.tenure = tenure
            return state.listeners
        }
        guard let listeners else { return false }
        metrics.leaseHeld(resource, tenure != nil)
        status.lease(resource, held: tenure != nil)
        for listener in listeners { listener.signal() }
        return true
    }

    private func logLost(reason: String) {
        logger.warning(
            "[\(channel)] Lease heartbeat lost for account '\(accountID)' (owner '\(workerID)')",
            metadata: ["lease.resource": "\(resource)", "lease.reason": "\(reason)"])
    }

    public func run() async throws {
        status.lease(resource, held: false)
        metrics.leaseHeld(resource, false)
        let start = try engine.log.lastSeq() + 1
        await ServiceLoop(stopping: stopping, wakeup: wakeup, logger: logger).run(
            beside: [.init(name: "tail") { try await self.follow(from: start) }]
        ) {
            await self.keep()
        }
    }

    /// Follows the log for this resource's lease events.
    private func follow(from start: UInt64) async throws {
        let me = engine.owner.instance
        for try await record in engine.log.tail(from: start) {
            guard record.type.hasPrefix("lease.") else { continue }
            guard let event = record.followedEvent(logger) else { continue }
            switch event {
            case .leaseReleased(let released) where released.resource == resource:
                state.withLock { $0.freed = true }
                wakeup.signal()
            case .leaseExpired(let expired) where expired.resource == resource:
                state.withLock { $0.freed = true }
                wakeup.signal()
            case .leaseAcquired(let acquired) where acquired.resource == resource && acquired.ownerInstance != me:
                let mine = state.withLock { state -> Tenure? in
                    state.holderExpiry = acquired.expiresAt
                    state.freed = false
                    return state.tenure
                }
                // Another owner holds a newer tenure: ours is over, whatever our clock says.
                if let mine, mine.token < acquired.token { lost(mine, reason: "taken_over") }
                wakeup.signal()
            case .leaseRenewed(let renewed) where renewed.resource == resource && renewed.ownerInstance != me:
                state.withLock {
                    $0.holderExpiry = renewed.expiresAt
                    $0.freed = false
                }
                wakeup.signal()
            default:
                continue
            }
        }
    }

    /// Contends, holds, and on shutdown releases.
    private func keep() async {
        while dormant.isSet && !awake.isSet && !stopping.isSet && !Task.isCancelled {
            await wakeup.wait()
        }
        // A cancelled task (not a graceful shutdown) also ends the loop: its waits would return at once.
        while !stopping.isSet && !Task.isCancelled {
            state.withLock { $0.freed = false }
            let submitted = ContinuousClock.now
            let decision: LeaseDecision
            do {
                decision = try await engine.acquireLease(resource)
            } catch {
                logger.error("lease.acquire.failed", metadata: ["lease.resource": "\(resource)", "error": "\(error)"])
                await wakeup.wait(until: .now + .seconds(1))
                continue
            }
            if let grant = decision.grant {
                logger.info(
                    "[\(channel)] Lease acquired for account '\(accountID)' by '\(workerID)'",
                    metadata: [
                        "lease.resource": "\(resource)", "lease.token": "\(grant.token)",
                        "lease.expires_at": "\(grant.expiresAt)",
                    ])
                let tenure = Tenure(
                    resource: resource, token: grant.token, expiresAt: grant.expiresAt, deadline: submitted + ttl)
                set(tenure)
                await hold(tenure)
                continue
            }
            var holderName = "?"
            if case .denied(_, let holder) = decision, let holder {
                holderName = holder.owner.workerID
                state.withLock { $0.holderExpiry = holder.expiresAt }
            }
            logger.info(
                "[\(channel)] Lease held by '\(holderName)' for account '\(accountID)', retrying...",
                metadata: ["lease.resource": "\(resource)"])
            await standBy()
        }
    }

    /// Waits until the lease is released or expires (by the log clock), or shutdown.
    private func standBy() async {
        while !stopping.isSet && !Task.isCancelled {
            let (freed, expiry) = state.withLock { ($0.freed, $0.holderExpiry) }
            if freed { return }
            guard let expiry else {
                // A denial without a live holder (not expected): try again after a while, or when the log says.
                await wakeup.wait(until: .now + .seconds(1))
                return
            }
            // The decider judges expiry strictly (`now > expiresAt`): wake just after it.
            let due = expiry.advanced(by: .milliseconds(1))
            if LogTimestamp.wallClock() > due { return }
            await wakeup.wait(until: due.localInstant)
        }
    }

    /// Renews `tenure` every heartbeat until it is lost or the process stops (then releases it).
    private func hold(_ initial: Tenure) async {
        var tenure = initial
        var renewedAt = ContinuousClock.now
        while true {
            await wakeup.wait(until: renewedAt + heartbeat)
            guard state.withLock({ $0.tenure?.token == tenure.token }) else { return }  // lost meanwhile
            if stopping.isSet || Task.isCancelled {
                await release(tenure)
                return
            }
            let now = ContinuousClock.now
            guard now >= renewedAt + heartbeat else { continue }
            if now >= tenure.deadline {
                lost(tenure, reason: "deadline_passed")
                return
            }
            let resource = resource
            let token = tenure.token
            let engine = engine
            let outcome = await firstResult(before: tenure.deadline) {
                try await engine.renewLease(resource, token: token)
            }
            switch outcome {
            case .success(let decision)?:
                guard let grant = decision.grant else {
                    var reason = "denied"
                    if case .denied(let why, _) = decision { reason = "\(why)" }
                    lost(tenure, reason: reason)
                    return
                }
                metrics.renewLatency(resource, ContinuousClock.now - now)
                tenure.expiresAt = grant.expiresAt
                tenure.deadline = now + ttl
                renewedAt = now
                guard set(tenure, ifToken: tenure.token) else { return }
                logger.debug(
                    "lease.renewed",
                    metadata: ["lease.resource": "\(resource)", "lease.expires_at": "\(grant.expiresAt)"])
            case .failure(let error)?:
                logger.error("lease.renew.failed", metadata: ["lease.resource": "\(resource)", "error": "\(error)"])
                renewedAt = now - heartbeat + .milliseconds(100)  // try again shortly, until the deadline
            case nil:
                lost(tenure, reason: "renewal_not_written_before_expiry")
                return
            }
        }
    }

    private func release(_ tenure: Tenure) async {
        set(nil, ifToken: tenure.token)
        do {
            let decision = try await engine.releaseLease(resource, token: tenure.token)
            if decision.grant != nil {
                logger.info(
                    "[\(channel)] Lease released for account '\(accountID)' by '\(workerID)'",
                    metadata: ["lease.resource": "\(resource)", "lease.token": "\(tenure.token)"])
            } else {
                logger.warning("lease.release.refused", metadata: ["lease.resource": "\(resource)"])
            }
        } catch {
            logger.error("lease.release.failed", metadata: ["lease.resource": "\(resource)", "error": "\(error)"])
        }
    }
}
