import EventLog
/// An outbound message part entered the delivery queue (`delivery.enqueued`).
///
/// Written by the core worker running a job (replies, approval requests, typing indicators) or by other
/// producers. A second `delivery.enqueued` with an ``idempotencyKey`` already seen is rejected (decided by
/// the Projections module).
public struct DeliveryEnqueued: EventPayload {
    public static let eventType = "delivery.enqueued"

    /// The delivery id, made by the writer.
    public var deliveryID: String
    /// A key that makes enqueueing idempotent: the assistant message id plus the part number, e.g. `m-123#0`.
    public var idempotencyKey: String
    /// The channel to send on: `whatsapp`, `telegram` or `web`.
    public var channel: String
    /// The channel account to send from; its sender must hold the account's lease.
    public var accountID: String
    /// The recipient at the provider: phone / WhatsApp id, Telegram chat id, or web user id.
    public var recipient: String
    /// The conversation the delivery belongs to.
    public var conversationID: String
    /// The assistant message this delivery carries, if any.
    public var sourceMessageID: String?
    /// The part number within the source message (long texts are split), from 0.
    public var part: Int
    /// What is sent: `assistant_message`, `tool_approval_request` or `typing_indicator`.
    public var kind: String
    /// The text to send (empty for typing indicators).
    public var text: String
    /// The number of send attempts allowed before the delivery fails for good.
    public var maxAttempts: Int
    /// The provider id of the inbound message this answers, when the provider needs it (a WhatsApp Cloud
    /// typing indicator marks that message read) or for a threaded reply.
    public var replyToExternalID: String?
    /// The job that produced the delivery, if a job did.
    public var jobID: String?
    /// The fencing token of that job's claim (``JobClaimed/token``), when ``jobID`` is set.
    public var jobToken: UInt64?

    /// Creates a `delivery.enqueued` event.
    public init(
        deliveryID: String, idempotencyKey: String, channel: String, accountID: String, recipient: String,
        conversationID: String, sourceMessageID: String? = nil, part: Int = 0, kind: String, text: String,
        maxAttempts: Int, replyToExternalID: String? = nil, jobID: String? = nil, jobToken: UInt64? = nil
    ) {
        self.deliveryID = deliveryID
        self.idempotencyKey = idempotencyKey
        self.channel = channel
        self.accountID = accountID
        self.recipient = recipient
        self.conversationID = conversationID
        self.sourceMessageID = sourceMessageID
        self.part = part
        self.kind = kind
        self.text = text
        self.maxAttempts = maxAttempts
        self.replyToExternalID = replyToExternalID
        self.jobID = jobID
        self.jobToken = jobToken
    }
}

/// A channel worker claimed a delivery for one send attempt (`delivery.claimed`).
///
/// Written by the sending worker through a command decided by the Projections module, while it holds the
/// lease ``leaseResource`` with token ``leaseToken``.
public struct DeliveryClaimed: EventPayload {
    public static let eventType = "delivery.claimed"

    /// The claimed delivery.
    public var deliveryID: String
    /// The operator-chosen worker id of the claimant.
    public var workerID: String
    /// The claimant's per-process instance id (the UUID of its `WriterIdentity.instanceID`).
    public var ownerInstance: String
    /// The fencing token of this claim, greater than every earlier claim token of the delivery.
    public var token: UInt64
    /// The lease the claim was made under, e.g. `whatsapp/default`.
    public var leaseResource: String
    /// The lease's fencing token at claim time (``LeaseAcquired/token``).
    public var leaseToken: UInt64
    /// The send attempt this claim starts, from 1.
    public var attempt: Int
    /// The log time the claim expires.
    public var visibleUntil: LogTimestamp

    /// Creates a `delivery.claimed` event.
    public init(
        deliveryID: String, workerID: String, ownerInstance: String, token: UInt64, leaseResource: String,
        leaseToken: UInt64, attempt: Int, visibleUntil: LogTimestamp
    ) {
        self.deliveryID = deliveryID
        self.workerID = workerID
        self.ownerInstance = ownerInstance
        self.token = token
        self.leaseResource = leaseResource
        self.leaseToken = leaseToken
        self.attempt = attempt
        self.visibleUntil = visibleUntil
    }
}

/// The claimant is about to call the provider (`delivery.attempted`).
///
/// Committed **before** the provider call, so that a crash after it leaves evidence that the message may
/// have gone out. Accepted only while ``token`` is the delivery's current claim and ``leaseToken`` the
/// current lease token (decided by the Projections module).
public struct DeliveryAttempted: EventPayload {
    public static let eventType = "delivery.attempted"

    /// The delivery.
    public var deliveryID: String
    /// The fencing token of the delivery claim.
    public var token: UInt64
    /// The fencing token of the channel account lease.
    public var leaseToken: UInt64
    /// The send attempt, as in `delivery.claimed`.
    public var attempt: Int

    /// Creates a `delivery.attempted` event.
    public init(deliveryID: String, token: UInt64, leaseToken: UInt64, attempt: Int) {
        self.deliveryID = deliveryID
        self.token = token
        self.leaseToken = leaseToken
        self.attempt = attempt
    }
}

/// The provider accepted the message (`delivery.sent`).
public struct DeliverySent: EventPayload {
    public static let eventType = "delivery.sent"

    /// The delivery.
    public var deliveryID: String
    /// The fencing token of the delivery claim.
    public var token: UInt64
    /// The fencing token of the channel account lease.
    public var leaseToken: UInt64
    /// The send attempt that succeeded.
    public var attempt: Int
    /// The provider's id of the sent message (WhatsApp `wamid`, Telegram `message_id`), used to match status
    /// callbacks; `nil` when the provider returns none (typing indicators).
    public var providerMessageID: String?

    /// Creates a `delivery.sent` event.
    public init(deliveryID: String, token: UInt64, leaseToken: UInt64, attempt: Int, providerMessageID: String?) {
        self.deliveryID = deliveryID
        self.token = token
        self.leaseToken = leaseToken
        self.attempt = attempt
        self.providerMessageID = providerMessageID
    }
}

/// A send attempt failed in a way known not to have delivered the message (`delivery.failed`).
///
/// Whether the delivery is retried (respecting ``retryAfter``) or fails for good (``permanent``, or attempts
/// spent) is decided by the Projections module.
public struct DeliveryFailed: EventPayload {
    public static let eventType = "delivery.failed"

    /// The delivery.
    public var deliveryID: String
    /// The fencing token of the delivery claim.
    public var token: UInt64
    /// The send attempt that failed.
    public var attempt: Int
    /// `true` when retrying cannot help (invalid recipient, blocked bot, 24-hour window closed, bad request).
    public var permanent: Bool
    /// The earliest log time a retry may happen, when the provider says (Telegram `retry_after`).
    public var retryAfter: LogTimestamp?
    /// The provider's error code as text, e.g. `131047` (WhatsApp) or `403` (Telegram).
    public var errorCode: String?
    /// A human-readable description of the failure (no secrets).
    public var message: String

    /// Creates a `delivery.failed` event.
    public init(
        deliveryID: String, token: UInt64, attempt: Int, permanent: Bool, retryAfter: LogTimestamp? = nil,
        errorCode: String? = nil, message: String
    ) {
        self.deliveryID = deliveryID
        self.token = token
        self.attempt = attempt
        self.permanent = permanent
        self.retryAfter = retryAfter
        self.errorCode = errorCode
        self.message = message
    }
}

/// A send attempt ended without knowing whether the provider got the message (`delivery.uncertain`).
///
/// Written by the sender, e.g. after a timeout or a dropped connection once the request was written, or by the
/// delivery decider with reason `claim_expired` when a claim expires after `delivery.attempted` without an
/// outcome. Whether and when an uncertain delivery is retried is decided by the Projections module.
public struct DeliveryUncertain: EventPayload {
    public static let eventType = "delivery.uncertain"

    /// The delivery.
    public var deliveryID: String
    /// The fencing token of the delivery claim.
    public var token: UInt64
    /// The send attempt whose outcome is unknown.
    public var attempt: Int
    /// Why the outcome is unknown, e.g. `timeout`, `connection_reset` or `claim_expired`.
    public var reason: String

    /// Creates a `delivery.uncertain` event.
    public init(deliveryID: String, token: UInt64, attempt: Int, reason: String) {
        self.deliveryID = deliveryID
        self.token = token
        self.attempt = attempt
        self.reason = reason
    }
}
