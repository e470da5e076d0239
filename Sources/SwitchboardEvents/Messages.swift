import EventLog
/// A media attachment of an inbound message, as the provider describes it (nothing is downloaded yet).
public struct MediaDescriptor: Codable, Sendable, Equatable {
    /// The media kind: `audio`, `image`, `video`, `document` or `sticker`.
    public var kind: String
    /// The MIME type, e.g. `audio/ogg` (the provider's value, or the channel adapter's default when it gives none).
    public var mimeType: String
    /// The provider's media id (WhatsApp Cloud media id, Telegram `file_id`), used to download the bytes later.
    public var providerMediaID: String
    /// A URL for the bytes when the provider gives one or after they were stored; provider URLs may expire.
    public var url: String?

    /// Creates a media descriptor.
    public init(kind: String, mimeType: String, providerMediaID: String, url: String? = nil) {
        self.kind = kind
        self.mimeType = mimeType
        self.providerMediaID = providerMediaID
        self.url = url
    }
}

/// An inbound user message accepted from a channel (`message.received`).
///
/// Written by the channel worker that received it (webhook, long poll, socket or web chat). The triple
/// (``channel``, ``accountID``, ``externalID``) identifies the message at the provider; a second
/// `message.received` with the same triple is a duplicate and is rejected (decided by the Projections module).
public struct MessageReceived: EventPayload {
    public static let eventType = "message.received"

    /// The channel: `whatsapp`, `telegram` or `web`.
    public var channel: String
    /// The channel account that received the message, e.g. `default` or `cloud-api`.
    public var accountID: String
    /// The provider's message id: the WhatsApp `wamid`, `"<chatId>:<message_id>"` on Telegram (message ids are
    /// unique only inside a chat), or a client-generated id on web.
    public var externalID: String
    /// The conversation the message belongs to: one per (channel, account, contact) on WhatsApp and Telegram,
    /// chosen by the user on web.
    public var conversationID: String
    /// The sender: a phone number / WhatsApp id, a Telegram chat id, or a web user id.
    public var contactID: String
    /// The message text (or the media caption); may be empty for media without caption.
    public var text: String
    /// The attached media, if any.
    public var media: MediaDescriptor?
    /// The provider's own send time, when it gives one (it may lag or precede the log time).
    public var providerTimestamp: LogTimestamp?
    /// The provider message id this message replies to (WhatsApp `context.id`, Telegram `reply_to_message`).
    public var replyToExternalID: String?
    /// The user message this one follows in the conversation's tree: `0` for none (the first message of a
    /// branch from the start), else that message's seq. `nil` (every channel message, and every record written
    /// before branches existed) means the conversation's previous user message. An edited message names the
    /// edited one's parent, so it starts a branch beside it. Additive optional field (schema version unchanged).
    public var parentSeq: UInt64?
    /// The reply to ``parentSeq`` that was shown when this message was written (one of its versions), when the
    /// sender named one: the model's history then goes through that version. Additive optional field.
    public var afterJobID: String?
    /// Why no reply answers it, when it was recorded only as context: `not_addressed` (a group message for someone
    /// else under `GROUP_POLICY=mention`). Additive optional field.
    public var unanswered: String?
    /// Who wrote it, in a group chat: the participant's display name (Telegram first name or @username, the
    /// WhatsApp push name), else their id. `nil` in direct chats, where the contact is the sender. Additive optional
    /// field.
    public var senderName: String?

    /// Creates a `message.received` event.
    public init(
        channel: String, accountID: String, externalID: String, conversationID: String, contactID: String,
        text: String, media: MediaDescriptor? = nil, providerTimestamp: LogTimestamp? = nil,
        replyToExternalID: String? = nil, parentSeq: UInt64? = nil, afterJobID: String? = nil,
        unanswered: String? = nil, senderName: String? = nil
    ) {
        self.unanswered = unanswered
        self.senderName = senderName
        self.parentSeq = parentSeq
        self.afterJobID = afterJobID
        self.channel = channel
        self.accountID = accountID
        self.externalID = externalID
        self.conversationID = conversationID
        self.contactID = contactID
        self.text = text
        self.media = media
        self.providerTimestamp = providerTimestamp
        self.replyToExternalID = replyToExternalID
    }
}

/// The text of an assistant message produced by a job (`assistant.message`).
///
/// Written by the core worker running the job, fenced by ``jobToken``. Several records may share a
/// ``messageID``; the one with ``final`` set is the finished text.
public struct AssistantMessage: EventPayload {
    public static let eventType = "assistant.message"

    /// The assistant message id, made by the writer; also the stem of its deliveries' idempotency keys.
    public var messageID: String
    /// The conversation the message belongs to.
    public var conversationID: String
    /// The job that produced the message.
    public var jobID: String
    /// The fencing token of the job claim the message was produced under (``JobClaimed/token``).
    public var jobToken: UInt64
    /// The full text of the message so far (not a delta).
    public var text: String
    /// The model that produced the text, e.g. `openai/gpt-4.1`.
    public var modelUsed: String?
    /// `true` when this is the finished text; `false` for an interim snapshot that later records replace.
    public var final: Bool
    /// Why the model stopped, when it was not a plain stop: `length` marks a reply cut at the token limit
    /// (complete as it stands, but truncated), `content_filter` one the provider's filter ended, `stopped` one a
    /// person stopped (then the record is written by the Stop's transaction, beside `job.cancelled`, with the text
    /// streamed until then). `nil` otherwise and in records written before the field existed.
    public var finishReason: String?

    /// Creates an `assistant.message` event.
    public init(
        messageID: String, conversationID: String, jobID: String, jobToken: UInt64, text: String,
        modelUsed: String? = nil, final: Bool, finishReason: String? = nil
    ) {
        self.messageID = messageID
        self.conversationID = conversationID
        self.jobID = jobID
        self.jobToken = jobToken
        self.text = text
        self.modelUsed = modelUsed
        self.final = final
        self.finishReason = finishReason
    }
}

/// A streamed piece of an assistant message, for live display on web chat (`assistant.delta`).
///
/// Written by the core worker running the job, fenced by ``jobToken``. Concatenating the deltas of a
/// ``messageID`` in ``index`` order gives the text streamed so far; the `assistant.message` with `final`
/// set is authoritative.
public struct AssistantDelta: EventPayload {
    public static let eventType = "assistant.delta"

    /// The assistant message the delta extends.
    public var messageID: String
    /// The conversation the message belongs to.
    public var conversationID: String
    /// The job that produced the delta.
    public var jobID: String
    /// The fencing token of the job claim the delta was produced under.
    public var jobToken: UInt64
    /// The position of this delta within the message, from 0.
    public var index: Int
    /// The appended text.
    public var text: String

    /// Creates an `assistant.delta` event.
    public init(messageID: String, conversationID: String, jobID: String, jobToken: UInt64, index: Int, text: String) {
        self.messageID = messageID
        self.conversationID = conversationID
        self.jobID = jobID
        self.jobToken = jobToken
        self.index = index
        self.text = text
    }
}

/// A summary of a conversation's older messages, written when they no longer fit the prompt's token budget
/// (`conversation.summarized`).
///
/// Written by the core worker running a job, fenced by ``jobToken`` (decided by the Projections module). Later
/// prompts use the newest summary instead of the messages up to ``throughSeq``.
public struct ConversationSummarized: EventPayload {
    public static let eventType = "conversation.summarized"

    /// The conversation summarized.
    public var conversationID: String
    /// The job that wrote the summary.
    public var jobID: String
    /// The fencing token of the job claim the summary was written under.
    public var jobToken: UInt64
    /// The summary text.
    public var summary: String
    /// The seq of the last message folded into the summary.
    public var throughSeq: UInt64

    /// Creates a `conversation.summarized` event.
    public init(conversationID: String, jobID: String, jobToken: UInt64, summary: String, throughSeq: UInt64) {
        self.conversationID = conversationID
        self.jobID = jobID
        self.jobToken = jobToken
        self.summary = summary
        self.throughSeq = throughSeq
    }
}
