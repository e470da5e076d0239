import EventLog
import Foundation
import Logging
import Metrics
import Projections
import SwitchboardEvents
import Synchronization

/// The DM policy of one channel account and its configured allowlist.
public struct ChannelAccess: Sendable, Equatable {
    public var channel: String
    public var policy: DMPolicy
    /// Contact ids allowed without pairing (Telegram chat ids, WhatsApp numbers as digits).
    public var allowlist: Set<String>

    public init(channel: String, policy: DMPolicy, allowlist: Set<String> = []) {
        self.channel = channel
        self.policy = policy
        self.allowlist = allowlist
    }

    /// What the ingress decider is told about `contactID` (and the other ids the sender is known by, e.g. the
    /// Telegram user behind a chat): whether it is allowlisted, and a fresh pairing code should it need one.
    public func access(for contactID: String, alsoKnownAs others: [String] = []) -> SenderAccess {
        let allowlisted = allowlist.contains(contactID) || others.contains { allowlist.contains($0) }
        guard policy == .pairing, !allowlisted else { return SenderAccess(policy: policy, allowlisted: allowlisted) }
        let code = Self.pairingCode()
        return SenderAccess(
            policy: policy, allowlisted: false, pairingCode: code,
            pairingReply: Self.pairingReply(channel: channel, code: code))
    }

    /// The characters of pairing codes: no 0/O, 1/I/L, so a code read aloud or retyped survives.
    static let codeAlphabet = Array("ABCDEFGHJKMNPQRSTUVWXYZ23456789")

    /// A fresh 8-character code, shown as `XXXX-XXXX` (about 39 bits from the system's random generator).
    public static func pairingCode() -> String {
        var generator = SystemRandomNumberGenerator()
        let characters = (0..<8).map { _ in codeAlphabet[Int.random(in: 0..<codeAlphabet.count, using: &generator)] }
        return String(characters[0..<4]) + "-" + String(characters[4..<8])
    }

    /// The one message an unknown sender gets.
    public static func pairingReply(channel: String, code: String) -> String {
        """
        Hi! I don't know you yet, so I can't answer your messages. Your pairing code is \(code). \
        Send it to the owner of this assistant; they can let you in with: agent pairing approve \(channel) \(code)
        """
    }

    /// What a sender gets once the owner approved its code.
    public static let approvedReply = "You're approved: I'll answer your messages from now on."
}

/// The door every inbound provider item goes through, whichever route or poll brought it: the batch is decided
/// in one write transaction (``Switchboard/ingest(_:)``), refusals of unauthenticated requests are recorded
/// (coalesced), and both are counted in `switchboard_inbound_total{channel,outcome}`.
public final class ChannelIngress: Sendable {
    let engine: Switchboard
    let logger: Logger

    private struct Refusals {
        /// Per (channel, account, reason): when the last refusal was recorded and how many since were not.
        var last: [String: (at: ContinuousClock.Instant, suppressed: Int)] = [:]
    }

    private let refusals = Mutex(Refusals())
    /// At most one `webhook.rejected` per (channel, account, reason) per this interval.
    let refusalInterval: Duration

    public init(engine: Switchboard, refusalInterval: Duration = .seconds(1), logger: Logger) {
        self.engine = engine
        self.refusalInterval = refusalInterval
        self.logger = logger
    }

    /// Decides `items` in one transaction; logs and counts each outcome.
    @discardableResult
    public func ingest(_ items: [IngressItem], channel: String) async throws -> [IngressOutcome] {
        guard !items.isEmpty else { return [] }
        let outcomes = try await engine.ingest(items)
        for (item, outcome) in zip(items, outcomes) {
            switch outcome {
            case .message(let seq, let conversation, let jobID, let status, let pairing):
                count(channel, "message")
                var metadata: Logger.Metadata = [
                    "event.seq": "\(seq)", "conversation.id": "\(conversation)", "contact.status": "\(status.rawValue)",
                ]
                if case .message(let message, _, _) = item { metadata["inbound.external_id"] = "\(message.externalID)" }
                if let jobID { metadata["job.id"] = "\(jobID)" }
                if let pairing {
                    metadata["delivery.id"] = "\(pairing)"
                    logger.info("[\(channel)] Pairing code sent to an unknown sender", metadata: metadata)
                } else if status == .allowed {
                    logger.info("inbound.accepted", metadata: metadata)
                } else {
                    logger.info("inbound.recorded_not_processed", metadata: metadata)
                }
            case .recorded(let seq, let deliveryID):
                switch item {
                case .status(let status):
                    count(channel, "status")
                    logger.info(
                        "inbound.status",
                        metadata: [
                            "event.seq": "\(seq)", "delivery.provider_id": "\(status.providerMessageID)",
                            "delivery.status": "\(status.status)", "delivery.id": "\(deliveryID ?? "unknown")",
                        ])
                case .ignored(let ignored):
                    count(channel, "ignored")
                    var metadata: Logger.Metadata = [
                        "event.seq": "\(seq)", "inbound.kind": "\(ignored.kind)", "inbound.reason": "\(ignored.reason)",
                    ]
                    if let detail = ignored.detail { metadata["inbound.detail"] = "\(detail)" }
                    logger.info("inbound.ignored", metadata: metadata)
                case .message:
                    count(channel, "message")
                }
            case .duplicate(let first):
                count(channel, "duplicate")
                logger.info("inbound.duplicate", metadata: ["event.first_seq": "\(first)"])
            }
        }
        return outcomes
    }

    /// Records a refused webhook request (at most one record per reason and interval; the others are counted in
    /// the next record's `suppressed`), and counts it.
    public func rejected(channel: String, accountID: String, reason: String, status: Int) async {
        count(channel, "rejected")
        logger.warning(
            "[\(channel)] Webhook request refused (\(reason))",
            metadata: ["webhook.reason": "\(reason)", "http.status": "\(status)", "channel.account": "\(accountID)"])
        let key = "\(channel)/\(accountID)/\(reason)"
        let now = ContinuousClock.now
        let interval = refusalInterval
        let suppressed = refusals.withLock { state -> Int? in
            if let last = state.last[key], now - last.at < interval {
                state.last[key] = (last.at, last.suppressed + 1)
                return nil
            }
            let suppressed = state.last[key]?.suppressed ?? 0
            state.last[key] = (now, 0)
            return suppressed
        }
        guard let suppressed else { return }
        let owner = engine.owner
        do {
            try await engine.log.append(
                WebhookRejected(
                    channel: channel, accountID: accountID, reason: reason, status: status, suppressed: suppressed,
                    workerID: owner.workerID, instance: owner.instance))
        } catch {
            logger.error("webhook.rejection.not_recorded", metadata: ["error": "\(error)"])
        }
    }

    func count(_ channel: String, _ outcome: String) {
        Counter(label: "switchboard_inbound_total", dimensions: [("channel", channel), ("outcome", outcome)])
            .increment()
    }
}

extension LogTimestamp {
    /// A provider's Unix time in seconds as a log timestamp.
    init(unixSeconds: Int64) { self.init(microseconds: unixSeconds &* 1_000_000) }
}
