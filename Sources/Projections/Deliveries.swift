import EventLog
import SwitchboardEvents
import Foundation

/// Send-rate limits of a channel account, enforced by the claim decision.
public struct RateLimits: Sendable, Equatable {
    /// Least time between two sends to one recipient.
    public var perRecipientInterval: Duration
    /// At most `count` sends to one *group* recipient per `window` (Telegram: 20 per minute).
    public var perGroupWindow: (count: Int, window: Duration)?
    /// At most `count` sends per `window` for the whole account (WhatsApp: 80 per second per number).
    public var perAccount: (count: Int, window: Duration)

    public init(
        perRecipientInterval: Duration, perGroupWindow: (count: Int, window: Duration)? = nil,
        perAccount: (count: Int, window: Duration)
    ) {
        self.perRecipientInterval = perRecipientInterval
        self.perGroupWindow = perGroupWindow
        self.perAccount = (min(perAccount.count, SwitchboardProjector.rateHistoryLimit), perAccount.window)
    }

    /// Telegram Bot API: about 1 message per second per chat, 20 per minute per group, 30 per second overall.
    public static let telegram = RateLimits(
        perRecipientInterval: .seconds(1), perGroupWindow: (20, .seconds(60)), perAccount: (30, .seconds(1)))
    /// WhatsApp Cloud API: about 1 message per 6 seconds per user, 80 per second per number.
    public static let whatsapp = RateLimits(perRecipientInterval: .seconds(6), perAccount: (80, .seconds(1)))
    /// No limits (web chat, tests).
    public static let none = RateLimits(
        perRecipientInterval: .zero, perAccount: (SwitchboardProjector.rateHistoryLimit, .zero))

    public static func == (lhs: RateLimits, rhs: RateLimits) -> Bool {
        lhs.perRecipientInterval == rhs.perRecipientInterval && lhs.perGroupWindow?.count == rhs.perGroupWindow?.count
            && lhs.perGroupWindow?.window == rhs.perGroupWindow?.window && lhs.perAccount == rhs.perAccount
    }

    /// Telegram group chats have negative chat ids.
    static func isGroup(_ recipient: String) -> Bool { recipient.hasPrefix("-") }
}

/// What to do with a delivery whose outcome is unknown (the request may have reached the provider).
public enum UncertainPolicy: String, Sendable, Equatable {
    /// Keep it `uncertain` and list it for operators; never resend automatically (the default).
    case hold
    /// Resend it (risking a duplicate).
    case retry
}

/// The delivery settings a decider needs.
public struct DeliverySettings: Sendable, Equatable {
    /// How long a claim stays valid (default 120 s).
    public var visibility: Duration = .seconds(120)
    /// Attempts before a delivery fails for good (default 5).
    public var maxAttempts = 5
    public var retry = RetryPolicy()
    public var uncertainPolicy = UncertainPolicy.hold
    /// Rate limits by channel; channels not listed are unlimited.
    public var rateLimits: [String: RateLimits] = ["telegram": .telegram, "whatsapp": .whatsapp]

    public init() {}
}

/// A new outbound message.
public struct NewDelivery: Sendable, Equatable {
    public var deliveryID: String = timeOrderedID("d")
    /// The assistant message id and part, e.g. `msg-42:0`; a repeat returns the first delivery.
    public var idempotencyKey: String
    public var channel: String
    public var accountID: String
    public var recipient: String
    public var conversationID: String
    public var text: String
    public var kind = "assistant_message"
    public var part = 0
    public var sourceMessageID: String?
    public var replyToExternalID: String?
    public var jobID: String?
    public var jobToken: UInt64?

    public init(
        idempotencyKey: String, channel: String, accountID: String, recipient: String, conversationID: String,
        text: String
    ) {
        self.idempotencyKey = idempotencyKey
        self.channel = channel
        self.accountID = accountID
        self.recipient = recipient
        self.conversationID = conversationID
        self.text = text
    }
}

/// A delivery claim: send it under ``token`` and the lease token, recording the attempt first.
public struct DeliveryClaim: Sendable, Equatable {
    public var delivery: DeliveryState
    public var token: UInt64
    public var leaseToken: UInt64
    public var attempt: Int
    public var visibleUntil: LogTimestamp
}

/// The outcome of a delivery claim.
public enum DeliveryClaimResult: Sendable, Equatable {
    case claimed(DeliveryClaim)
    /// Nothing claimable now; `retryAt` is the earliest time something may become claimable (rate limits,
    /// backoff), when known.
    case empty(retryAt: LogTimestamp?)
    /// The caller does not hold the channel account's lease under that token (`stale_lease`, `expired`,
    /// `not_owner`, `not_held`).
    case rejected(reason: String)
}

/// The outcome of a token-fenced delivery command.
public enum DeliveryCommandResult: Sendable, Equatable {
    case accepted
    /// `reason`: `stale_token`, `stale_lease`, `expired`, `not_owner`, `wrong_state`, `unknown`.
    case rejected(reason: String)
}

/// Delivery deciders: run inside the write transaction.
public enum DeliveryDecider {
    typealias T = ProjectionTables

    static func load(_ id: String, _ context: borrowing WriteContext) throws -> DeliveryState? {
        try context.tables.load(DeliveryState.self, T.deliveries, Key(id))
    }

    /// Enqueues an outbound message unless its idempotency key was seen before.
    public static func enqueue(
        _ delivery: NewDelivery, settings: DeliverySettings, _ context: inout WriteContext
    ) throws -> (deliveryID: String, duplicate: Bool) {
        guard !delivery.idempotencyKey.isEmpty, !delivery.channel.isEmpty, !delivery.accountID.isEmpty,
            !delivery.recipient.isEmpty
        else {
            throw ProjectionError(.invalidArgument, "a delivery needs a key, channel, account and recipient")
        }
        if let existing = try context.tables.get(
            context.tables.table(T.deliveryKeys), Key(delivery.idempotencyKey).bytes)
        {
            return (String(decoding: existing, as: UTF8.self), true)
        }
        try context.append(
            .deliveryEnqueued(
                DeliveryEnqueued(
                    deliveryID: delivery.deliveryID, idempotencyKey: delivery.idempotencyKey, channel: delivery.channel,
                    accountID: delivery.accountID, recipient: delivery.recipient,
                    conversationID: delivery.conversationID,
                    sourceMessageID: delivery.sourceMessageID, part: delivery.part, kind: delivery.kind,
                    text: delivery.text, maxAttempts: settings.maxAttempts,
                    replyToExternalID: delivery.replyToExternalID,
                    jobID: delivery.jobID, jobToken: delivery.jobToken)),
            correlationID: delivery.conversationID)
        return (delivery.deliveryID, false)
    }

    /// Claims the next deliverable message of `channel`/`accountID` for `owner`, who must hold that account's
    /// lease under `leaseToken`. FIFO per recipient (only the oldest unfinished message of a recipient is
    /// claimable), and within the rate limits.
    public static func claim(
        channel: String, accountID: String, owner: Owner, leaseToken: UInt64, settings: DeliverySettings,
        _ context: inout WriteContext
    ) throws -> DeliveryClaimResult {
        let resource = "\(channel)/\(accountID)"
        if let reason = try LeaseDecider.checkHolder(resource, owner: owner, leaseToken: leaseToken, context) {
            try context.append(
                .commandRejected(
                    CommandRejected(
                        command: "delivery.claim", subject: resource, reason: reason, presentedToken: nil,
                        currentToken: nil, presentedLeaseToken: leaseToken, workerID: owner.workerID,
                        instance: owner.instance)))
            return .rejected(reason: reason)
        }
        try reclaimExpired(channel: channel, accountID: accountID, settings: settings, &context)
        let limits = settings.rateLimits[channel] ?? .none
        let now = context.now
        let account = SwitchboardProjector.accountKey(channel, accountID)
        // Account-wide window.
        let accountTimes = try context.tables.load([Int64].self, T.accountRate, account) ?? []
        if limits.perAccount.window > .zero {
            let since = now.advanced(by: .zero - limits.perAccount.window).microseconds
            let recent = accountTimes.filter { $0 > since }
            if recent.count >= limits.perAccount.count {
                let retryAt = LogTimestamp(microseconds: recent[recent.count - limits.perAccount.count])
                    .advanced(by: limits.perAccount.window)
                return .empty(retryAt: retryAt)
            }
        }
        var chosen: DeliveryState?
        var earliest: LogTimestamp?
        func note(_ time: LogTimestamp) { earliest = min(earliest ?? time, time) }
        let prefix = account.prefix
        try context.tables.scan(context.tables.table(T.deliveryPending), from: prefix) { key, value in
            guard hasPrefix(key, prefix) else { return false }
            let id = String(decoding: value, as: UTF8.self)
            guard let delivery = try context.tables.load(DeliveryState.self, T.deliveries, Key(id)) else { return true }
            if delivery.notBefore > now {
                note(delivery.notBefore)
                return true
            }
            // FIFO per recipient: the oldest unfinished delivery of the recipient goes first.
            let headPrefix = account.appending(delivery.recipient).prefix
            var head: String?
            try context.tables.scan(context.tables.table(T.recipientQueue), from: headPrefix) { k, v in
                if hasPrefix(k, headPrefix) { head = String(decoding: v, as: UTF8.self) }
                return false
            }
            if head != id { return true }
            if let until = try recipientBlockedUntil(delivery, limits: limits, now: now, context) {
                note(until)
                return true
            }
            chosen = delivery
            return false
        }
        guard let delivery = chosen else { return .empty(retryAt: earliest) }
        let token = context.nextSeq
        let visibleUntil = now.advanced(by: settings.visibility)
        let attempt = delivery.attempt + 1
        try context.append(
            .deliveryClaimed(
                DeliveryClaimed(
                    deliveryID: delivery.deliveryID, workerID: owner.workerID, ownerInstance: owner.instance,
                    token: token,
                    leaseResource: resource, leaseToken: leaseToken, attempt: attempt, visibleUntil: visibleUntil)),
            correlationID: delivery.conversationID)
        var claimed = delivery
        claimed.status = .claimed
        claimed.token = token
        claimed.leaseToken = leaseToken
        claimed.attempt = attempt
        claimed.claimedBy = owner
        claimed.visibleUntil = visibleUntil
        return .claimed(
            DeliveryClaim(
                delivery: claimed, token: token, leaseToken: leaseToken, attempt: attempt, visibleUntil: visibleUntil))
    }

    /// When the recipient may next receive a message, or `nil` if now.
    static func recipientBlockedUntil(
        _ delivery: DeliveryState, limits: RateLimits, now: LogTimestamp, _ context: borrowing WriteContext
    ) throws -> LogTimestamp? {
        let key = SwitchboardProjector.accountKey(delivery.channel, delivery.accountID).appending(delivery.recipient)
        let times = try context.tables.load([Int64].self, T.recipientRate, key) ?? []
        var until: LogTimestamp?
        if let last = times.last {
            let next = LogTimestamp(microseconds: last).advanced(by: limits.perRecipientInterval)
            if next > now { until = next }
        }
        if let group = limits.perGroupWindow, RateLimits.isGroup(delivery.recipient), group.count > 0 {
            let since = now.advanced(by: .zero - group.window).microseconds
            let recent = times.filter { $0 > since }
            if recent.count >= group.count {
                let next = LogTimestamp(microseconds: recent[recent.count - group.count]).advanced(by: group.window)
                until = max(until ?? next, next)
            }
        }
        return until
    }

    /// Claims of this account whose visibility ran out: not yet attempted → back to pending (an attempt spent);
    /// attempted → uncertain (the send may have happened), or retried under ``UncertainPolicy/retry``.
    static func reclaimExpired(
        channel: String, accountID: String, settings: DeliverySettings, _ context: inout WriteContext
    ) throws {
        let prefix = SwitchboardProjector.accountKey(channel, accountID).prefix
        var expired: [String] = []
        let nowKey = orderKey(context.now)
        try context.tables.scan(context.tables.table(T.deliveryInflight), from: prefix) { key, value in
            guard hasPrefix(key, prefix), key.count >= prefix.count + 8 else { return false }
            let until = UInt64(
                bigEndian: key[prefix.count..<prefix.count + 8].withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
            if until >= nowKey { return false }
            expired.append(String(decoding: value, as: UTF8.self))
            return true
        }
        for id in expired {
            guard let delivery = try load(id, context) else { continue }
            switch delivery.status {
            case .claimed:
                try failAttempt(
                    delivery, permanent: false, retryAfter: nil, code: "claim_expired",
                    message: "claim expired before the send was attempted", settings: settings, &context)
            case .attempting:
                try markUncertain(
                    delivery, reason: "claim expired after the send was attempted", settings: settings, &context)
            default:
                continue
            }
        }
    }

    /// Records that the provider call for `deliveryID` is about to start. Requires the current delivery claim
    /// token and the current, live lease token of the channel account.
    public static func attempt(
        _ deliveryID: String, token: UInt64, leaseToken: UInt64, owner: Owner, _ context: inout WriteContext
    ) throws -> DeliveryCommandResult {
        guard let delivery = try load(deliveryID, context) else {
            return try reject(
                "delivery.attempt", deliveryID, nil, token: token, leaseToken: leaseToken, owner: owner, "unknown",
                &context)
        }
        if delivery.token != token {
            return try reject(
                "delivery.attempt", deliveryID, delivery, token: token, leaseToken: leaseToken, owner: owner,
                "stale_token", &context)
        }
        if delivery.status != .claimed {
            return try reject(
                "delivery.attempt", deliveryID, delivery, token: token, leaseToken: leaseToken, owner: owner,
                "wrong_state", &context)
        }
        if let reason = try LeaseDecider.checkHolder(
            delivery.leaseResource, owner: owner, leaseToken: leaseToken, context)
        {
            return try reject(
                "delivery.attempt", deliveryID, delivery, token: token, leaseToken: leaseToken, owner: owner, reason,
                &context)
        }
        try context.append(
            .deliveryAttempted(
                DeliveryAttempted(
                    deliveryID: deliveryID, token: token, leaseToken: leaseToken, attempt: delivery.attempt)),
            correlationID: delivery.conversationID)
        return .accepted
    }

    /// Records the provider's acceptance of an attempted delivery (also late, after the claim expired into
    /// `uncertain`, as long as no newer claim exists: a send that happened is recorded).
    public static func sent(
        _ deliveryID: String, token: UInt64, providerMessageID: String?, owner: Owner, _ context: inout WriteContext
    ) throws -> DeliveryCommandResult {
        guard let delivery = try load(deliveryID, context), delivery.token == token,
            delivery.status == .attempting || delivery.status == .uncertain
        else {
            let delivery = try load(deliveryID, context)
            let reason = delivery == nil ? "unknown" : delivery?.token != token ? "stale_token" : "wrong_state"
            return try reject(
                "delivery.sent", deliveryID, delivery, token: token, leaseToken: nil, owner: owner, reason, &context)
        }
        try context.append(
            .deliverySent(
                DeliverySent(
                    deliveryID: deliveryID, token: token, leaseToken: delivery.leaseToken ?? 0,
                    attempt: delivery.attempt,
                    providerMessageID: providerMessageID)),
            correlationID: delivery.conversationID)
        return .accepted
    }

    /// Records a failed attempt: `permanent` (bad recipient, bad token…) fails it for good; otherwise it is
    /// retried after `retryAfter` (the provider's) or the backoff, until out of attempts.
    public static func failed(
        _ deliveryID: String, token: UInt64, owner: Owner, permanent: Bool, retryAfter: LogTimestamp?,
        errorCode: String?, message: String, settings: DeliverySettings, _ context: inout WriteContext
    ) throws -> DeliveryCommandResult {
        guard let delivery = try load(deliveryID, context), delivery.token == token,
            delivery.status == .attempting || delivery.status == .claimed
        else {
            let delivery = try load(deliveryID, context)
            let reason = delivery == nil ? "unknown" : delivery?.token != token ? "stale_token" : "wrong_state"
            return try reject(
                "delivery.failed", deliveryID, delivery, token: token, leaseToken: nil, owner: owner, reason, &context)
        }
        try failAttempt(
            delivery, permanent: permanent, retryAfter: retryAfter, code: errorCode, message: message,
            settings: settings, &context)
        return .accepted
    }

    /// Records that an attempted send may or may not have reached the provider (a timeout after the request
    /// was written, a crash mid-send).
    public static func uncertain(
        _ deliveryID: String, token: UInt64, owner: Owner, reason: String, settings: DeliverySettings,
        _ context: inout WriteContext
    ) throws -> DeliveryCommandResult {
        guard let delivery = try load(deliveryID, context), delivery.token == token, delivery.status == .attempting
        else {
            let delivery = try load(deliveryID, context)
            let why = delivery == nil ? "unknown" : delivery?.token != token ? "stale_token" : "wrong_state"
            return try reject(
                "delivery.uncertain", deliveryID, delivery, token: token, leaseToken: nil, owner: owner, why, &context)
        }
        try markUncertain(delivery, reason: reason, settings: settings, &context)
        return .accepted
    }

    static func failAttempt(
        _ delivery: DeliveryState, permanent: Bool, retryAfter: LogTimestamp?, code: String?, message: String,
        settings: DeliverySettings, _ context: inout WriteContext
    ) throws {
        let outOfAttempts = delivery.attempt >= delivery.maxAttempts
        var notBefore: LogTimestamp?
        if !permanent && !outOfAttempts {
            let backoff = context.now.advanced(
                by: settings.retry.delay(afterAttempt: delivery.attempt, key: delivery.deliveryID))
            notBefore = max(backoff, retryAfter ?? backoff)
        }
        try context.append(
            .deliveryFailed(
                DeliveryFailed(
                    deliveryID: delivery.deliveryID, token: delivery.token, attempt: delivery.attempt,
                    permanent: permanent || outOfAttempts, retryAfter: notBefore, errorCode: code,
                    message: String(message.prefix(500)))),
            correlationID: delivery.conversationID)
    }

    static func markUncertain(
        _ delivery: DeliveryState, reason: String, settings: DeliverySettings, _ context: inout WriteContext
    ) throws {
        try context.append(
            .deliveryUncertain(
                DeliveryUncertain(
                    deliveryID: delivery.deliveryID, token: delivery.token, attempt: delivery.attempt, reason: reason)),
            correlationID: delivery.conversationID)
        if settings.uncertainPolicy == .retry {
            var uncertain = delivery
            uncertain.status = .uncertain
            try failAttempt(
                uncertain, permanent: false, retryAfter: nil, code: "uncertain",
                message: "retrying an uncertain send (policy retry): the recipient may get a duplicate",
                settings: settings, &context)
        }
    }

    static func reject(
        _ command: String, _ id: String, _ delivery: DeliveryState?, token: UInt64, leaseToken: UInt64?, owner: Owner,
        _ reason: String, _ context: inout WriteContext
    ) throws -> DeliveryCommandResult {
        try context.append(
            .commandRejected(
                CommandRejected(
                    command: command, subject: id, reason: reason, presentedToken: token, currentToken: delivery?.token,
                    presentedLeaseToken: leaseToken, workerID: owner.workerID, instance: owner.instance)),
            correlationID: delivery?.conversationID)
        return .rejected(reason: reason)
    }
}
