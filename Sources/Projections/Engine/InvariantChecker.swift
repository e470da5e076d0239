import EventLog
import SwitchboardEvents
import Foundation

/// A broken safety property found in a log, with the seqs that show it.
public struct InvariantViolation: Sendable, Equatable, CustomStringConvertible {
    /// Which property broke.
    public enum Kind: String, Sendable, Equatable, Codable, CaseIterable {
        /// A lease granted to an owner while another owner held it unexpired.
        case twoLeaseHolders = "two_lease_holders"
        /// A lease renewed under a token that was not live.
        case staleLeaseRenewal = "stale_lease_renewal"
        /// A job claimed while its previous claim was live.
        case claimWhileClaimed = "claim_while_claimed"
        /// A job heartbeat, completion or failure under a token that was not the job's current claim.
        case staleJobToken = "stale_job_token"
        /// A delivery attempt or send under a token that was not the delivery's current claim.
        case staleDeliveryToken = "stale_delivery_token"
        /// A delivery claim or attempt under a lease token that was not current (superseded, released, none).
        case staleLeaseToken = "stale_lease_token"
        /// A delivery attempt under the current lease token after that lease expired.
        case sendAfterLeaseExpiry = "send_after_lease_expiry"
        /// A job that failed and was neither retried nor dead at the end of the log.
        case jobLeftFailed = "job_left_failed"
    }

    public var kind: Kind
    /// The lease resource, job or delivery concerned.
    public var subject: String
    /// The evidence, in log order.
    public var seqs: [UInt64]
    public var message: String

    public var description: String {
        "\(kind) \(subject) at seqs \(seqs.map(String.init).joined(separator: ",")): \(message)"
    }
}

/// Checks Switchboard's safety properties from the log alone, record by record, with the log clock:
/// never two unexpired holders of one lease at any log time; no job heartbeat or completion and no delivery
/// claim, attempt or send under a stale token or lease; no job left in a failed state.
public struct InvariantChecker {
    struct Lease {
        var owner: Owner
        var token: UInt64
        var expiresAt: LogTimestamp
        var held: Bool
        var grantSeq: UInt64
    }

    struct Job {
        var token: UInt64 = 0
        var claimSeq: UInt64 = 0
        var running = false
        var visibleUntil = LogTimestamp(microseconds: 0)
        var status = "pending"
        var failedSeq: UInt64?
    }

    struct Delivery {
        var token: UInt64 = 0
        var claimSeq: UInt64 = 0
        var resource = ""
        var leaseToken: UInt64 = 0
    }

    private var leases: [String: Lease] = [:]
    private var jobs: [String: Job] = [:]
    private var deliveries: [String: Delivery] = [:]
    public private(set) var violations: [InvariantViolation] = []
    /// Records checked.
    public private(set) var records = 0

    public init() {}

    /// Final job statuses (`pending`, `running`, `completed`, `dead`), by job id.
    public var jobStatuses: [String: String] { jobs.mapValues(\.status) }

    private mutating func flag(_ kind: InvariantViolation.Kind, _ subject: String, _ seqs: [UInt64], _ message: String)
    {
        violations.append(InvariantViolation(kind: kind, subject: subject, seqs: seqs, message: message))
    }

    /// Checks the next record (records must come in seq order).
    public mutating func check(_ record: Record) throws {
        check(seq: record.seq, at: record.timestamp, event: try record.event())
    }

    /// Checks the next record, already decoded (`nil` for a type this build does not know).
    public mutating func check(seq: UInt64, at now: LogTimestamp, event: SwitchboardEvent?) {
        records += 1
        guard let event else { return }
        switch event {
        case .leaseAcquired(let e):
            let owner = Owner(workerID: e.ownerWorkerID, instance: e.ownerInstance)
            if let current = leases[e.resource], current.held, now <= current.expiresAt, current.owner != owner {
                flag(
                    .twoLeaseHolders, e.resource, [current.grantSeq, seq],
                    "\(e.resource) granted to \(owner) while \(current.owner) held it until \(current.expiresAt)")
            }
            leases[e.resource] = Lease(owner: owner, token: e.token, expiresAt: e.expiresAt, held: true, grantSeq: seq)
        case .leaseRenewed(let e):
            guard var lease = leases[e.resource], lease.token == e.token, lease.held, now <= lease.expiresAt else {
                flag(
                    .staleLeaseRenewal, e.resource, [leases[e.resource]?.grantSeq ?? 0, seq].filter { $0 > 0 },
                    "\(e.resource) renewed under token \(e.token) that is not live")
                return
            }
            lease.expiresAt = e.expiresAt
            leases[e.resource] = lease
        case .leaseReleased(let e):
            if leases[e.resource]?.token == e.token { leases[e.resource]?.held = false }
        case .leaseExpired(let e):
            if leases[e.resource]?.token == e.token { leases[e.resource]?.held = false }

        case .jobEnqueued(let e):
            jobs[e.jobID] = Job()
        case .jobClaimed(let e):
            var job = jobs[e.jobID] ?? Job()
            if job.running && now <= job.visibleUntil {
                flag(
                    .claimWhileClaimed, e.jobID, [job.claimSeq, seq],
                    "job \(e.jobID) claimed while its claim was live")
            }
            job.token = e.token
            job.claimSeq = seq
            job.running = true
            job.visibleUntil = e.visibleUntil
            job.status = "running"
            jobs[e.jobID] = job
        case .jobHeartbeat(let e):
            guard var job = jobs[e.jobID], job.running, job.token == e.token, now <= job.visibleUntil else {
                flag(
                    .staleJobToken, e.jobID, [jobs[e.jobID]?.claimSeq ?? 0, seq].filter { $0 > 0 },
                    "job \(e.jobID) heartbeat under token \(e.token) that is stale or past its deadline")
                return
            }
            job.visibleUntil = e.visibleUntil
            jobs[e.jobID] = job
        case .jobCompleted(let e):
            guard var job = jobs[e.jobID], job.running, job.token == e.token else {
                flag(
                    .staleJobToken, e.jobID, [jobs[e.jobID]?.claimSeq ?? 0, seq].filter { $0 > 0 },
                    "job \(e.jobID) completed under token \(e.token)")
                return
            }
            job.running = false
            job.status = "completed"
            jobs[e.jobID] = job
        case .jobFailed(let e):
            guard var job = jobs[e.jobID], job.running, job.token == e.token else {
                flag(
                    .staleJobToken, e.jobID, [jobs[e.jobID]?.claimSeq ?? 0, seq].filter { $0 > 0 },
                    "job \(e.jobID) failed under token \(e.token)")
                return
            }
            job.running = false
            job.status = "failed"
            job.failedSeq = seq
            jobs[e.jobID] = job
        case .jobRetried(let e):
            jobs[e.jobID]?.status = "pending"
            jobs[e.jobID]?.failedSeq = nil
        case .jobDead(let e):
            jobs[e.jobID]?.status = "dead"
            jobs[e.jobID]?.failedSeq = nil
        case .jobRequeued(let e):
            jobs[e.jobID]?.status = "pending"
        case .jobCancelled(let e):
            jobs[e.jobID]?.running = false
            jobs[e.jobID]?.status = "cancelled"
            jobs[e.jobID]?.failedSeq = nil

        case .deliveryClaimed(let e):
            if let reason = leaseProblem(e.leaseResource, e.leaseToken, now) {
                flag(
                    .staleLeaseToken, e.deliveryID, [leases[e.leaseResource]?.grantSeq ?? 0, seq].filter { $0 > 0 },
                    "delivery \(e.deliveryID) claimed under lease token \(e.leaseToken): \(reason)")
            }
            deliveries[e.deliveryID] = Delivery(
                token: e.token, claimSeq: seq, resource: e.leaseResource, leaseToken: e.leaseToken)
        case .deliveryAttempted(let e):
            guard let delivery = deliveries[e.deliveryID], delivery.token == e.token else {
                flag(
                    .staleDeliveryToken, e.deliveryID,
                    [deliveries[e.deliveryID]?.claimSeq ?? 0, seq].filter { $0 > 0 },
                    "delivery \(e.deliveryID) attempted under token \(e.token)")
                return
            }
            if let reason = leaseProblem(delivery.resource, e.leaseToken, now) {
                flag(
                    reason == "expired" ? .sendAfterLeaseExpiry : .staleLeaseToken, e.deliveryID,
                    [leases[delivery.resource]?.grantSeq ?? 0, delivery.claimSeq, seq].filter { $0 > 0 },
                    "delivery \(e.deliveryID) attempted under lease token \(e.leaseToken): \(reason)")
            }
        case .deliverySent(let e):
            if deliveries[e.deliveryID]?.token != e.token {
                flag(
                    .staleDeliveryToken, e.deliveryID,
                    [deliveries[e.deliveryID]?.claimSeq ?? 0, seq].filter { $0 > 0 },
                    "delivery \(e.deliveryID) sent under token \(e.token)")
            }
        case .messageReceived, .contactUpdated, .commandRejected, .deliveryEnqueued, .deliveryFailed,
            .deliveryUncertain, .leaseDenied, .channelConnected, .channelDisconnected, .inboundIgnored,
            .webhookRejected, .deliveryStatusReported, .sessionEntrySet,
            .sessionEntryRemoved, .assistantMessage, .assistantDelta, .conversationSummarized, .toolCall, .toolResult,
            .toolApproval, .conversationRenamed, .conversationDeleted, .jobRetriggered, .commandHandled,
            .workerStarted, .workerStopped:
            break
        }
    }

    private func leaseProblem(_ resource: String, _ token: UInt64, _ now: LogTimestamp) -> String? {
        guard let lease = leases[resource] else { return "no lease" }
        if lease.token != token { return "not the current token \(lease.token)" }
        if !lease.held { return "released" }
        if now > lease.expiresAt { return "expired" }
        return nil
    }

    /// End-of-log checks: every job settled (`pending`, `running`, `completed` or `dead`).
    public mutating func finish() {
        for (jobID, job) in jobs.sorted(by: { $0.key < $1.key }) where job.status == "failed" {
            flag(.jobLeftFailed, jobID, [job.failedSeq ?? 0], "job \(jobID) failed without being retried or dead")
        }
    }

    /// Checks every record of `log` (payloads decoded in parallel, checked in order).
    public static func check(_ log: EventLog) throws -> InvariantChecker {
        var checker = InvariantChecker()
        try ProjectionReplay.run(SwitchboardProjector(), of: log) { batch in
            for record in batch { checker.check(seq: record.meta.seq, at: record.meta.timestamp, event: record.event) }
        }
        checker.finish()
        return checker
    }
}
