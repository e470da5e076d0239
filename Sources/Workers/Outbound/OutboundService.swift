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
/// Up to `concurrency` provider calls run at once (`OUTBOUND_CONCURRENCY`), necessarily to different recipients:
/// a recipient's next message is offered only once its head is finished, and the account's rate limit counts
/// claims, so neither depends on how many calls are in flight.
///
/// It wakes on `delivery.enqueued` for its account (from the log tail), when a send finishes, at the time a
/// blocked delivery becomes sendable, and when the lease changes; it never polls. On graceful shutdown it
/// finishes the sends in flight and stops claiming.
///
/// Typing indicators go out on their own lane, one call at a time from a short queue (the oldest dropped when it
/// is full), each checked just before the call: the job must still be running and its reply not yet enqueued. So
/// they never hold a connection a reply could use, and never announce a reply that is already on its way.
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
    /// Provider calls in flight at most.
    let concurrency: Int
    private let wakeup = Wakeup()
    private let stopping = Flag()
    /// Log times at which an in-flight claim of this account expires.
    private let due = Mutex<[LogTimestamp]>([])
    /// Sends in flight, and the pause the last failure asked for.
    private let sending = Mutex<(inFlight: Int, pausedUntil: ContinuousClock.Instant?)>((0, nil))
    /// Jobs claimed by a core whose typing indicator is still to be shown (oldest first, bounded).
    private let typingQueue = Mutex<[JobClaimed]>([])
    private let typingBell = Wakeup()
    /// The job whose typing action is being checked or sent, and the replies to it waiting for that call to end.
    private let typingInFlight = Mutex<(jobID: String?, replies: [CheckedContinuation<Void, Never>])>((nil, []))
    /// The most typing indicators waiting; older ones are dropped (their replies are usually on the way).
    static let typingQueueLimit = 32
    /// The most deliveries one claim transaction takes.
    static let claimBatch = 8

    public init(
        keeper: LeaseKeeper, sender: any ChannelSender, engine: Switchboard, metrics: WorkerMetrics = WorkerMetrics(),
        health: ChannelHealth? = nil, credentialsPause: Duration = .seconds(60), concurrency: Int = 16,
        logger: Logger
    ) {
        self.health = health
        self.credentialsPause = credentialsPause
        self.keeper = keeper
        self.sender = sender
        self.engine = engine
        self.metrics = metrics
        self.concurrency = max(1, concurrency)
        self.logger = logger
    }

    var channel: String { keeper.channel }
    var accountID: String { keeper.accountID }

    public func run() async throws {
        keeper.notify(wakeup)
        let start = try engine.log.lastSeq() + 1
        await ServiceLoop(stopping: stopping, wakeup: wakeup, logger: logger).run(
            beside: [
                .init(name: "tail") { try await self.follow(from: start) },
                .init(name: "typing") { await self.typingLane() },
            ]
        ) {
            await self.loop()
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
                queueTyping(claimed)
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

    /// Queues the typing indicator for a job a core claimed, when this process holds the account's lease.
    private func queueTyping(_ claimed: JobClaimed) {
        guard keeper.current() != nil else { return }
        typingQueue.withLock { queue in
            queue.append(claimed)
            if queue.count > Self.typingQueueLimit { queue.removeFirst(queue.count - Self.typingQueueLimit) }
        }
        typingBell.signal()
    }

    /// Shows the contact that a reply is coming: Telegram's `sendChatAction`, the WhatsApp Cloud typing indicator.
    /// Best effort, outside the delivery queue: it is not a delivery (nothing to retry, nothing recorded), runs one
    /// call at a time, and is skipped for a job that is no longer running or whose reply is already enqueued.
    private func typingLane() async {
        while !Task.isCancelled && !stopping.isSet {
            let next = typingQueue.withLock { queue in queue.isEmpty ? nil : queue.removeFirst() }
            guard let claimed = next else {
                await typingBell.wait()
                continue
            }
            guard keeper.current() != nil else { continue }
            // Marked before the check: a reply sent from here on waits for this call (see `afterTyping(of:)`), and
            // one already past that wait was enqueued before the check, which then skips the typing action.
            typingInFlight.withLock { $0.jobID = claimed.jobID }
            await showTyping(claimed)
            for reply in typingInFlight.withLock({ state in
                defer { state = (nil, []) }
                return state.replies
            }) {
                reply.resume()
            }
        }
    }

    private func showTyping(_ claimed: JobClaimed) async {
        let typing: OutboundMessage?
        do {
            typing = try typingMessage(for: claimed)
        } catch {
            logger.debug("typing.lookup.failed", metadata: ["job.id": "\(claimed.jobID)", "error": "\(error)"])
            return
        }
        guard let typing else { return }
        let outcome = await sender.send(typing)
        if case .sent = outcome { return }
        logger.debug("typing.not_shown", metadata: ["job.id": "\(claimed.jobID)", "outcome": "\(outcome)"])
    }

    /// Returns once no typing action for the job `delivery` answers is being checked or sent, so a reply never
    /// reaches the provider ahead of the typing action announcing it.
    private func afterTyping(of delivery: DeliveryState) async {
        guard let jobID = CoreService.jobID(ofReplyKey: delivery.idempotencyKey) else { return }
        await withCheckedContinuation { (reply: CheckedContinuation<Void, Never>) in
            let waits = typingInFlight.withLock { state in
                guard state.jobID == jobID else { return false }
                state.replies.append(reply)
                return true
            }
            if !waits { reply.resume() }
        }
    }

    /// The typing action for a claimed job of this account's conversations, or `nil` when there is nothing to
    /// announce: another channel or account, a job no longer running under that claim, or a reply already enqueued.
    private func typingMessage(for claimed: JobClaimed) throws -> OutboundMessage? {
        guard let job = try engine.job(claimed.jobID), job.status == .running, job.token == claimed.token,
            let conversation = try engine.conversation(job.conversationID),
            conversation.channel == channel, conversation.accountID == accountID
        else { return nil }
        let reply = CoreService.replyKey(jobID: job.jobID)
        guard try engine.deliveryID(idempotencyKey: reply) == nil,
            try engine.deliveryID(idempotencyKey: reply + "#0") == nil
        else { return nil }
        // The message being answered: WhatsApp marks it read and shows the indicator against it.
        let externalID = try engine.replyTrigger(of: job)?.externalID
        return OutboundMessage(
            deliveryID: "typing:\(claimed.jobID):\(claimed.attempt)", recipient: conversation.contactID, text: "",
            replyToExternalID: externalID, kind: "typing_indicator")
    }

    private func loop() async {
        var active: UInt64?
        // The first idle wait of each tenure is bounded once (see CoreService: the doorbell watcher starts lazily).
        var settleUntil: ContinuousClock.Instant?
        await withDiscardingTaskGroup { group in
            // A cancelled task (not a graceful shutdown) also ends the loop: its waits would return at once.
            while !stopping.isSet && !Task.isCancelled {
                // Set by a failure that stops the whole account (a throughput limit, refused credentials).
                let (inFlight, pausedUntil) = sending.withLock { ($0.inFlight, $0.pausedUntil) }
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
                if inFlight >= concurrency {
                    await wakeup.wait()  // a finishing send rings
                    continue
                }
                let batch: DeliveryClaims
                do {
                    // As many as there are free slots, in one transaction (at most 8, so a burst starts sending
                    // before the batch is large).
                    batch = try await engine.claimDeliveries(
                        channel: channel, accountID: accountID, leaseToken: tenure.token,
                        limit: min(concurrency - inFlight, Self.claimBatch), rateLimits: sender.rateLimits)
                } catch {
                    logger.error("delivery.claim.failed", metadata: ["error": "\(error)"])
                    await wakeup.wait(until: .now + .seconds(1))
                    continue
                }
                for claim in batch.claims {
                    metrics.claimed("delivery")
                    sending.withLock { $0.inFlight += 1 }
                    group.addTask {
                        let pause = await self.deliver(claim, under: tenure).map(self.duration(of:))
                        self.sending.withLock { state in
                            state.inFlight -= 1
                            if let pause { state.pausedUntil = .now + pause }
                        }
                        self.wakeup.signal()
                    }
                }
                switch batch.stop {
                case nil, .claimed?:
                    continue  // took its limit: free slots may take more
                case .empty(let retryAt)?:
                    let now = LogTimestamp.wallClock()
                    let claimExpiry = due.withLock { times -> LogTimestamp? in
                        times.removeAll { $0 < now }
                        return times.min()
                    }
                    let next = [retryAt, claimExpiry].compactMap { $0 }.min()
                    let settle = settleUntil
                    settleUntil = nil
                    await wakeup.wait(until: [next?.localInstant, settle].compactMap { $0 }.min())
                case .rejected(let reason)?:
                    logger.warning("delivery.claim.rejected", metadata: ["delivery.reason": "\(reason)"])
                    keeper.lost(tenure, reason: "claim_rejected")
                }
            }
        }
    }

    /// How long a failure's pause stops the account's sends; logged once.
    private func duration(of pause: SendPause) -> Duration {
        switch pause {
        case .account(let duration):
            logger.warning("[\(channel)] Sending paused for \(duration) (provider rate limit)")
            return duration
        case .credentials:
            logger.error(
                "[\(channel)] Credentials refused: sending paused for account '\(accountID)', next try in \(credentialsPause)"
            )
            return credentialsPause
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
        await afterTyping(of: delivery)
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
                errorCode: UnattemptedRelease.leaseLost.rawValue,
                message: "handed back before the send: the lease was lost")
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
