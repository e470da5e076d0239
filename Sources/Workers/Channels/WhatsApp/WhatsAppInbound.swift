import EventLog
import Foundation
import Projections
import SwitchboardEvents

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
    /// another number are recorded as ignored (`other_phone_number`), statuses for it are skipped. A malformed
    /// message or status is recorded as `inbound.ignored` `malformed` with its problem in `detail` (a malformed
    /// status for another number is skipped like the others).
    public func items(_ notification: WhatsAppNotification) -> [IngressItem] {
        guard notification.object == "whatsapp_business_account" else { return [] }
        var items: [IngressItem] = []
        for entry in notification.entry {
            for change in entry.changes where change.field == "messages" {
                guard let value = change.value else { continue }
                let number = value.metadata?.phone_number_id
                let ours = phoneNumberID == nil || number == nil || number == phoneNumberID
                for message in value.messages {
                    switch message {
                    case .valid(let message): items.append(item(for: message, ours: ours))
                    case .malformed(let malformed):
                        items.append(
                            self.malformed(
                                malformed, externalID: malformed.id ?? "malformed:\(malformed.fingerprint)",
                                kind: malformed.type ?? "unknown", contactID: malformed.from))
                    }
                }
                guard ours else { continue }
                for status in value.statuses {
                    switch status {
                    case .valid(let status):
                        let failure = status.errors.first
                        items.append(
                            .status(
                                DeliveryStatusReported(
                                    channel: Channel.whatsapp.rawValue, accountID: accountID,
                                    providerMessageID: status.id,
                                    status: status.status.rawValue, recipient: status.recipient_id,
                                    providerTimestamp: status.timestamp.map { LogTimestamp(unixSeconds: $0.seconds) },
                                    errorCode: failure?.code.map { "\($0)" },
                                    errorTitle: failure?.title ?? failure?.message)))
                    case .malformed(let malformed):
                        // Keyed like `delivery.status` (wamid and value) when both are usable, so a retry or a
                        // second report of the same unknown value is recorded once.
                        let externalID = malformed.id.map {
                            "status:\($0):\(malformed.status ?? malformed.fingerprint)"
                        }
                        items.append(
                            self.malformed(
                                malformed, externalID: externalID ?? "malformed:\(malformed.fingerprint)",
                                kind: "status",
                                contactID: nil))
                    }
                }
            }
        }
        return items
    }

    func malformed(
        _ malformed: WhatsAppNotification.Malformed, externalID: String, kind: String, contactID: String?
    ) -> IngressItem {
        .ignored(
            InboundIgnored(
                channel: Channel.whatsapp.rawValue, accountID: accountID, externalID: externalID, kind: kind,
                reason: "malformed",
                contactID: contactID, detail: malformed.problem))
    }

    /// Placeholder texts of media without caption (the media id is kept in `message.received.media`).
    static let mediaText = [
        "image": "[Image message]", "audio": "[Audio message]", "video": "[Video message]",
        "document": "[Document message]", "sticker": "[Sticker]",
    ]

    func item(for message: WhatsAppNotification.Message, ours: Bool) -> IngressItem {
        let id = message.id
        let from = message.from
        let kind = message.type ?? "unknown"
        func ignored(_ reason: String) -> IngressItem {
            .ignored(
                InboundIgnored(
                    channel: Channel.whatsapp.rawValue, accountID: accountID, externalID: id, kind: kind,
                    reason: reason,
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
            channel: Channel.whatsapp.rawValue, accountID: accountID, externalID: id, contactID: from, text: body)
        inbound.media = media
        inbound.providerTimestamp = message.timestamp.map { LogTimestamp(unixSeconds: $0.seconds) }
        inbound.replyToExternalID = message.context?.id
        return .message(inbound, access.access(for: ChannelSettings.phoneDigits(from)))
    }
}
