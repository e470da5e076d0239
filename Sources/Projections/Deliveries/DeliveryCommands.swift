import EventLog
import SwitchboardEvents
import Foundation

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

/// The result of a delivery enqueue.
public struct DeliveryEnqueue: Sendable, Equatable {
    /// The delivery (the first one, for a repeated idempotency key).
    public var deliveryID: String
    /// Whether the key had been enqueued before.
    public var duplicate: Bool
}

/// Why a delivery command was refused: the `reason` recorded in its `command.rejected`.
public enum DeliveryRejection: String, Sendable, CaseIterable {
    /// The presented claim token is not the delivery's current one.
    case staleToken = "stale_token"
    /// The presented lease token is not the channel account's current tenure.
    case staleLease = "stale_lease"
    /// The account's lease expired.
    case expired
    /// The lease is held by another owner.
    case notOwner = "not_owner"
    /// Nobody holds the account's lease (never acquired, or released).
    case notHeld = "not_held"
    /// The token is current but the delivery is not in a state the command applies to.
    case wrongState = "wrong_state"
    /// No such delivery.
    case unknown
}

/// The outcome of a delivery claim.
public enum DeliveryClaimResult: Sendable, Equatable {
    case claimed(DeliveryClaim)
    /// Nothing claimable now; `retryAt` is the earliest time something may become claimable (rate limits,
    /// backoff), when known.
    case empty(retryAt: LogTimestamp?)
    /// The caller does not hold the channel account's lease under that token (`stale_lease`, `expired`,
    /// `not_owner`, `not_held`).
    case rejected(reason: DeliveryRejection)
}

/// What a batch claim took: its claims in order, and the result that ended it (`nil` when it took its limit).
public struct DeliveryClaims: Sendable, Equatable {
    public var claims: [DeliveryClaim]
    /// `.empty` (with the time something may become claimable) or `.rejected`; never `.claimed`.
    public var stop: DeliveryClaimResult?
}

/// The outcome of a token-fenced delivery command.
public enum DeliveryCommandResult: Sendable, Equatable {
    case accepted
    case rejected(reason: DeliveryRejection)
}

/// The delivery indexes and rate history a claim decision reads for one channel account. Each `forEach` query
/// visits entries lazily, in index order, until `body` returns `false`.
public protocol DeliveryQueueView {
    /// The account's recipients whose FIFO head is pending, as that head (`p.delivery_ready`): earliest
    /// `notBefore` first, then enqueue order. A recipient whose head is in flight is not listed, nor are the
    /// messages behind a head.
    func forEachReady(channel: String, accountID: String, _ body: (DeliveryState) throws -> Bool) throws
    /// The account's claimed or attempting deliveries (`p.delivery_inflight`) whose claim is visible until
    /// strictly before `now`, earliest deadline first.
    func forEachExpiredClaim(
        channel: String, accountID: String, before now: LogTimestamp, _ body: (DeliveryState) throws -> Bool
    ) throws
    /// The times (log microseconds, oldest first) of the account's recent sends, counted when claimed (`p.account_rate`; at
    /// most ``SwitchboardProjector/rateHistoryLimit``).
    func accountSendTimes(channel: String, accountID: String) throws -> [Int64]
    /// The times of recent sends to `recipient`, counted when claimed (`p.recipient_rate`), oldest first.
    func recipientSendTimes(channel: String, accountID: String, recipient: String) throws -> [Int64]
}
