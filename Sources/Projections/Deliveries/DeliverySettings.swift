import EventLog
import SwitchboardEvents
import Foundation

/// Send-rate limits of a channel account, enforced by the claim decision. The channels' own limits are the
/// Workers' (`Channel.rateLimits`), given to the engine in ``DeliverySettings/rateLimits``.
public struct RateLimits: Sendable, Equatable {
    /// One recipient's sustained rate: one send per interval (the refill of its token bucket).
    public var perRecipientInterval: Duration
    /// How many sends one recipient may get at once after a quiet spell (its token bucket's size): a reply in
    /// three parts to a recipient who had nothing for a while goes out at once, then the interval holds. `1` is a
    /// fixed interval between any two sends.
    public var perRecipientBurst: Int
    /// At most `count` sends to one *group* recipient per `window`.
    public var perGroupWindow: (count: Int, window: Duration)?
    /// At most `count` sends per `window` for the whole account.
    public var perAccount: (count: Int, window: Duration)
    /// Whether a recipient is a group (its window is ``perGroupWindow``); the channel knows how to tell.
    public var isGroup: @Sendable (String) -> Bool

    public init(
        perRecipientInterval: Duration, perRecipientBurst: Int = 1,
        perGroupWindow: (count: Int, window: Duration)? = nil,
        perAccount: (count: Int, window: Duration), isGroup: @escaping @Sendable (String) -> Bool = { _ in false }
    ) {
        self.perRecipientInterval = perRecipientInterval
        self.perRecipientBurst = max(1, perRecipientBurst)
        self.perGroupWindow = perGroupWindow
        self.perAccount = (min(perAccount.count, SwitchboardProjector.rateHistoryLimit), perAccount.window)
        self.isGroup = isGroup
    }

    /// No limits (web chat, tests).
    public static let none = RateLimits(
        perRecipientInterval: .zero, perAccount: (SwitchboardProjector.rateHistoryLimit, .zero))

    public static func == (lhs: RateLimits, rhs: RateLimits) -> Bool {
        lhs.perRecipientInterval == rhs.perRecipientInterval && lhs.perRecipientBurst == rhs.perRecipientBurst
            && lhs.perGroupWindow?.count == rhs.perGroupWindow?.count
            && lhs.perGroupWindow?.window == rhs.perGroupWindow?.window && lhs.perAccount == rhs.perAccount
    }
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
    /// Rate limits by channel (the stored name); channels not listed are unlimited. The agent gives the channels'
    /// own (`Channel.deliveryRateLimits` in Workers); none by default.
    public var rateLimits: [String: RateLimits] = [:]

    public init() {}
}
