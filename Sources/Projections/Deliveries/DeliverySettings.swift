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

/// The `errorCode` of a `delivery.failed` that settles a claim whose send was never attempted: nothing reached
/// the provider, so it is no send failure (`replay alerts` does not count it); the delivery is pending again.
public enum UnattemptedRelease: String, Sendable, CaseIterable {
    /// The claim's visibility ran out before its holder recorded an attempt.
    case claimExpired = "claim_expired"
    /// A new tenure of the account's lease began while it was claimed under an earlier one.
    case tenureEnded = "tenure_ended"
    /// Its holder handed it back unsent: the lease was lost after the claim.
    case leaseLost = "lease_lost"
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
