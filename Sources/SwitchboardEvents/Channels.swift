import EventLog

// MARK: - Channel ingress: what a webhook or a poll brought in besides messages

/// A provider update acknowledged without becoming a message (`inbound.ignored`): a Telegram callback query or
/// a sticker without caption, a WhatsApp reaction or location, a change for another phone number.
///
/// Written by the channel worker that received it, in the same transaction as the rest of its batch. The
/// triple (``channel``, ``accountID``, ``externalID``) shares the dedupe key space of `message.received`: a
/// second record of the same update is refused (decided by the Projections module), so a replayed update is
/// recorded once.
public struct InboundIgnored: EventPayload {
    public static let eventType = "inbound.ignored"

    /// The channel: `whatsapp` or `telegram`.
    public var channel: String
    /// The channel account that received the update.
    public var accountID: String
    /// The provider's id of the update: `update:<update_id>` on Telegram, the `wamid` on WhatsApp.
    public var externalID: String
    /// What the update was, e.g. `callback_query`, `message` (without text), `reaction`, `location`.
    public var kind: String
    /// Why it was not processed: `unsupported_kind`, `no_text`, `malformed`, `service_message`,
    /// `other_phone_number`, `no_media_id`.
    public var reason: String
    /// The sender, when the update names one.
    public var contactID: String?
    /// For `malformed`: what was wrong, short — the field and the problem (`text.body: invalid text …`,
    /// `timestamp: not a sane number of seconds`, `id: missing`, `status: unknown value "…"`), never the body or a
    /// secret. Additive optional field (schema version unchanged).
    public var detail: String?

    /// Creates an `inbound.ignored` event.
    public init(
        channel: String, accountID: String, externalID: String, kind: String, reason: String, contactID: String? = nil,
        detail: String? = nil
    ) {
        self.channel = channel
        self.accountID = accountID
        self.externalID = externalID
        self.kind = kind
        self.reason = reason
        self.contactID = contactID
        self.detail = detail
    }
}

/// A webhook request refused before its body was trusted (`webhook.rejected`): a missing or wrong Telegram
/// secret token, a missing or bad WhatsApp `X-Hub-Signature-256`, a route whose secret is not configured, or a
/// wrong verify token in the subscription handshake.
///
/// Written by the HTTP ingress of the process that refused it. Refusals are coalesced: at most one record per
/// second for each (channel, account, reason); ``suppressed`` counts the refusals since the previous record that
/// were answered but not recorded, so the total is the sum of `1 + suppressed` over the records.
public struct WebhookRejected: EventPayload {
    public static let eventType = "webhook.rejected"

    /// The channel whose route refused the request: `telegram` or `whatsapp`.
    public var channel: String
    /// The channel account the route serves.
    public var accountID: String
    /// `missing_secret`, `bad_secret`, `missing_signature`, `bad_signature`, `not_configured`,
    /// `bad_verify_token`.
    public var reason: String
    /// The HTTP status answered (401, 403, 500…).
    public var status: Int
    /// Refusals with the same reason answered since the previous record and not recorded one by one.
    public var suppressed: Int
    /// The refusing process's worker id.
    public var workerID: String
    /// The refusing process's instance.
    public var instance: String

    /// Creates a `webhook.rejected` event.
    public init(
        channel: String, accountID: String, reason: String, status: Int, suppressed: Int = 0, workerID: String,
        instance: String
    ) {
        self.channel = channel
        self.accountID = accountID
        self.reason = reason
        self.status = status
        self.suppressed = suppressed
        self.workerID = workerID
        self.instance = instance
    }
}

/// The provider's report on a message we sent (`delivery.status`): WhatsApp Cloud `statuses[]` — `sent`,
/// `delivered`, `read` or `failed` — matched to our delivery by the provider message id (the `wamid` recorded by
/// `delivery.sent`).
///
/// Written by the channel worker that received the status webhook. Reports arrive in any order (a `read` may
/// come without or before `delivered`, and a report may arrive before our `delivery.sent` is written); each
/// (channel, account, provider message id, status) is recorded once (decided by the Projections module).
public struct DeliveryStatusReported: EventPayload {
    public static let eventType = "delivery.status"

    /// The channel: `whatsapp`.
    public var channel: String
    /// The channel account (routed by the webhook's phone number id).
    public var accountID: String
    /// The provider message id of our message (WhatsApp `wamid`).
    public var providerMessageID: String
    /// `sent`, `delivered`, `read`, `failed` (or another value the provider adds).
    public var status: String
    /// Our delivery with that provider message id, when its `delivery.sent` was already recorded.
    public var deliveryID: String?
    /// The recipient the provider names.
    public var recipient: String?
    /// The provider's time of the status.
    public var providerTimestamp: LogTimestamp?
    /// For `failed`: the provider's error code, e.g. `131047`.
    public var errorCode: String?
    /// For `failed`: the provider's error title or message.
    public var errorTitle: String?

    /// Creates a `delivery.status` event.
    public init(
        channel: String, accountID: String, providerMessageID: String, status: String, deliveryID: String? = nil,
        recipient: String? = nil, providerTimestamp: LogTimestamp? = nil, errorCode: String? = nil,
        errorTitle: String? = nil
    ) {
        self.channel = channel
        self.accountID = accountID
        self.providerMessageID = providerMessageID
        self.status = status
        self.deliveryID = deliveryID
        self.recipient = recipient
        self.providerTimestamp = providerTimestamp
        self.errorCode = errorCode
        self.errorTitle = errorTitle
    }
}
