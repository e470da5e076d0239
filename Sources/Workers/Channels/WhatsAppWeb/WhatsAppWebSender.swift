import Foundation
import Projections

/// Sends WhatsApp replies through the linked device (``LinkedDevice``): texts with the answered message quoted,
/// typing as presence `composing`.
public struct WhatsAppWebSender: ChannelSender {
    public let channel = Channel.whatsapp.rawValue
    let device: LinkedDevice
    /// A personal number's pace, not a business API's: a reply a second per person, and
    /// `WHATSAPP_WEB_SENDS_PER_SECOND` (default 2) for the number — Baileys' users report `rate-overlimit` at about
    /// 3 a second, and bulk sending risks a ban (docs/channels.md).
    public let rateLimits: RateLimits?

    public init(device: LinkedDevice, sendsPerSecond: Int = 2) {
        self.device = device
        rateLimits = RateLimits(perRecipientInterval: .seconds(1), perAccount: (max(1, sendsPerSecond), .seconds(1)))
    }

    public func send(_ message: OutboundMessage) async -> SendOutcome {
        let jid = WhatsAppWebInbound.jid(forRecipient: message.recipient)
        if message.kind == "typing_indicator" {
            return device.typing(
                jid: jid, answering: message.replyToExternalID.flatMap(WhatsAppWebMessageRef.messageID))
                ? .sent(providerMessageID: nil)
                : .failed(SendFailure(permanent: false, code: "not_connected", message: "not connected"))
        }
        return await device.send(
            deliveryID: message.deliveryID, jid: jid, text: message.text,
            quoted: message.replyToExternalID.flatMap(WhatsAppWebMessageRef.messageID))
    }
}
