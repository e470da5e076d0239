import EventLog
import Foundation
import Logging
import Projections
import ServiceLifecycle
import SwitchboardEvents
import Synchronization

/// The outbound delivery loop of one channel account: while this process holds the account's lease it
/// claims deliveries (FIFO per recipient and rate limits are the claim decider's), records `delivery.attempted`
/// before each provider call, then `sent`, `failed` or `uncertain` under the claim's token.
///
/// It wakes on `delivery.enqueued` for its account (from the log tail), at the time a blocked delivery becomes
/// sendable, and when the lease changes; it never polls. On graceful shutdown it finishes the send in flight
/// and stops claiming.
public final class OutboundService: Service, Sendable {
    let keeper: LeaseKeeper
    let sender: any ChannelSender
    let engine: Switchboard
    let logger: Logger
    let metrics: WorkerMetrics
    /// Records `channel.disconnected` (`auth_failed`) when the provider refuses the credentials, and
    /// `channel.connected` when a later send passes.
    let health: ChannelHealth?
    /// How long sending pauses after the credentials were refused, before the next delivery probes them.
    let credentialsPause: Duration
    private let wakeup = Wakeup()
    private let stopping = Flag()
    /// Log times at which an in-flight claim of this account expires.
    private let due = Mutex<[LogTimestamp]>([])

    public init(
        keeper: LeaseKeeper, sender: any ChannelSender, engine: Switchboard, metrics: WorkerMetrics = WorkerMetrics(),
        health: ChannelHealth? = nil, credentialsPause: Duration = .seconds(60), logger: Logger
    ) {
        self.health = health
        self.credentialsPause = credentialsPause
        self.keeper = keeper
        self.sender = sender
        self.engine = engine
        self.metrics = metrics
        self.logger = logger
    }

    var channel: String { keeper.channel }
    var accountID: String { keeper.accountID }

    public func run() async throws {
        keeper.notify(wakeup)
        let start = try engine.log.lastSeq() + 1
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    try await self.follow(from: start)
                } catch {
                    self.logger.error("tail.failed", metadata: ["error": "\(error)"])
                }
            }
            await withGracefulShutdownHandler {
                await self.loop()
            } onGracefulShutdown: {
                self.stopping.set()
                self.wakeup.signal()
            }
            group.cancelAll()
        }
    }

    private func follow(from start: UInt64) async throws {
        let resource = keeper.resource
        let me = engine.owner.instance
        for try await record in engine.log.tail(from: start) {
            guard
                record.type == DeliveryEnqueued.eventType || record.type == DeliveryClaimed.eventType
                    || record.type == JobClaimed.eventType
            else { continue }
            switch record.followedEvent(logger) {
            case .jobClaimed(let claimed)?:
                showTyping(claimed)
            case .deliveryEnqueued(let enqueued)? where enqueued.channel == channel && enqueued.accountID == accountID:
                wakeup.signal()
            case .deliveryClaimed(let claimed)? where claimed.leaseResource == resource && claimed.ownerInstance != me:
                // Should this claim's holder die, the next claim after its deadline settles it (pending again,
                // or uncertain when its send was attempted): wake then.
                due.withLock { $0.append(claimed.visibleUntil.advanced(by: .milliseconds(1))) }
            default:
                continue
            }
        }
    }

    /// Shows the contact that a reply is coming when a core claims a job of one of this account's conversations
    /// and this process holds the account's lease: Telegram's `sendChatAction`, the WhatsApp Cloud typing
    /// indicator. Best effort, outside the delivery queue: it is not a delivery (nothing to retry, nothing recorded)
    /// and cannot delay the reply, which stays first in the recipient's queue.
    private func showTyping(_ claimed: JobClaimed) {
        guard keeper.current() != nil else { return }
        let typing: OutboundMessage?
        do {
            typing = try typingMessage(for: claimed)
        } catch {
            logger.debug("typing.lookup.failed", metadata: ["job.id": "\(claimed.jobID)", "error": "\(error)"])
            return
        }
        guard let typing else { return }
        let sender = sender
        let logger = logger
        Task {
            let outcome = await sender.send(typing)
            if case .sent = outcome { return }
            logger.debug("typing.not_shown", metadata: ["job.id": "\(claimed.jobID)", "outcome": "\(outcome)"])
        }
    }

    /// The typing action for a claimed job of this account's conversations (`nil` for another channel or account).
    private func typingMessage(for claimed: JobClaimed) throws -> OutboundMessage? {
        guard let job = try engine.job(claimed.jobID), let conversation = try engine.conversation(job.conversationID),
            conversation.channel == channel, conversation.accountID == accountID
        else { return nil }
        // The message being answered: WhatsApp marks it read and shows the indicator against it.
        var externalID: String?
        if let enqueued = try engine.log.records(from: job.enqueueSeq, limit: 1).first,
            case .jobEnqueued(let event)? = try enqueued.event(), let seq = event.triggeringMessageSeq,
            let trigger = try engine.log.records(from: seq, limit: 1).first,
            case .messageReceived(let message)? = try trigger.event()
        {
            externalID = message.externalID
        }
        return OutboundMessage(
            deliveryID: "typing:\(claimed.jobID):\(claimed.attempt)", recipient: conversation.contactID, text: "",
            replyToExternalID: externalID, kind: "typing_indicator")
    }

    private func loop() async {
        var active: UInt64?
        // The first idle wait of each tenure is bounded once (see CoreService: the doorbell watcher starts lazily).
        var settleUntil: ContinuousClock.Instant?
        // Set by a failure that stops the whole account (a throughput limit, refused credentials).
        var pausedUntil: ContinuousClock.Instant?
        // A cancelled task (not a graceful shutdown) also ends the loop: its waits would return at once.
        while !stopping.isSet && !Task.isCancelled {
            if let until = pausedUntil, until > .now {
                await wakeup.wait(until: until)
                continue
            }
            guard let tenure = keeper.current() else {
                if active != nil {
                    logger.warning(
                        "[\(channel)] Outbound loop paused — lease lost for account '\(accountID)'",
                        metadata: ["lease.resource": "\(keeper.resource)"])
                    active = nil
                }
                await wakeup.wait()
                continue
            }
            if active != tenure.token {
                logger.info(
                    "[\(channel)] Starting outbound delivery loop...", metadata: ["lease.token": "\(tenure.token)"])
                active = tenure.token
                settleUntil = .now + .seconds(1)
            }
            let result: DeliveryClaimResult
            do {
                result = try await engine.claimDelivery(
                    channel: channel, accountID: accountID, leaseToken: tenure.token)
            } catch {
                logger.error("delivery.claim.failed", metadata: ["error": "\(error)"])
                await wakeup.wait(until: .now + .seconds(1))
                continue
            }
            switch result {
            case .claimed(let claim):
                metrics.claimed("delivery")
                if let pause = await deliver(claim, under: tenure) {
                    switch pause {
                    case .account(let duration):
                        logger.warning("[\(channel)] Sending paused for \(duration) (provider rate limit)")
                        pausedUntil = .now + duration
                    case .credentials:
                        logger.error(
                            "[\(channel)] Credentials refused: sending paused for account '\(accountID)', next try in \(credentialsPause)"
                        )
                        pausedUntil = .now + credentialsPause
                    }
                }
            case .empty(let retryAt):
                let now = LogTimestamp.wallClock()
                let claimExpiry = due.withLock { times -> LogTimestamp? in
                    times.removeAll { $0 < now }
                    return times.min()
                }
                let next = [retryAt, claimExpiry].compactMap { $0 }.min()
                let settle = settleUntil
                settleUntil = nil
                await wakeup.wait(until: [next?.localInstant, settle].compactMap { $0 }.min())
            case .rejected(let reason):
                logger.warning("delivery.claim.rejected", metadata: ["delivery.reason": "\(reason)"])
                keeper.lost(tenure, reason: "claim_rejected")
            }
        }
    }

    /// Sends one claimed delivery; returns the pause its failure asks for, if any.
    private func deliver(_ claim: DeliveryClaim, under tenure: Tenure) async -> SendPause? {
        let delivery = claim.delivery
        let metadata: Logger.Metadata = [
            "delivery.id": "\(delivery.deliveryID)", "delivery.token": "\(claim.token)",
            "lease.token": "\(claim.leaseToken)",
        ]
        guard keeper.current()?.token == tenure.token else {
            logger.warning("[\(channel)] Lease lost after claim — skipping send to avoid duplicate", metadata: metadata)
            await handBack(claim, metadata)
            return nil
        }
        let attempt: DeliveryCommandResult
        do {
            attempt = try await engine.attemptDelivery(
                delivery.deliveryID, token: claim.token, leaseToken: claim.leaseToken)
        } catch {
            logger.error("delivery.attempt.failed", metadata: metadata.merging(["error": "\(error)"]) { $1 })
            return nil  // the claim expires back to pending: no attempt was recorded
        }
        guard case .accepted = attempt else {
            logger.warning("[\(channel)] Lease lost after claim — skipping send to avoid duplicate", metadata: metadata)
            await handBack(claim, metadata)
            return nil
        }
        let outcome = await sender.send(
            OutboundMessage(
                deliveryID: delivery.deliveryID, recipient: delivery.recipient, text: delivery.text,
                replyToExternalID: delivery.replyToExternalID, kind: delivery.kind))
        switch outcome {
        case .sent(let providerMessageID):
            metrics.sent(channel: channel, outcome: "sent")
            await record("delivery.sent", metadata) {
                try await $0.deliverySent(delivery.deliveryID, token: claim.token, providerMessageID: providerMessageID)
            }
            if let health, !health.isUp { await health.up(detail: "send_ok", leaseToken: claim.leaseToken) }
            return nil
        case .failed(let failure):
            metrics.sent(channel: channel, outcome: "failed")
            let retryAfter = failure.retryAfter.flatMap { wait in (try? engine.logNow())?.advanced(by: wait) }
            await record("delivery.failed", metadata.merging(["delivery.error": "\(failure.code)"]) { $1 }) {
                try await $0.deliveryFailed(
                    delivery.deliveryID, token: claim.token, permanent: failure.permanent, retryAfter: retryAfter,
                    errorCode: failure.code, message: failure.message)
            }
            if failure.pause == .credentials {
                await health?.down(reason: "auth_failed", code: Int(failure.code), willReconnect: true)
            }
            return failure.pause
        case .uncertain(let reason):
            metrics.sent(channel: channel, outcome: "uncertain")
            await record("delivery.uncertain", metadata) {
                try await $0.deliveryUncertain(delivery.deliveryID, token: claim.token, reason: reason)
            }
            return nil
        }
    }

    /// Returns a claimed delivery whose send was not attempted (it goes back to pending).
    private func handBack(_ claim: DeliveryClaim, _ metadata: Logger.Metadata) async {
        metrics.sent(channel: channel, outcome: "skipped")
        await record("delivery.handed_back", metadata) {
            try await $0.deliveryFailed(
                claim.delivery.deliveryID, token: claim.token, permanent: false, retryAfter: nil,
                errorCode: "lease_lost", message: "handed back before the send: the lease was lost")
        }
    }

    /// Records an outcome; retried a few times when the log cannot be written (the send happened either way).
    private func record(
        _ message: Logger.Message, _ metadata: Logger.Metadata,
        _ command: @Sendable (Switchboard) async throws -> DeliveryCommandResult
    ) async {
        for attempt in 1...3 {
            do {
                let result = try await command(engine)
                if case .accepted = result {
                    logger.info(message, metadata: metadata)
                } else {
                    logger.warning(
                        "delivery.outcome.rejected", metadata: metadata.merging(["delivery.result": "\(result)"]) { $1 }
                    )
                }
                return
            } catch {
                logger.error(
                    "delivery.outcome.not_recorded",
                    metadata: metadata.merging(["error": "\(error)", "attempt": "\(attempt)"]) { $1 })
                try? await Task.sleep(for: .milliseconds(200 * attempt))
            }
        }
    }
}
