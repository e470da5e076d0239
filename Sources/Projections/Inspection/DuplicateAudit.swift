import EventLog
import SwitchboardEvents
import Foundation

/// What a finding of the duplicate-send audit is. Every kind is a real safety problem; none appears on a healthy
/// log (retries after a definite failure and unresolved uncertain deliveries are in ``AuditSummary`` instead).
public enum AuditFindingKind: String, Sendable, Equatable, Codable, CaseIterable {
    /// The provider accepted one message part (one delivery id) more than once: more than one `delivery.sent`.
    case multipleSends = "multiple_sends"
    /// A provider call (`delivery.attempted`) started after an earlier call of the same delivery ended
    /// `delivery.uncertain` or without any outcome: the recipient may get the message twice.
    case attemptAfterUncertain = "attempt_after_uncertain"
    /// A provider call started after the provider had already accepted the delivery (`delivery.sent`).
    case attemptAfterSent = "attempt_after_sent"
    /// A delivery claim, call or send under a claim or lease token that was not current.
    case staleTokenSend = "stale_token_send"
    /// A provider call under a lease that had expired by the log clock.
    case sendAfterLeaseExpiry = "send_after_lease_expiry"
    /// One provider message recorded twice, or one inbound message that started more than one root job.
    case inboundProcessedTwice = "inbound_processed_twice"
    /// Two owners held one lease at the same log time (``InvariantViolation/Kind/twoLeaseHolders``).
    case twoLeaseHolders = "two_lease_holders"
    /// A lease renewed under a token that was not live.
    case staleLeaseRenewal = "stale_lease_renewal"
    /// A job claimed while its previous claim was live.
    case claimWhileClaimed = "claim_while_claimed"
    /// A job heartbeat, completion or failure under a stale claim token.
    case staleJobToken = "stale_job_token"
    /// A job left failed (neither retried nor dead) at the end of the audited records.
    case jobLeftFailed = "job_left_failed"

    /// The finding kind of an invariant violation.
    public init(_ violation: InvariantViolation.Kind) {
        switch violation {
        case .twoLeaseHolders: self = .twoLeaseHolders
        case .staleLeaseRenewal: self = .staleLeaseRenewal
        case .claimWhileClaimed: self = .claimWhileClaimed
        case .staleJobToken: self = .staleJobToken
        case .staleDeliveryToken, .staleLeaseToken: self = .staleTokenSend
        case .sendAfterLeaseExpiry: self = .sendAfterLeaseExpiry
        case .jobLeftFailed: self = .jobLeftFailed
        }
    }
}

/// One finding of the duplicate-send audit, with its evidence chain of seqs.
public struct AuditFinding: Sendable, Equatable, Codable, CustomStringConvertible {
    /// What went wrong.
    public var kind: AuditFindingKind
    /// The delivery, job, message or lease concerned.
    public var subject: String
    /// The records that show it, in log order.
    public var seqs: [UInt64]
    /// What happened, in words.
    public var message: String

    public var description: String {
        "\(kind.rawValue)\t\(subject)\tseqs \(seqs.map(String.init).joined(separator: ","))\t\(message)"
    }
}

/// One delivery and the records that show its state.
public struct DeliveryEvidence: Sendable, Equatable, Codable, CustomStringConvertible {
    /// The delivery.
    public var deliveryID: String
    /// Its `delivery.enqueued`, last `delivery.attempted` and, when there is one, its `delivery.uncertain`.
    public var seqs: [UInt64]

    public var description: String { "\(deliveryID) (seqs \(seqs.map(String.init).joined(separator: ",")))" }
}

/// What the audit saw that is not a finding: counts, expected retries and items for an operator.
public struct AuditSummary: Sendable, Equatable, Codable {
    /// The last seq audited (0 for an empty log).
    public var lastSeq: UInt64 = 0
    /// Deliveries enqueued.
    public var deliveries = 0
    /// Provider calls started (`delivery.attempted`).
    public var attempts = 0
    /// Provider acceptances (`delivery.sent`).
    public var sends = 0
    /// Provider calls started after the previous call of the same delivery failed definitely (`delivery.failed`,
    /// e.g. a 429 with `retryAfter`): expected, not a finding.
    public var retriesAfterFailure = 0
    /// Deliveries whose last call ended `uncertain` and that nobody called again: the message may or may not have
    /// reached the recipient. Switchboard does not resend them; an operator checks with the recipient or the
    /// provider.
    public var uncertain: [DeliveryEvidence] = []
    /// Deliveries whose last call has no outcome yet (in flight on a live log, or its sender died and the claim
    /// has not expired yet).
    public var withoutOutcome: [DeliveryEvidence] = []

    public init() {}
}

/// The result of ``DuplicateAudit``: findings (each a real safety problem) and the summary.
public struct AuditReport: Sendable, Equatable, Codable {
    /// Every finding, in a stable order: per delivery in enqueue order, then inbound, then invariant violations.
    public var findings: [AuditFinding]
    public var summary: AuditSummary

    /// `true` when there is no finding.
    public var clean: Bool { findings.isEmpty }
}

/// Audits a log for duplicate and unsafe sends, from the records alone.
///
/// A finding is only:
/// - more than one `delivery.sent` for one delivery (``AuditFindingKind/multipleSends``);
/// - a provider call started after an earlier call of the same delivery ended uncertain or without an outcome
///   (``AuditFindingKind/attemptAfterUncertain``), or after it was sent (``AuditFindingKind/attemptAfterSent``).
///   The event vocabulary v1 has **no operator decision for a delivery** (no requeue or resolve event like
///   `job.requeued`), so every such call is a finding; a `delivery.failed` that follows `delivery.uncertain`
///   (the decider's `retry` uncertain policy) does not make the outcome known;
/// - a claim, call or send under a stale claim or lease token, or a call after the lease expired;
/// - an inbound message processed twice, and the other ``InvariantChecker`` violations.
///
/// A call after a definite failure is a retry, counted in ``AuditSummary/retriesAfterFailure``; a delivery left
/// uncertain is listed in ``AuditSummary/uncertain`` for an operator.
public struct DuplicateAudit {
    /// The outcome of a delivery's latest provider call.
    enum LastCall: Equatable {
        /// No call yet.
        case notCalled
        /// Called at `attempt` under claim `token`; no outcome recorded.
        case open(attempt: UInt64, token: UInt64)
        /// Known not delivered.
        case failed
        /// May have reached the provider.
        case uncertain(attempt: UInt64?, uncertain: UInt64)
        /// Accepted by the provider.
        case sent(attempt: UInt64?, sent: UInt64)
    }

    struct DeliveryTrail {
        var enqueued: UInt64?
        var sends: [UInt64] = []
        var last = LastCall.notCalled
        var findings: [AuditFinding] = []

        var base: [UInt64] { enqueued.map { [$0] } ?? [] }
    }

    private var deliveries: [String: DeliveryTrail] = [:]
    private var order: [String] = []
    private var inbound: [String: [UInt64]] = [:]
    private var inboundOrder: [String] = []
    private var jobsByMessage: [UInt64: [UInt64]] = [:]
    private var checker = InvariantChecker()
    private var summary = AuditSummary()

    public init() {}

    /// Adds the next record (records must come in seq order).
    public mutating func add(_ record: Record) throws {
        add(seq: record.seq, at: record.timestamp, event: try record.event())
    }

    /// Adds the next record, already decoded (`nil` for a type this build does not know). This is the only place
    /// the audit looks at decoded events.
    public mutating func add(seq: UInt64, at time: LogTimestamp, event: SwitchboardEvent?) {
        checker.check(seq: seq, at: time, event: event)
        summary.lastSeq = seq
        guard let event else { return }
        switch event {
        case .deliveryEnqueued(let e):
            if deliveries[e.deliveryID] == nil { order.append(e.deliveryID) }
            deliveries[e.deliveryID, default: DeliveryTrail()].enqueued = seq
            summary.deliveries += 1
        case .deliveryAttempted(let e):
            summary.attempts += 1
            attempted(e.deliveryID, seq: seq, token: e.token)
        case .deliverySent(let e):
            summary.sends += 1
            if deliveries[e.deliveryID] == nil { order.append(e.deliveryID) }
            deliveries[e.deliveryID, default: DeliveryTrail()].sends.append(seq)
            switch deliveries[e.deliveryID]?.last {
            case .open(let attempt, _)?, .uncertain(let attempt?, _)?:
                deliveries[e.deliveryID]?.last = .sent(attempt: attempt, sent: seq)
            case .sent(let attempt, _)?:
                deliveries[e.deliveryID]?.last = .sent(attempt: attempt, sent: seq)
            case .notCalled?, .failed?, .uncertain(nil, _)?, nil:
                deliveries[e.deliveryID]?.last = .sent(attempt: nil, sent: seq)
            }
        case .deliveryFailed(let e):
            // Only a failure of the open call is definite; after `uncertain` the call may still have gone out.
            if case .open(_, let token)? = deliveries[e.deliveryID]?.last, token == e.token {
                deliveries[e.deliveryID]?.last = .failed
            }
        case .deliveryUncertain(let e):
            if case .open(let attempt, let token)? = deliveries[e.deliveryID]?.last, token == e.token {
                deliveries[e.deliveryID]?.last = .uncertain(attempt: attempt, uncertain: seq)
            } else if deliveries[e.deliveryID]?.last == .notCalled {
                deliveries[e.deliveryID]?.last = .uncertain(attempt: nil, uncertain: seq)
            }
        case .messageReceived(let e):
            let key = "\(e.channel)/\(e.accountID)/\(e.externalID)"
            if inbound[key] == nil { inboundOrder.append(key) }
            inbound[key, default: []].append(seq)
        case .jobEnqueued(let e):
            // Child jobs of a running job share its trigger, and a Regenerate asks for another reply to it on
            // purpose: only the first reply job counts.
            if let trigger = e.triggeringMessageSeq, e.parentJobID == nil, e.kind != JobKind.regenerate.rawValue {
                jobsByMessage[trigger, default: []].append(seq)
            }
        case .contactUpdated, .commandRejected, .jobClaimed, .jobHeartbeat, .jobCompleted, .jobFailed, .jobRetried,
            .jobDead, .jobRequeued, .jobCancelled, .conversationRenamed, .conversationDeleted,
            .jobRetriggered, .commandHandled, .deliveryClaimed,
            .leaseAcquired, .leaseRenewed, .leaseReleased, .leaseExpired,
            .leaseDenied, .channelConnected, .channelDisconnected, .inboundIgnored, .webhookRejected,
            .deliveryStatusReported, .sessionEntrySet, .sessionEntryRemoved,
            .assistantMessage, .assistantDelta, .conversationSummarized, .toolCall, .toolResult, .toolApproval,
            .workerStarted,
            .workerStopped:
            break
        }
    }

    /// A provider call for `deliveryID` started at `seq`: judge it by the outcome of the previous call.
    private mutating func attempted(_ deliveryID: String, seq: UInt64, token: UInt64) {
        if deliveries[deliveryID] == nil { order.append(deliveryID) }
        var trail = deliveries[deliveryID, default: DeliveryTrail()]
        switch trail.last {
        case .notCalled:
            break
        case .failed:
            summary.retriesAfterFailure += 1
        case .open(let previous, _):
            trail.findings.append(
                AuditFinding(
                    kind: .attemptAfterUncertain, subject: deliveryID, seqs: trail.base + [previous, seq],
                    message: "a provider call started while the call at seq \(previous) had no recorded outcome"))
        case .uncertain(let previous, let uncertain):
            trail.findings.append(
                AuditFinding(
                    kind: .attemptAfterUncertain, subject: deliveryID,
                    seqs: trail.base + (previous.map { [$0] } ?? []) + [uncertain, seq],
                    message: "a provider call started after the outcome at seq \(uncertain) was uncertain"))
        case .sent(let previous, let sent):
            trail.findings.append(
                AuditFinding(
                    kind: .attemptAfterSent, subject: deliveryID,
                    seqs: trail.base + (previous.map { [$0] } ?? []) + [sent, seq],
                    message: "a provider call started after the provider accepted the message at seq \(sent)"))
        }
        trail.last = .open(attempt: seq, token: token)
        deliveries[deliveryID] = trail
    }

    /// The findings and the summary of every record added so far.
    public mutating func report() -> AuditReport {
        checker.finish()
        var findings: [AuditFinding] = []
        var summary = self.summary
        for id in order {
            guard let trail = deliveries[id] else { continue }
            findings += trail.findings
            if trail.sends.count > 1 {
                findings.append(
                    AuditFinding(
                        kind: .multipleSends, subject: id, seqs: trail.base + trail.sends,
                        message: "the provider accepted this message \(trail.sends.count) times"))
            }
            switch trail.last {
            case .uncertain(let attempt, let uncertain):
                summary.uncertain.append(
                    DeliveryEvidence(deliveryID: id, seqs: trail.base + (attempt.map { [$0] } ?? []) + [uncertain]))
            case .open(let attempt, _):
                summary.withoutOutcome.append(DeliveryEvidence(deliveryID: id, seqs: trail.base + [attempt]))
            case .notCalled, .failed, .sent:
                break
            }
        }
        for key in inboundOrder {
            guard let seqs = inbound[key], seqs.count > 1 else { continue }
            findings.append(
                AuditFinding(
                    kind: .inboundProcessedTwice, subject: key, seqs: seqs,
                    message: "one provider message was recorded \(seqs.count) times"))
        }
        for (trigger, jobs) in jobsByMessage.sorted(by: { $0.key < $1.key }) where jobs.count > 1 {
            findings.append(
                AuditFinding(
                    kind: .inboundProcessedTwice, subject: "message seq \(trigger)", seqs: [trigger] + jobs,
                    message: "one inbound message started \(jobs.count) jobs"))
        }
        for violation in checker.violations {
            findings.append(
                AuditFinding(
                    kind: AuditFindingKind(violation.kind), subject: violation.subject, seqs: violation.seqs,
                    message: violation.message))
        }
        return AuditReport(findings: findings, summary: summary)
    }

    /// Audits every record of `log` up to `last` (all when `nil`); payloads are decoded in parallel and
    /// audited in order.
    public static func run(_ log: EventLog, upTo last: UInt64? = nil) throws -> AuditReport {
        var audit = DuplicateAudit()
        try ProjectionReplay.run(SwitchboardProjector(), of: log, through: last) { batch in
            for record in batch { audit.add(seq: record.meta.seq, at: record.meta.timestamp, event: record.event) }
        }
        return audit.report()
    }
}
