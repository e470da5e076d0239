import EventLog
import SwitchboardEvents
import Foundation

/// The original's operational alert check, over log events.
public struct AlertCheck {
    /// One `[OK|ALERT]` line.
    public struct Line: Sendable, Equatable, Codable, CustomStringConvertible {
        public var alert: Bool
        public var check: Check
        public var detail: String
        public var description: String { "[\(alert ? "ALERT" : "OK")] \(check.rawValue): \(detail)" }
    }

    /// The checks, in the order they are printed; the raw values are the names operators read.
    public enum Check: String, Sendable, Equatable, Codable, CaseIterable {
        case disconnectBurst = "channel disconnect burst"
        case reconnectMismatch = "disconnect/reconnect mismatch"
        case leaseHeartbeatLost = "lease heartbeat lost"
        case outboundLoopErrors = "outbound loop errors"
        case sendFailures = "send failures"
        case deadJobs = "dead jobs"
        case uncertainDeliveries = "uncertain deliveries"
        case webhookRejections = "webhook rejections"
        case channelStopped = "channel stopped"
    }

    /// Disconnect reasons after which a channel account stays down until someone acts (the WhatsApp linked
    /// device: unlinked on the phone, another client took the number, refused).
    public static let stoppingReasons: Set<String> = [
        "logged_out", "multidevice_mismatch", "connection_replaced", "forbidden",
    ]

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
        var rejectedWebhooks = 0
        // Per channel account: the reason it stopped for, until a connect follows.
        var stopped: [String: String] = [:]
        try log.withSnapshot { snapshot in
            try snapshot.forEach { record in
                guard record.timestamp > since, record.timestamp <= now else { return true }
                // A record that does not decode stops the check with its seq: it is never skipped silently.
                switch try record.event() {
                case .channelDisconnected(let e):
                    disconnects.append(record.timestamp)
                    if Self.stoppingReasons.contains(e.reason) { stopped["\(e.channel)/\(e.accountID)"] = e.reason }
                    // Only a disconnect that announced a reconnect awaits one (a clean shutdown does not).
                    if e.willReconnect {
                        waiting["\(e.channel)/\(e.accountID)", default: 0] += 1
                        expectingReconnect += 1
                    }
                case .channelConnected(let e):
                    stopped["\(e.channel)/\(e.accountID)"] = nil
                    // Only a connect that follows a disconnect is a reconnect (a first connect at start is not).
                    if let n = waiting["\(e.channel)/\(e.accountID)"], n > 0 {
                        waiting["\(e.channel)/\(e.accountID)"] = n - 1
                        connectCount += 1
                    }
                case .leaseExpired: leaseLost += 1
                case .deliveryFailed(let e):
                    // A claim settled or handed back before its send was attempted is no send failure.
                    if UnattemptedRelease(rawValue: e.errorCode ?? "") == nil { sendFailures += 1 }
                case .deliveryStatusReported(let e):
                    // The provider's own report that a message it accepted was not delivered.
                    if e.status == "failed" { sendFailures += 1 }
                case .webhookRejected(let e): rejectedWebhooks += 1 + max(0, e.suppressed)
                case .jobDead: dead += 1
                case .deliveryUncertain: uncertain += 1
                case .commandRejected(let e):
                    if e.command.hasPrefix("delivery.") { loopErrors += 1 }
                case .messageReceived, .contactUpdated, .jobEnqueued, .jobClaimed, .jobHeartbeat, .jobCompleted,
                    .jobFailed, .jobRetried, .jobRequeued, .jobCancelled, .conversationRenamed, .conversationDeleted,
                    .jobRetriggered, .commandHandled,
                    .deliveryEnqueued, .deliveryClaimed, .deliveryAttempted,
                    .deliverySent, .leaseAcquired, .leaseRenewed, .leaseReleased, .leaseDenied, .sessionEntrySet,
                    .sessionEntryRemoved, .inboundIgnored, .assistantMessage, .assistantDelta, .conversationSummarized,
                    .toolCall,
                    .toolResult, .toolApproval,
                    .workerStarted, .workerStopped:
                    break
                case nil:
                    break  // A newer build's event type.
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
        func line(_ alert: Bool, _ check: Check, _ detail: String) -> Line {
            Line(alert: alert, check: check, detail: detail)
        }
        return [
            line(
                worstBurst >= threshold, .disconnectBurst,
                "\(worstBurst) disconnects in the worst \(windowLabel ?? "\(burstWindow)") window (threshold \(threshold))"
            ),
            line(
                expectingReconnect != connectCount, .reconnectMismatch,
                "\(expectingReconnect) disconnects, \(connectCount) reconnects"),
            line(leaseLost > 0, .leaseHeartbeatLost, "\(leaseLost) lease(s) expired without release"),
            line(loopErrors > 0, .outboundLoopErrors, "\(loopErrors) delivery command(s) rejected"),
            line(sendFailures > 0, .sendFailures, "\(sendFailures) failed send attempt(s)"),
            line(dead > 0, .deadJobs, "\(dead) job(s) dead"),
            line(uncertain > 0, .uncertainDeliveries, "\(uncertain) delivery(ies) uncertain"),
            line(
                rejectedWebhooks > 0, .webhookRejections,
                "\(rejectedWebhooks) webhook request(s) refused (bad or missing secret or signature)"),
            line(
                !stopped.isEmpty, .channelStopped,
                stopped.isEmpty
                    ? "no channel account stopped for an action"
                    : stopped.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                        + " (docs/channels.md, Disconnects: what to do)"),
        ]
    }
}
