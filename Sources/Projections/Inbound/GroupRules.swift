/// Whether the assistant answers in group chats (`GROUP_POLICY`).
public enum GroupPolicy: String, Sendable, Equatable, CaseIterable {
    /// Only when addressed: mentioned by @username or name, replied to, or sent a command. Other messages are kept
    /// as context for when it is addressed.
    case mention
    /// Every message of an allowed group.
    case open
    /// Never: group messages are recorded as ignored.
    case off
}

/// A message in a group chat, as the channel worker saw it.
public struct GroupMessage: Sendable, Equatable {
    /// It addresses the assistant (a mention of its @username or name, a reply to one of its messages, a command).
    public var addressed: Bool
    /// Who wrote it (a display name, else an id): the model sees each group line with its writer.
    public var senderName: String?

    public init(addressed: Bool, senderName: String? = nil) {
        self.addressed = addressed
        self.senderName = senderName
    }
}
