import EventLog
import SwitchboardEvents
import Foundation

/// Delivery deciders: pure functions of the delivery (and lease) state or a ``DeliveryQueueView``, the command,
/// the log time and the next seq, returning a ``Decision``. Their shells (`DeliveryShell.swift`) run them in the
/// write transaction.
public enum DeliveryDecider {
    /// Enqueues an outbound message unless its idempotency key was seen before.
    /// - Parameter existingDeliveryID: The delivery already enqueued under the key, if any.
    public static func enqueue(
        _ delivery: NewDelivery, existingDeliveryID: String?, settings: DeliverySettings
    ) throws(ProjectionError) -> Decision<DeliveryEnqueue> {
        guard !delivery.idempotencyKey.isEmpty, !delivery.channel.isEmpty, !delivery.accountID.isEmpty,
            !delivery.recipient.isEmpty
        else {
            throw ProjectionError(.invalidArgument, "a delivery needs a key, channel, account and recipient")
        }
        if let existingDeliveryID { return Decision(DeliveryEnqueue(deliveryID: existingDeliveryID, duplicate: true)) }
        let event = SwitchboardEvent.deliveryEnqueued(
            DeliveryEnqueued(
                deliveryID: delivery.deliveryID, idempotencyKey: delivery.idempotencyKey, channel: delivery.channel,
                accountID: delivery.accountID, recipient: delivery.recipient,
                conversationID: delivery.conversationID,
                sourceMessageID: delivery.sourceMessageID, part: delivery.part, kind: delivery.kind,
                text: delivery.text, maxAttempts: settings.maxAttempts,
                replyToExternalID: delivery.replyToExternalID,
                jobID: delivery.jobID, jobToken: delivery.jobToken))
        return Decision(
            DeliveryEnqueue(deliveryID: delivery.deliveryID, duplicate: false), events: [event],
            correlationIDs: [delivery.conversationID])
    }

    /// Settles the account's claims whose visibility ran out before `now`: back to pending (with backoff) when
    /// no attempt was recorded, **uncertain** when one was (the request may have reached the provider). The claim
    /// shell runs it, in the same transaction, before every claim by the account's lease holder.
    public static func reclaimExpired(
        channel: String, accountID: String, settings: DeliverySettings, queue: some DeliveryQueueView,
        now: LogTimestamp
    ) throws -> Decision<Int> {
        var events = DecisionEvents(firstSeq: 0)
        var settled = 0
        try queue.forEachExpiredClaim(channel: channel, accountID: accountID, before: now) { delivery in
            if settle(
                delivery, release: .claimExpired, message: "claim expired before the send was attempted",
                uncertainReason: "claim expired after the send was attempted", settings: settings, now: now,
                into: &events)
            {
                settled += 1
            }
            return true
        }
        return events.decision(settled)
    }

    /// Settles the account's claims made under a tenure of its lease older than `leaseToken`, when a new tenure
    /// begins (the lease shell runs it in the transaction that grants the lease). Such a claim is dead the moment
    /// the new tenure starts: its holder can no longer attempt a send (the lease gate refuses its token), so
    /// waiting for its visibility to run out would only hold the recipient's FIFO. A claim never attempted goes
    /// back to pending at once (nothing was sent, so no backoff); an attempted one becomes **uncertain** (by the
    /// uncertain policy, as after an expiry): the send may have reached the provider. A late `delivery.sent` from
    /// the old holder is still recorded (see ``sent(_:deliveryID:token:providerMessageID:owner:)``).
    public static func settleEarlierTenures(
        channel: String, accountID: String, leaseToken: UInt64, settings: DeliverySettings,
        queue: some DeliveryQueueView, now: LogTimestamp
    ) throws -> Decision<Int> {
        var events = DecisionEvents(firstSeq: 0)
        var settled = 0
        // Every in-flight claim of the account: all of them end before the end of time.
        try queue.forEachExpiredClaim(channel: channel, accountID: accountID, before: LogTimestamp(microseconds: .max))
        { delivery in
            guard let claimedUnder = delivery.leaseToken, claimedUnder < leaseToken else { return true }
            if settle(
                delivery, release: .tenureEnded, message: "claimed under an earlier lease tenure and never attempted",
                uncertainReason: "the lease tenure it was attempted under ended", settings: settings, now: now,
                immediately: true, into: &events)
            {
                settled += 1
            }
            return true
        }
        return events.decision(settled)
    }

    /// Settles one dead claim: never attempted → released as `release` (pending again, after the backoff unless
    /// `immediately`); attempted → uncertain. Returns whether `delivery` was in flight.
    private static func settle(
        _ delivery: DeliveryState, release: UnattemptedRelease, message: String, uncertainReason: String,
        settings: DeliverySettings, now: LogTimestamp, immediately: Bool = false, into events: inout DecisionEvents
    ) -> Bool {
        switch delivery.status {
        case .claimed:
            failAttempt(
                delivery, permanent: false, retryAfter: nil, code: release.rawValue, message: message,
                settings: settings, now: now, immediately: immediately, into: &events)
            return true
        case .attempting:
            markUncertain(delivery, reason: uncertainReason, settings: settings, now: now, into: &events)
            return true
        case .pending, .sent, .failed, .uncertain:
            return false
        }
    }

    /// Claims the next deliverable message of `channel`/`accountID` for `owner`, who must hold that account's
    /// `lease` under `leaseToken`: the first recipient head ``DeliveryQueueView/forEachReady(channel:accountID:_:)``
    /// offers that is due and within the rate limits (FIFO per recipient: only a recipient's oldest unfinished
    /// message is offered). The claim token is the seq of the `delivery.claimed` event. Expired claims are
    /// settled first, by ``reclaimExpired(channel:accountID:settings:queue:now:)`` in the same transaction.
    ///
    /// Heads held back by a recipient's rate limit are visited and passed over; there are few of them whatever
    /// the backlog, because each was sent to within the limit's interval and the account-wide limit bounds how
    /// many sends that interval holds.
    public static func claim(
        channel: String, accountID: String, owner: Owner, leaseToken: UInt64, lease: LeaseState?,
        settings: DeliverySettings, queue: some DeliveryQueueView, now: LogTimestamp, nextSeq: UInt64
    ) throws -> Decision<DeliveryClaimResult> {
        let resource = "\(channel)/\(accountID)"
        if let reason = leaseRefusal(lease, owner: owner, leaseToken: leaseToken, now: now) {
            return Decision(
                .rejected(reason: reason),
                events: [
                    .commandRejected(
                        CommandRejected(
                            command: "delivery.claim", subject: resource, reason: reason.rawValue,
                            presentedToken: nil, currentToken: nil, presentedLeaseToken: leaseToken,
                            workerID: owner.workerID, instance: owner.instance))
                ])
        }
        let limits = settings.rateLimits[channel] ?? .none
        // Account-wide window.
        if limits.perAccount.window > .zero {
            let accountTimes = try queue.accountSendTimes(channel: channel, accountID: accountID)
            let since = now.advanced(by: .zero - limits.perAccount.window).microseconds
            let recent = accountTimes.filter { $0 > since }
            if recent.count >= limits.perAccount.count {
                let retryAt = LogTimestamp(microseconds: recent[recent.count - limits.perAccount.count])
                    .advanced(by: limits.perAccount.window)
                return Decision(.empty(retryAt: retryAt))
            }
        }
        var chosen: DeliveryState?
        var earliest: LogTimestamp?
        try queue.forEachReady(channel: channel, accountID: accountID) { delivery in
            guard delivery.status == .pending else { return true }
            if delivery.notBefore > now {
                // Offered by notBefore: every later head is later still.
                earliest = min(earliest ?? delivery.notBefore, delivery.notBefore)
                return false
            }
            if let until = try recipientBlockedUntil(delivery, limits: limits, now: now, queue) {
                earliest = min(earliest ?? until, until)
                return true
            }
            chosen = delivery
            return false
        }
        guard let delivery = chosen else { return Decision(.empty(retryAt: earliest)) }
        let token = nextSeq
        let visibleUntil = now.advanced(by: settings.visibility)
        let attempt = delivery.attempt + 1
        var claimed = delivery
        claimed.status = .claimed
        claimed.token = token
        claimed.leaseToken = leaseToken
        claimed.attempt = attempt
        claimed.claimedBy = owner
        claimed.visibleUntil = visibleUntil
        return Decision(
            .claimed(
                DeliveryClaim(
                    delivery: claimed, token: token, leaseToken: leaseToken, attempt: attempt,
                    visibleUntil: visibleUntil)),
            events: [
                .deliveryClaimed(
                    DeliveryClaimed(
                        deliveryID: delivery.deliveryID, workerID: owner.workerID, ownerInstance: owner.instance,
                        token: token, leaseResource: resource, leaseToken: leaseToken, attempt: attempt,
                        visibleUntil: visibleUntil))
            ],
            correlationIDs: [delivery.conversationID])
    }

    /// Records that the provider call for `deliveryID` is about to start. Requires the current delivery claim
    /// token and the current, live `lease` token of the channel account (`lease` is the delivery's
    /// ``DeliveryState/leaseResource``).
    public static func attempt(
        _ delivery: DeliveryState?, deliveryID: String, token: UInt64, leaseToken: UInt64, owner: Owner,
        lease: LeaseState?, now: LogTimestamp
    ) -> Decision<DeliveryCommandResult> {
        let command = "delivery.attempt"
        guard let delivery else {
            return reject(command, deliveryID, nil, token: token, leaseToken: leaseToken, owner: owner, .unknown)
        }
        if delivery.token != token {
            return reject(
                command, deliveryID, delivery, token: token, leaseToken: leaseToken, owner: owner, .staleToken)
        }
        // The lease before the state: a new tenure settles the old one's claims as it begins, and its holder
        // learns that its lease is gone rather than that its claim was settled.
        if let reason = leaseRefusal(lease, owner: owner, leaseToken: leaseToken, now: now) {
            return reject(command, deliveryID, delivery, token: token, leaseToken: leaseToken, owner: owner, reason)
        }
        if delivery.status != .claimed {
            return reject(
                command, deliveryID, delivery, token: token, leaseToken: leaseToken, owner: owner, .wrongState)
        }
        return Decision(
            .accepted,
            events: [
                .deliveryAttempted(
                    DeliveryAttempted(
                        deliveryID: deliveryID, token: token, leaseToken: leaseToken, attempt: delivery.attempt))
            ],
            correlationIDs: [delivery.conversationID])
    }

    /// Records the provider's acceptance of an attempted delivery (also late, after the claim expired into
    /// `uncertain`, as long as no newer claim exists: a send that happened is recorded).
    public static func sent(
        _ delivery: DeliveryState?, deliveryID: String, token: UInt64, providerMessageID: String?, owner: Owner
    ) -> Decision<DeliveryCommandResult> {
        guard let delivery, delivery.token == token, delivery.status == .attempting || delivery.status == .uncertain
        else {
            return reject(
                "delivery.sent", deliveryID, delivery, token: token, leaseToken: nil, owner: owner,
                rejection(delivery, token: token))
        }
        return Decision(
            .accepted,
            events: [
                .deliverySent(
                    DeliverySent(
                        deliveryID: deliveryID, token: token, leaseToken: delivery.leaseToken ?? 0,
                        attempt: delivery.attempt,
                        providerMessageID: providerMessageID))
            ],
            correlationIDs: [delivery.conversationID])
    }

    /// Records a failed attempt: `permanent` (bad recipient, bad token…) fails it for good; otherwise it is
    /// retried after `retryAfter` (the provider's) or the backoff, until out of attempts.
    public static func failed(
        _ delivery: DeliveryState?, deliveryID: String, token: UInt64, owner: Owner, permanent: Bool,
        retryAfter: LogTimestamp?, errorCode: String?, message: String, settings: DeliverySettings, now: LogTimestamp
    ) -> Decision<DeliveryCommandResult> {
        guard let delivery, delivery.token == token, delivery.status == .attempting || delivery.status == .claimed
        else {
            return reject(
                "delivery.failed", deliveryID, delivery, token: token, leaseToken: nil, owner: owner,
                rejection(delivery, token: token))
        }
        var events = DecisionEvents(firstSeq: 0)
        failAttempt(
            delivery, permanent: permanent, retryAfter: retryAfter, code: errorCode, message: message,
            settings: settings, now: now, into: &events)
        return events.decision(.accepted)
    }

    /// Records that an attempted send may or may not have reached the provider (a timeout after the request
    /// was written, a crash mid-send).
    public static func uncertain(
        _ delivery: DeliveryState?, deliveryID: String, token: UInt64, owner: Owner, reason: String,
        settings: DeliverySettings, now: LogTimestamp
    ) -> Decision<DeliveryCommandResult> {
        guard let delivery, delivery.token == token, delivery.status == .attempting else {
            return reject(
                "delivery.uncertain", deliveryID, delivery, token: token, leaseToken: nil, owner: owner,
                rejection(delivery, token: token))
        }
        var events = DecisionEvents(firstSeq: 0)
        markUncertain(delivery, reason: reason, settings: settings, now: now, into: &events)
        return events.decision(.accepted)
    }

    /// Records a failed attempt of `delivery`; returns the delivery as the projection holds it afterwards. With
    /// `immediately` it is offered again at once (nothing was attempted), otherwise after the backoff.
    @discardableResult
    static func failAttempt(
        _ delivery: DeliveryState, permanent: Bool, retryAfter: LogTimestamp?, code: String?, message: String,
        settings: DeliverySettings, now: LogTimestamp, immediately: Bool = false, into events: inout DecisionEvents
    ) -> DeliveryState {
        let outOfAttempts = delivery.attempt >= delivery.maxAttempts
        var notBefore: LogTimestamp?
        if !permanent && !outOfAttempts {
            let backoff =
                immediately
                ? now : now.advanced(by: settings.retry.delay(afterAttempt: delivery.attempt, key: delivery.deliveryID))
            notBefore = max(backoff, retryAfter ?? backoff)
        }
        let text = String(message.prefix(500))
        events.append(
            .deliveryFailed(
                DeliveryFailed(
                    deliveryID: delivery.deliveryID, token: delivery.token, attempt: delivery.attempt,
                    permanent: permanent || outOfAttempts, retryAfter: notBefore, errorCode: code,
                    message: text)),
            correlationID: delivery.conversationID)
        var after = delivery
        after.lastError = [code, text].compactMap { $0 }.joined(separator: ": ")
        after.visibleUntil = nil
        if let notBefore {
            after.status = .pending
            after.notBefore = notBefore
        } else {
            after.status = .failed
        }
        return after
    }

    /// Records that `delivery`'s send may have happened; returns the delivery as the projection holds it
    /// afterwards (retried under ``UncertainPolicy/retry``).
    @discardableResult
    static func markUncertain(
        _ delivery: DeliveryState, reason: String, settings: DeliverySettings, now: LogTimestamp,
        into events: inout DecisionEvents
    ) -> DeliveryState {
        events.append(
            .deliveryUncertain(
                DeliveryUncertain(
                    deliveryID: delivery.deliveryID, token: delivery.token, attempt: delivery.attempt, reason: reason)),
            correlationID: delivery.conversationID)
        var uncertain = delivery
        uncertain.status = .uncertain
        uncertain.lastError = reason
        uncertain.visibleUntil = nil
        switch settings.uncertainPolicy {
        case .hold:
            return uncertain
        case .retry:
            return failAttempt(
                uncertain, permanent: false, retryAfter: nil, code: "uncertain",
                message: "retrying an uncertain send (policy retry): the recipient may get a duplicate",
                settings: settings, now: now, into: &events)
        }
    }

    /// Why `owner` may not use the account lease under `leaseToken` at `now`, or `nil` when it holds it live.
    static func leaseRefusal(_ lease: LeaseState?, owner: Owner, leaseToken: UInt64, now: LogTimestamp)
        -> DeliveryRejection?
    {
        switch LeaseDecider.gate(lease, owner: owner, leaseToken: leaseToken, now: now) {
        case nil: nil
        case .staleLease: .staleLease  // the lease's token, not the delivery's
        case .notOwner: .notOwner
        case .expired: .expired
        case .notHeld: .notHeld
        }
    }

    /// Why a command presenting `token` is refused for `delivery` (whose state the command does not accept).
    static func rejection(_ delivery: DeliveryState?, token: UInt64) -> DeliveryRejection {
        guard let delivery else { return .unknown }
        return delivery.token != token ? .staleToken : .wrongState
    }

    /// Refuses a command, recording `command.rejected`.
    static func reject(
        _ command: String, _ id: String, _ delivery: DeliveryState?, token: UInt64, leaseToken: UInt64?, owner: Owner,
        _ reason: DeliveryRejection
    ) -> Decision<DeliveryCommandResult> {
        Decision(
            .rejected(reason: reason),
            events: [
                .commandRejected(
                    CommandRejected(
                        command: command, subject: id, reason: reason.rawValue, presentedToken: token,
                        currentToken: delivery?.token, presentedLeaseToken: leaseToken, workerID: owner.workerID,
                        instance: owner.instance))
            ],
            correlationIDs: [delivery?.conversationID])
    }
}
