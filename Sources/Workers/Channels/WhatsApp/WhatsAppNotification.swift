import EventLog
import Foundation
import Projections
import SwitchboardEvents

/// A WhatsApp Cloud API webhook notification (developers.facebook.com …/whatsapp/webhooks): `object`, then
/// `entry[].changes[]` whose `value` carries `messages` or `statuses` for one business phone number. Every field
/// is optional, so one odd message does not make the whole notification unreadable.
public struct WhatsAppNotification: Decodable, Sendable, Equatable {
    public struct Entry: Decodable, Sendable, Equatable {
        public var id: String?
        public var changes: [Change]?
    }

    public struct Change: Decodable, Sendable, Equatable {
        public var field: String?
        public var value: Value?
    }

    public struct Value: Decodable, Sendable, Equatable {
        public var metadata: Metadata?
        public var messages: [Message]?
        public var statuses: [Status]?
        public var errors: [Failure]?
    }

    public struct Metadata: Decodable, Sendable, Equatable {
        public var display_phone_number: String?
        public var phone_number_id: String?
    }

    public struct Message: Decodable, Sendable, Equatable {
        public struct Text: Decodable, Sendable, Equatable { public var body: String? }
        public struct Button: Decodable, Sendable, Equatable {
            public var payload: String?
            public var text: String?
        }
        public struct Reply: Decodable, Sendable, Equatable {
            public var id: String?
            public var title: String?
        }
        public struct Interactive: Decodable, Sendable, Equatable {
            public var type: String?
            public var button_reply: Reply?
            public var list_reply: Reply?
        }
        public struct Media: Decodable, Sendable, Equatable {
            public var id: String?
            public var mime_type: String?
            public var caption: String?
        }
        public struct Context: Decodable, Sendable, Equatable {
            public var from: String?
            public var id: String?
        }

        public var from: String?
        public var id: String?
        public var timestamp: String?
        public var type: String?
        public var text: Text?
        public var button: Button?
        public var interactive: Interactive?
        public var image: Media?
        public var audio: Media?
        public var voice: Media?
        public var video: Media?
        public var document: Media?
        public var sticker: Media?
        public var context: Context?
    }

    public struct Status: Decodable, Sendable, Equatable {
        public var id: String?
        public var status: String?
        public var timestamp: String?
        public var recipient_id: String?
        public var errors: [Failure]?
    }

    public struct Failure: Decodable, Sendable, Equatable {
        public var code: Int?
        public var title: String?
        public var message: String?
    }

    public var object: String?
    public var entry: [Entry]?
}

/// Turns notifications into ingress items for one WhatsApp Cloud account, routed by `phone_number_id`.
public struct WhatsAppInbound: Sendable {
    public let accountID: String
    /// The account's phone number id; `nil` accepts every number (and records it).
    public let phoneNumberID: String?
    public let access: ChannelAccess

    public init(accountID: String, phoneNumberID: String?, access: ChannelAccess) {
        self.accountID = accountID
        self.phoneNumberID = phoneNumberID
        self.access = access
    }

    /// The items of `notification`, in order: its messages and statuses for this account's number; messages for
    /// another number are recorded as ignored (`other_phone_number`), statuses for it are skipped.
    public func items(_ notification: WhatsAppNotification) -> [IngressItem] {
        guard notification.object == "whatsapp_business_account" else { return [] }
        var items: [IngressItem] = []
        for entry in notification.entry ?? [] {
            for change in entry.changes ?? [] where change.field == "messages" {
                guard let value = change.value else { continue }
                let number = value.metadata?.phone_number_id
                let ours = phoneNumberID == nil || number == nil || number == phoneNumberID
                for message in value.messages ?? [] {
                    if let item = item(for: message, ours: ours) { items.append(item) }
                }
                guard ours else { continue }
                for status in value.statuses ?? [] {
                    guard let id = status.id, let state = status.status else { continue }
                    let failure = status.errors?.first
                    items.append(
                        .status(
                            DeliveryStatusReported(
                                channel: "whatsapp", accountID: accountID, providerMessageID: id, status: state,
                                recipient: status.recipient_id,
                                providerTimestamp: status.timestamp.flatMap(Int64.init).map(
                                    LogTimestamp.init(unixSeconds:)),
                                errorCode: failure?.code.map { "\($0)" }, errorTitle: failure?.title ?? failure?.message
                            )))
                }
            }
        }
        return items
    }

    /// Placeholder texts of media without caption (the media id is kept in `message.received.media`).
    static let mediaText = [
        "image": "[Image message]", "audio": "[Audio message]", "video": "[Video message]",
        "document": "[Document message]", "sticker": "[Sticker]",
    ]

    func item(for message: WhatsAppNotification.Message, ours: Bool) -> IngressItem? {
        guard let id = message.id, !id.isEmpty, let from = message.from, !from.isEmpty else { return nil }
        let kind = message.type ?? "unknown"
        func ignored(_ reason: String) -> IngressItem {
            .ignored(
                InboundIgnored(
                    channel: "whatsapp", accountID: accountID, externalID: id, kind: kind, reason: reason,
                    contactID: from))
        }
        guard ours else { return ignored("other_phone_number") }
        var text: String?
        var media: MediaDescriptor?
        switch kind {
        case "text":
            text = message.text?.body
        case "button":
            text = message.button?.payload ?? message.button?.text
        case "interactive":
            let reply = message.interactive?.button_reply ?? message.interactive?.list_reply
            text = reply?.id ?? reply?.title
        case "image", "audio", "voice", "video", "document", "sticker":
            let (attachment, mediaKind, fallbackType): (WhatsAppNotification.Message.Media?, String, String) =
                switch kind {
                case "image": (message.image, "image", "image/jpeg")
                case "audio": (message.audio, "audio", "audio/ogg")
                case "voice": (message.voice ?? message.audio, "audio", "audio/ogg")
                case "video": (message.video, "video", "video/mp4")
                case "document": (message.document, "document", "application/octet-stream")
                default: (message.sticker, "sticker", "image/webp")
                }
            guard let attachment, let mediaID = attachment.id else { return ignored("no_media_id") }
            media = MediaDescriptor(
                kind: mediaKind, mimeType: attachment.mime_type ?? fallbackType, providerMediaID: mediaID)
            let caption = attachment.caption?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            text = caption.isEmpty ? Self.mediaText[mediaKind] : caption
        default:
            return ignored("unsupported_kind")
        }
        let body = text?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        guard !body.isEmpty else { return ignored("no_text") }
        var inbound = InboundMessage(
            channel: "whatsapp", accountID: accountID, externalID: id, contactID: from, text: body)
        inbound.media = media
        inbound.providerTimestamp = message.timestamp.flatMap(Int64.init).map(LogTimestamp.init(unixSeconds:))
        inbound.replyToExternalID = message.context?.id
        return .message(inbound, access.access(for: ChannelSettings.phoneDigits(from)))
    }
}
