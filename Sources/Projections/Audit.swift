import EventLog
import SwitchboardEvents
import Foundation

/// One finding of the duplicate-send audit, with its evidence chain of seqs.
public struct AuditFinding: Sendable, Equatable, Codable, CustomStringConvertible {
    /// `multiple_attempts`, `multiple_sends`, `stale_token_send`, `send_after_lease_expiry`,
    /// `inbound_processed_twice`, `uncertain_delivery`, or an invariant violation kind.
    public var kind: String
    /// The delivery, job, message or lease concerned.
    public var subject: String
    /// The records that show it, in log order.
    public var seqs: [UInt64]
    public var message: String

    public var description: String {
        "\(kind)\t\(subject)\tseqs \(seqs.map(String.init).joined(separator: ","))\t\(message)"
    }
}

/// Audits a log for duplicate and unsafe sends, from the records alone.
///
/// Reports every delivery with more than one attempt or more than one send, every send whose token was not
/// current at its log time, every send after its lease expired, every inbound message processed twice, and
/// every uncertain delivery — each with the seqs that show it.
public struct DuplicateAudit {
    struct DeliveryTrail {
        var enqueued: UInt64?
        var attempts: [UInt64] = []
        var sends: [UInt64] = []
        var uncertain: [UInt64] = []
        var resolved = false
    }

    private var deliveries: [String: DeliveryTrail] = [:]
    private var order: [String] = []
    private var inbound: [String: [UInt64]] = [:]
    private var jobsByMessage: [UInt64: [UInt64]] = [:]
    private var checker = InvariantChecker()

    public init() {}

    public mutating func add(_ record: Record) throws {
        add(seq: record.seq, at: record.timestamp, event: try record.event())
    }

    /// Adds the next record, already decoded.
    public mutating func add(seq: UInt64, at time: LogTimestamp, event: SwitchboardEvent?) {
        checker.check(seq: seq, at: time, event: event)
        guard let event else { return }
        let record = (seq: seq, timestamp: time)
        switch event {
        case .deliveryEnqueued(let e):
            if deliveries[e.deliveryID] == nil { order.append(e.deliveryID) }
            deliveries[e.deliveryID, default: DeliveryTrail()].enqueued = record.seq
        case .deliveryAttempted(let e):
            deliveries[e.deliveryID, default: DeliveryTrail()].attempts.append(record.seq)
        case .deliverySent(let e):
            deliveries[e.deliveryID, default: DeliveryTrail()].sends.append(record.seq)
            deliveries[e.deliveryID]?.resolved = true
        case .deliveryUncertain(let e):
            deliveries[e.deliveryID, default: DeliveryTrail()].uncertain.append(record.seq)
        case .messageReceived(let e):
            inbound["\(e.channel)/\(e.accountID)/\(e.externalID)", default: []].append(record.seq)
        case .jobEnqueued(let e):
            if let trigger = e.triggeringMessageSeq { jobsByMessage[trigger, default: []].append(record.seq) }
        case .contactUpdated, .commandRejected, .jobClaimed, .jobHeartbeat, .jobCompleted, .jobFailed, .jobRetried,
            .jobDead, .jobRequeued, .deliveryClaimed, .deliveryFailed, .leaseAcquired, .leaseRenewed, .leaseReleased,
            .leaseExpired, .leaseDenied, .channelConnected, .channelDisconnected, .sessionEntrySet,
            .sessionEntryRemoved, .assistantMessage, .assistantDelta, .toolCall, .toolResult, .toolApproval,
            .workerStarted, .workerStopped:
            break
        }
    }

    /// Every finding, in a stable order.
    public mutating func findings() -> [AuditFinding] {
        checker.finish()
        var out: [AuditFinding] = []
        for id in order {
            guard let trail = deliveries[id] else { continue }
            let base = trail.enqueued.map { [$0] } ?? []
            if trail.attempts.count > 1 {
                out.append(
                    AuditFinding(
                        kind: "multiple_attempts", subject: id, seqs: base + trail.attempts,
                        message: "\(trail.attempts.count) provider calls were started for one message"))
            }
            if trail.sends.count > 1 {
                out.append(
                    AuditFinding(
                        kind: "multiple_sends", subject: id, seqs: base + trail.sends,
                        message: "the provider accepted this message \(trail.sends.count) times"))
            }
            if !trail.uncertain.isEmpty && !trail.resolved {
                out.append(
                    AuditFinding(
                        kind: "uncertain_delivery", subject: id, seqs: base + trail.attempts + trail.uncertain,
                        message: "the send may or may not have reached the recipient; decide by hand"))
            }
        }
        for (key, seqs) in inbound.sorted(by: { $0.value[0] < $1.value[0] }) where seqs.count > 1 {
            out.append(
                AuditFinding(
                    kind: "inbound_processed_twice", subject: key, seqs: seqs,
                    message: "one provider message was recorded \(seqs.count) times"))
        }
        for (trigger, jobs) in jobsByMessage.sorted(by: { $0.key < $1.key }) where jobs.count > 1 {
            out.append(
                AuditFinding(
                    kind: "inbound_processed_twice", subject: "message seq \(trigger)", seqs: [trigger] + jobs,
                    message: "one inbound message started \(jobs.count) jobs"))
        }
        for violation in checker.violations {
            let kind: String
            switch violation.kind {
            case "stale_delivery_token", "stale_lease_token": kind = "stale_token_send"
            default: kind = violation.kind
            }
            out.append(
                AuditFinding(kind: kind, subject: violation.subject, seqs: violation.seqs, message: violation.message))
        }
        return out
    }

    /// Audits every record of `log` up to `last` (all when `nil`); payloads are decoded in parallel and
    /// audited in order.
    public static func run(_ log: EventLog, upTo last: UInt64? = nil) throws -> [AuditFinding] {
        var audit = DuplicateAudit()
        try ProjectionReplay.run(SwitchboardProjector(), of: log, through: last) { batch in
            for record in batch { audit.add(seq: record.meta.seq, at: record.meta.timestamp, event: record.event) }
        }
        return audit.findings()
    }
}

/// The original's operational alert check, over log events.
public struct AlertCheck {
    /// One `[OK|ALERT]` line.
    public struct Line: Sendable, Equatable, Codable, CustomStringConvertible {
        public var alert: Bool
        public var check: String
        public var detail: String
        public var description: String { "[\(alert ? "ALERT" : "OK")] \(check): \(detail)" }
    }

    /// Runs every check over records with time in (now − lookback, now]; bursts over any `burstWindow`.
    public static func run(
        _ log: EventLog, now: LogTimestamp, lookback: Duration, burstWindow: Duration, threshold: Int,
        windowLabel: String? = nil
    ) throws -> [Line] {
        let since = now.advanced(by: .zero - lookback)
        var disconnects: [LogTimestamp] = []
        var connectCount = 0
        var waiting: [String: Int] = [:]  // disconnects per channel account not yet followed by a connect
        var expectingReconnect = 0
        var leaseLost = 0
        var sendFailures = 0
        var loopErrors = 0
        var dead = 0
        var uncertain = 0
        try log.withSnapshot { snapshot in
            try snapshot.forEach { record in
                guard record.timestamp > since, record.timestamp <= now else { return true }
                switch record.type {
                case ChannelDisconnected.eventType:
                    disconnects.append(record.timestamp)
                    // Only a disconnect that announced a reconnect awaits one (a clean shutdown does not).
                    if let e = try? record.decode(ChannelDisconnected.self), e.willReconnect {
                        waiting["\(e.channel)/\(e.accountID)", default: 0] += 1
                        expectingReconnect += 1
                    }
                case ChannelConnected.eventType:
                    // Only a connect that follows a disconnect is a reconnect (a first connect at start is not).
                    if let e = try? record.decode(ChannelConnected.self),
                        let n = waiting["\(e.channel)/\(e.accountID)"], n > 0
                    {
                        waiting["\(e.channel)/\(e.accountID)"] = n - 1
                        connectCount += 1
                    }
                case LeaseExpired.eventType: leaseLost += 1
                case DeliveryFailed.eventType: sendFailures += 1
                case JobDead.eventType: dead += 1
                case DeliveryUncertain.eventType: uncertain += 1
                case CommandRejected.eventType:
                    if let e = try? record.decode(CommandRejected.self), e.command.hasPrefix("delivery.") {
                        loopErrors += 1
                    }
                default: break
                }
                return true
            }
        }
        var worstBurst = 0
        var start = 0
        for end in disconnects.indices {
            while disconnects[end].duration(since: disconnects[start]) > burstWindow { start += 1 }
            worstBurst = max(worstBurst, end - start + 1)
        }
        func line(_ alert: Bool, _ check: String, _ detail: String) -> Line {
            Line(alert: alert, check: check, detail: detail)
        }
        return [
            line(
                worstBurst >= threshold, "channel disconnect burst",
                "\(worstBurst) disconnects in the worst \(windowLabel ?? "\(burstWindow)") window (threshold \(threshold))"
            ),
            line(
                expectingReconnect != connectCount, "disconnect/reconnect mismatch",
                "\(expectingReconnect) disconnects, \(connectCount) reconnects"),
            line(leaseLost > 0, "lease heartbeat lost", "\(leaseLost) lease(s) expired without release"),
            line(loopErrors > 0, "outbound loop errors", "\(loopErrors) delivery command(s) rejected"),
            line(sendFailures > 0, "send failures", "\(sendFailures) failed send attempt(s)"),
            line(dead > 0, "dead jobs", "\(dead) job(s) dead"),
            line(uncertain > 0, "uncertain deliveries", "\(uncertain) delivery(ies) uncertain"),
        ]
    }
}
