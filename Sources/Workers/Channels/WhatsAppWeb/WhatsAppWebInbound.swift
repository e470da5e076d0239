import EventLog
import Foundation
import Projections
import SwitchboardEvents

/// The provider reference of a linked-device message: `<chat jid>/<message id>` (WhatsApp message ids are unique
/// per chat, and the socket may deliver one twice: deduplicated by both).
public enum WhatsAppWebMessageRef {
    public static func encode(chat: String, id: String) -> String { "\(chat)/\(id)" }

    /// The message id of a reference (`nil` when it is not one).
    public static func messageID(_ reference: String) -> String? {
        guard let slash = reference.lastIndex(of: "/") else { return nil }
        let id = reference[reference.index(after: slash)...]
        return id.isEmpty ? nil : String(id)
    }
}

/// The linked device's group rules (`GROUP_POLICY`, `WHATSAPP_ALLOWED_GROUP_IDS`). The assistant speaks as the
/// owner's own number, so a group message addresses it when it @-mentions the owner, quotes one of the owner's
/// messages, writes the owner's number, or is a command.
public struct WhatsAppWebGroups: Sendable {
    public var policy: GroupPolicy
    /// Allowed group jids; `nil` allows every group (`*`).
    public var allowed: Set<String>?

    public init(policy: GroupPolicy = .mention, allowed: Set<String>? = []) {
        self.policy = policy
        self.allowed = allowed
    }

    func allows(_ chat: String) -> Bool { allowed.map { $0.contains(chat) } ?? true }

    /// Whether `message` addresses the owner whose jid is `ownJID` (unknown before the socket said: commands only).
    public func addressed(_ message: SidecarMessage, text: String, ownJID: String?) -> Bool {
        if text.hasPrefix("/") { return true }
        guard let ownJID else { return false }
        let own = WhatsAppWebInbound.user(of: ownJID)
        if let mentions = message.mentions, mentions.contains(where: { WhatsAppWebInbound.user(of: $0) == own }) {
            return true
        }
        if let quoted = message.quotedSender, WhatsAppWebInbound.user(of: quoted) == own { return true }
        return own.count >= 6 && ChannelSettings.phoneDigits(text).contains(own)
    }
}

/// Turns the linked device's messages and receipts into ingress items for one account.
public struct WhatsAppWebInbound: Sendable {
    public let accountID: String
    public let access: ChannelAccess
    /// Whether the owner's own "message yourself" chat talks to the assistant.
    public let selfChat: Bool
    public let groups: WhatsAppWebGroups

    public init(accountID: String, access: ChannelAccess, selfChat: Bool, groups: WhatsAppWebGroups = .init()) {
        self.accountID = accountID
        self.access = access
        self.selfChat = selfChat
        self.groups = groups
    }

    /// The user part of a jid (`49170…` of `49170…:3@s.whatsapp.net`).
    public static func user(of jid: String) -> String {
        let user = jid.split(separator: "@", maxSplits: 1).first.map(String.init) ?? jid
        return user.split(separator: ":", maxSplits: 1).first.map(String.init) ?? user
    }

    /// The jid a reply to `recipient` goes to: a phone number becomes `<digits>@s.whatsapp.net`; a jid stays.
    public static func jid(forRecipient recipient: String) -> String {
        recipient.contains("@") ? recipient : "\(ChannelSettings.phoneDigits(recipient))@s.whatsapp.net"
    }

    /// The item of `message`; `nil` for what is not recorded: this device's own sends, and messages from the
    /// owner's other devices (except in the self chat when ``selfChat`` is on).
    public func item(_ message: SidecarMessage, ownJID: String?, sentByThisDevice: Bool) -> IngressItem? {
        let externalID = WhatsAppWebMessageRef.encode(chat: message.chat, id: message.id)
        let chatUser = Self.user(of: message.chat)
        if message.fromMe {
            guard selfChat, !sentByThisDevice, let ownJID, Self.user(of: ownJID) == chatUser,
                message.chat.hasSuffix("@s.whatsapp.net") || message.chat.hasSuffix("@lid")
            else { return nil }
        }
        let contact = message.chat.hasSuffix("@s.whatsapp.net") ? chatUser : message.chat
        func ignored(_ reason: String) -> IngressItem {
            .ignored(
                InboundIgnored(
                    channel: Channel.whatsapp.rawValue, accountID: accountID, externalID: externalID,
                    kind: message.kind,
                    reason: reason, contactID: message.sender.map(Self.user(of:)) ?? contact))
        }
        if message.chat.hasSuffix("@broadcast") || message.chat.hasSuffix("@newsletter") { return ignored("broadcast") }
        let body = message.text?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        guard !body.isEmpty else { return ignored(message.kind == "other" ? "unsupported_kind" : "no_text") }
        var inbound = InboundMessage(
            channel: Channel.whatsapp.rawValue, accountID: accountID, externalID: externalID, contactID: contact,
            text: body)
        inbound.providerTimestamp = message.timestamp.map { LogTimestamp(unixSeconds: $0) }
        inbound.replyToExternalID = message.quotedID.map { WhatsAppWebMessageRef.encode(chat: message.chat, id: $0) }
        if message.chat.hasSuffix("@g.us") {
            // A group is judged by the group rules (the decider records it ignored when not allowed or off).
            inbound.group = GroupMessage(
                addressed: groups.addressed(message, text: body, ownJID: ownJID),
                senderName: message.pushName ?? message.sender.map(Self.user(of:)))
            var sender = SenderAccess(policy: access.policy)
            sender.groupPolicy = groups.policy
            sender.groupAllowed = groups.allows(message.chat)
            return .message(inbound, sender)
        }
        return .message(inbound, access.access(for: ChannelSettings.phoneDigits(contact)))
    }

    /// The `delivery.status` of a receipt (`messages.update` status 2 server ack … 5 played); `nil` for pending.
    public func receipt(id: String, chat: String, status: Int) -> IngressItem? {
        let name: String
        switch status {
        case 0: name = "failed"
        case 2: name = "sent"
        case 3: name = "delivered"
        case 4, 5: name = "read"
        default: return nil
        }
        return .status(
            DeliveryStatusReported(
                channel: Channel.whatsapp.rawValue, accountID: accountID, providerMessageID: id, status: name,
                recipient: Self.user(of: chat), errorCode: status == 0 ? "error" : nil))
    }
}
