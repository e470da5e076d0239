import Assistant
import Projections

/// A channel the assistant is reached on, with what the rest of the agent needs to know of it. The log stores a
/// channel by its raw value (`conversation.channel`, `delivery.channel`); code compares `Channel`s, never strings.
public enum Channel: String, Sendable, CaseIterable {
    case whatsapp
    case telegram
    case web

    /// The channel of a stored name, `nil` for one this build does not know.
    public init?(stored name: String) { self.init(rawValue: name) }

    /// Replies are provider deliveries; the web chat's reply is the log record itself.
    public var deliversReplies: Bool {
        switch self {
        case .whatsapp, .telegram: true
        case .web: false
        }
    }

    /// The longest text one message may carry (replies are split to fit, see ``TextSplitter``); `nil` when the
    /// channel has no limit. Telegram counts UTF-16 units and WhatsApp characters, both 4 096.
    public var textLimit: Int? {
        switch self {
        case .whatsapp, .telegram: TextSplitter.channelLimit
        case .web: nil
        }
    }

    /// The model tier its replies use: WhatsApp's short turn-taking gets the lite model when one is configured.
    public var modelTier: ModelTier {
        switch self {
        case .whatsapp: .lite
        case .telegram, .web: .standard
        }
    }

    /// A contact answers a tool call's approval request by writing YES or NO (the web chat answers with its card,
    /// so a typed "no" there stays a message).
    public var answersApprovalsInText: Bool {
        switch self {
        case .whatsapp, .telegram: true
        case .web: false
        }
    }

    /// The provider's send-rate limits, enforced by the delivery claim decision.
    public var rateLimits: RateLimits? {
        switch self {
        // Bot API: about 1 message per second per chat with short bursts tolerated, 20 per minute per group (negative
        // chat ids), 30 per second.
        case .telegram:
            RateLimits(
                perRecipientInterval: .seconds(1), perRecipientBurst: 3, perGroupWindow: (20, .seconds(60)),
                perAccount: (30, .seconds(1)), isGroup: { $0.hasPrefix("-") })
        // Cloud API: a pair rate of about 1 message per 6 seconds per user, bursts borrowing from it (up to 45 in
        // 6 s; 4 here), 80 per second per number.
        case .whatsapp:
            RateLimits(perRecipientInterval: .seconds(6), perRecipientBurst: 4, perAccount: (80, .seconds(1)))
        case .web: nil
        }
    }

    /// Every channel's rate limits by stored name, for ``DeliverySettings/rateLimits``.
    public static var deliveryRateLimits: [String: RateLimits] {
        Dictionary(
            uniqueKeysWithValues: allCases.compactMap { channel in channel.rateLimits.map { (channel.rawValue, $0) } })
    }
}

/// A Telegram message as the log names it (`externalID`, `replyToExternalID`): `<chat>:<message_id>`, an edit
/// `<chat>:<message_id>:edit:<date>`. Built and read here only.
public struct TelegramMessageRef: Sendable, Equatable {
    public var chat: Int64
    public var messageID: Int64
    /// The edit's date, for an edited message (each edit is its own inbound record).
    public var editDate: Int64?

    public init(chat: Int64, messageID: Int64, editDate: Int64? = nil) {
        self.chat = chat
        self.messageID = messageID
        self.editDate = editDate
    }

    /// Reads a stored reference; `nil` for anything else (an `update:<id>` of an ignored update).
    public init?(externalID: String) {
        let fields = externalID.split(separator: ":", omittingEmptySubsequences: false)
        guard fields.count == 2 || (fields.count == 4 && fields[2] == "edit"), let chat = Int64(fields[0]),
            let messageID = Int64(fields[1])
        else { return nil }
        self.chat = chat
        self.messageID = messageID
        editDate = fields.count == 4 ? Int64(fields[3]) : nil
        if fields.count == 4 && editDate == nil { return nil }
    }

    /// The stored form.
    public var externalID: String {
        editDate.map { "\(chat):\(messageID):edit:\($0)" } ?? "\(chat):\(messageID)"
    }
}
