import Foundation
import Projections
import Synchronization

/// Who the bot is (from `getMe`, set at each tenure's start): what a group message must mention to address it.
public final class TelegramBotIdentity: Sendable {
    public struct Identity: Sendable, Equatable {
        public var id: Int64
        public var username: String?
        public var firstName: String?
    }

    private let identity = Mutex<Identity?>(nil)

    public init() {}

    public func set(id: Int64, username: String?, firstName: String?) {
        identity.withLock { $0 = Identity(id: id, username: username, firstName: firstName) }
    }

    public var current: Identity? { identity.withLock { $0 } }
}

/// The group rules of one bot account (`GROUP_POLICY`, `TELEGRAM_ALLOWED_GROUP_IDS`), and how a group message is
/// judged addressed to the assistant.
public struct TelegramGroups: Sendable {
    public var policy: GroupPolicy
    /// Allowed group chat ids; `nil` allows every group (`TELEGRAM_ALLOWED_GROUP_IDS=*`).
    public var allowed: Set<String>?
    public let identity: TelegramBotIdentity

    public init(policy: GroupPolicy = .mention, allowed: Set<String>? = [], identity: TelegramBotIdentity = .init()) {
        self.policy = policy
        self.allowed = allowed
        self.identity = identity
    }

    /// Whether `chat` (its original id) may be answered.
    func allows(_ chat: String) -> Bool { allowed.map { $0.contains(chat) } ?? true }

    /// A group message addresses the bot when it mentions `@username` or the bot's first name as a word (any case),
    /// replies to one of its messages, or is a command (`/stop`, `/stop@username`).
    public func addressed(_ text: String, replyToSender: Int64?) -> Bool {
        guard let me = identity.current else { return text.hasPrefix("/") }
        if let replyToSender, replyToSender == me.id { return true }
        if text.hasPrefix("/") { return true }
        let lower = text.lowercased()
        if let username = me.username, lower.contains("@" + username.lowercased()) { return true }
        if let name = me.firstName?.lowercased(), !name.isEmpty {
            let words = lower.split { !$0.isLetter && !$0.isNumber }
            if words.contains(Substring(name)) { return true }
        }
        return false
    }
}
