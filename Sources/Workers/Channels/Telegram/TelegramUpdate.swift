import EventLog
import Foundation
import Projections
import SwitchboardEvents

/// The parts of a Telegram Bot API `Update` the ingress reads (core.telegram.org/bots/api#update). Unknown
/// fields are ignored; ids are `Int64` (chat ids may exceed 32 bits).
public struct TelegramUpdate: Decodable, Sendable, Equatable {
    public var updateID: Int64?
    public var message: TelegramMessage?
    public var editedMessage: TelegramMessage?
    public var channelPost: TelegramMessage?
    public var editedChannelPost: TelegramMessage?
    /// The update's kind: the name of its one optional field (`message`, `callback_query`, …), or `unknown`.
    public var kind: String
    /// A message field was present but did not decode (no chat, no message id…).
    public var malformed = false
    /// Why, for `inbound.ignored.detail`: the field and the problem (`message.chat: missing`), never a value.
    public var malformedDetail: String?

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: AnyKey.self)
        updateID = try? container.decodeIfPresent(Int64.self, forKey: AnyKey(stringValue: "update_id"))
        var malformed = false
        var malformedDetail: String?
        func message(_ name: String) -> TelegramMessage? {
            let key = AnyKey(stringValue: name)
            guard container.contains(key) else { return nil }
            do {
                return try container.decode(TelegramMessage.self, forKey: key)
            } catch {
                malformed = true
                malformedDetail =
                    malformedDetail ?? (error as? DecodingError)?.shortDescription ?? "\(name): unreadable"
                return nil
            }
        }
        self.message = message("message")
        editedMessage = message("edited_message")
        channelPost = message("channel_post")
        editedChannelPost = message("edited_channel_post")
        self.malformed = malformed
        self.malformedDetail = malformedDetail
        kind = container.allKeys.map(\.stringValue).filter { $0 != "update_id" }.sorted().first ?? "unknown"
    }

    /// The message-like payload and whether it is an edit.
    public var content: (message: TelegramMessage, edited: Bool, kind: String)? {
        if let message { return (message, false, "message") }
        if let channelPost { return (channelPost, false, "channel_post") }
        if let editedMessage { return (editedMessage, true, "edited_message") }
        if let editedChannelPost { return (editedChannelPost, true, "edited_channel_post") }
        return nil
    }
}

/// A Telegram `Message` (the fields the ingress reads).
public struct TelegramMessage: Decodable, Sendable, Equatable {
    public struct Chat: Decodable, Sendable, Equatable {
        public var id: Int64
        public var type: String?
        public var title: String?
        public var username: String?
    }

    public struct User: Decodable, Sendable, Equatable {
        public var id: Int64
        public var isBot: Bool?
        public var firstName: String?
        public var lastName: String?
        public var username: String?

        enum CodingKeys: String, CodingKey {
            case id, username
            case isBot = "is_bot"
            case firstName = "first_name"
            case lastName = "last_name"
        }

        /// How a group line names its writer: first and last name, else @username, else the id.
        public var displayName: String {
            let name = [firstName, lastName].compactMap { $0?.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty }.joined(separator: " ")
            if !name.isEmpty { return name }
            if let username, !username.isEmpty { return "@" + username }
            return String(id)
        }
    }

    public struct File: Decodable, Sendable, Equatable {
        public var fileID: String
        public var mimeType: String?

        enum CodingKeys: String, CodingKey {
            case fileID = "file_id"
            case mimeType = "mime_type"
        }
    }

    public struct Reply: Decodable, Sendable, Equatable {
        public var messageID: Int64
        /// Who wrote the message replied to (the bot, for a reply to the assistant).
        public var from: User?

        enum CodingKeys: String, CodingKey {
            case messageID = "message_id"
            case from
        }
    }

    public var messageID: Int64
    public var date: Int64?
    public var chat: Chat
    public var from: User?
    public var text: String?
    public var caption: String?
    public var editDate: Int64?
    public var replyToMessage: Reply?
    public var migrateToChatID: Int64?
    public var migrateFromChatID: Int64?
    public var photo: [File]?
    public var voice: File?
    public var audio: File?
    public var video: File?
    public var document: File?
    public var sticker: File?

    enum CodingKeys: String, CodingKey {
        case date, chat, from, text, caption, photo, voice, audio, video, document, sticker
        case messageID = "message_id"
        case editDate = "edit_date"
        case replyToMessage = "reply_to_message"
        case migrateToChatID = "migrate_to_chat_id"
        case migrateFromChatID = "migrate_from_chat_id"
    }

    /// The attached media, described (nothing is downloaded); the largest photo size is the last one.
    public var media: MediaDescriptor? {
        if let photo = photo?.last {
            return MediaDescriptor(kind: "image", mimeType: "image/jpeg", providerMediaID: photo.fileID)
        }
        if let voice {
            return MediaDescriptor(
                kind: "audio", mimeType: voice.mimeType ?? "audio/ogg", providerMediaID: voice.fileID)
        }
        if let audio {
            return MediaDescriptor(
                kind: "audio", mimeType: audio.mimeType ?? "audio/mpeg", providerMediaID: audio.fileID)
        }
        if let video {
            return MediaDescriptor(
                kind: "video", mimeType: video.mimeType ?? "video/mp4", providerMediaID: video.fileID)
        }
        if let document {
            return MediaDescriptor(
                kind: "document", mimeType: document.mimeType ?? "application/octet-stream",
                providerMediaID: document.fileID)
        }
        if let sticker {
            return MediaDescriptor(kind: "sticker", mimeType: "image/webp", providerMediaID: sticker.fileID)
        }
        return nil
    }
}

/// Turns Telegram updates into ingress items for one bot account: the message id scheme, the DM policy, chat
/// migrations.
public struct TelegramInbound: Sendable {
    public let accountID: String
    public let access: ChannelAccess
    public let chats: TelegramChats
    /// How group chats are answered.
    public let groups: TelegramGroups

    public init(accountID: String, access: ChannelAccess, chats: TelegramChats, groups: TelegramGroups = .init()) {
        self.accountID = accountID
        self.access = access
        self.chats = chats
        self.groups = groups
    }

    /// The external id of a message: `<chat>:<message_id>`, and for an edit `<chat>:<message_id>:edit:<edit_date>`
    /// (each edit is a message of its own, replying to the original).
    public static func externalID(chat: Int64, messageID: Int64, editDate: Int64? = nil) -> String {
        TelegramMessageRef(chat: chat, messageID: messageID, editDate: editDate).externalID
    }

    /// The item `update` becomes, or `nil` when there is nothing to record (an update without id or message).
    /// A group migration service message is returned with the migration (old chat, new chat) to remember.
    public func item(for update: TelegramUpdate) -> (item: IngressItem?, migration: (from: Int64, to: Int64)?) {
        guard let (message, edited, kind) = update.content else {
            guard let updateID = update.updateID else { return (nil, nil) }
            return (
                .ignored(
                    InboundIgnored(
                        channel: Channel.telegram.rawValue, accountID: accountID, externalID: "update:\(updateID)",
                        kind: update.kind,
                        reason: update.malformed ? "malformed" : "unsupported_kind",
                        detail: update.malformed ? update.malformedDetail : nil)),
                nil
            )
        }
        let chat = message.chat.id
        // The conversation keeps the chat's first id: a migrated group's new id maps back to it.
        let contactID = String(chats.original(of: chat))
        let editDate = edited ? (message.editDate ?? update.updateID ?? message.date ?? 0) : nil
        let externalID = Self.externalID(chat: chat, messageID: message.messageID, editDate: editDate)
        if let to = message.migrateToChatID {
            return (ignored(externalID, kind, "service_message", contactID), (chat, to))
        }
        if let from = message.migrateFromChatID {
            return (ignored(externalID, kind, "service_message", contactID), (from, chat))
        }
        let text = (message.text ?? message.caption ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { return (ignored(externalID, kind, "no_text", contactID), nil) }
        var inbound = InboundMessage(
            channel: Channel.telegram.rawValue, accountID: accountID, externalID: externalID, contactID: contactID,
            text: text)
        inbound.providerTimestamp = (message.editDate ?? message.date).map(LogTimestamp.init(unixSeconds:))
        inbound.media = message.media
        if edited {
            inbound.replyToExternalID = Self.externalID(chat: chat, messageID: message.messageID)
        } else if let reply = message.replyToMessage {
            inbound.replyToExternalID = Self.externalID(chat: chat, messageID: reply.messageID)
        }
        if message.chat.type == "group" || message.chat.type == "supergroup" {
            inbound.group = GroupMessage(
                addressed: groups.addressed(text, replyToSender: message.replyToMessage?.from?.id),
                senderName: message.from?.displayName)
            var sender = SenderAccess(policy: access.policy)
            sender.groupPolicy = groups.policy
            sender.groupAllowed = groups.allows(contactID)
            return (.message(inbound, sender), nil)
        }
        var others = [String(chat)]
        if let from = message.from { others.append(String(from.id)) }
        return (.message(inbound, access.access(for: contactID, alsoKnownAs: others)), nil)
    }

    private func ignored(_ externalID: String, _ kind: String, _ reason: String, _ contactID: String) -> IngressItem {
        .ignored(
            InboundIgnored(
                channel: Channel.telegram.rawValue, accountID: accountID, externalID: externalID, kind: kind,
                reason: reason,
                contactID: contactID))
    }
}
