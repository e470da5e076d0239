import EventLog

/// The owner gave a conversation a title (`conversation.renamed`); it replaces the title derived from the first
/// message everywhere (sidebar, header, `replay`).
public struct ConversationRenamed: EventPayload {
    public static let eventType = "conversation.renamed"

    /// The conversation.
    public var conversationID: String
    /// The new title (1–200 characters, trimmed).
    public var title: String
    /// Who renamed it, e.g. `web:owner`.
    public var by: String

    /// Creates a `conversation.renamed` event.
    public init(conversationID: String, title: String, by: String) {
        self.conversationID = conversationID
        self.title = title
        self.by = by
    }
}

/// A conversation was deleted (`conversation.deleted`): a redaction that every reader honours.
///
/// Every record correlated to the conversation up to and including ``throughSeq`` is no longer readable through
/// the web, its APIs or `replay` (they show that the conversation was deleted, when and by whom — this record).
/// The projections drop its history, summary and title in the same transaction; its running and pending jobs are
/// cancelled before it (`job.cancelled`, reason `conversation_deleted`). A channel conversation (WhatsApp,
/// Telegram) starts afresh with the contact's next message; a web conversation takes no more messages.
public struct ConversationDeleted: EventPayload {
    public static let eventType = "conversation.deleted"

    /// The conversation.
    public var conversationID: String
    /// The last redacted seq: this record's own seq (the deletion's earlier events of the same transaction are
    /// redacted too).
    public var throughSeq: UInt64
    /// Who deleted it, e.g. `web:owner`.
    public var by: String

    /// Creates a `conversation.deleted` event.
    public init(conversationID: String, throughSeq: UInt64, by: String) {
        self.conversationID = conversationID
        self.throughSeq = throughSeq
        self.by = by
    }
}

/// A chat command was handled (`command.handled`): `/new`, `/stop`, `/status` or `/help`, typed on any channel.
///
/// Written by the inbound decision that records the command's message, in the same transaction, with the effect's
/// own events before it (`job.cancelled` for `/stop`). The answer is shown on the web and sent on WhatsApp and
/// Telegram as a `delivery.enqueued` (kind `command_reply`) in the same transaction: it never waits behind a
/// running reply. `/new` starts the conversation's context afresh from the next message (the history stays in the
/// log).
public struct CommandHandled: EventPayload {
    public static let eventType = "command.handled"

    /// The conversation.
    public var conversationID: String
    /// The command's `message.received`.
    public var messageSeq: UInt64
    /// `new`, `stop`, `status` or `help`.
    public var command: String
    /// What the assistant answers.
    public var answer: String

    /// Creates a `command.handled` event.
    public init(conversationID: String, messageSeq: UInt64, command: String, answer: String) {
        self.conversationID = conversationID
        self.messageSeq = messageSeq
        self.command = command
        self.answer = answer
    }
}
