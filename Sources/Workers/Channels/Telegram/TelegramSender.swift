import AsyncHTTPClient
import Foundation

/// Telegram Bot API sends: `sendMessage` with plain text (no `parse_mode`, so no escaping can make Telegram
/// refuse an ordinary reply), `sendChatAction` for typing indicators (never a message).
///
/// - A text longer than 4096 UTF-16 units (deliveries are normally split when enqueued, see ``TextSplitter``) is
///   sent as several messages split at paragraph or sentence boundaries; if a later part fails after earlier ones
///   were sent, the outcome is `uncertain` (never resent automatically).
/// - 429 waits `retry_after`; 403 (blocked, never started) is permanent for that message; 401/404 (bad token)
///   pauses the account; 5xx and no connection are retryable.
/// - 400 with `migrate_to_chat_id` (the group became a supergroup): the chat is re-keyed (``TelegramChats``)
///   and the message sent again to the new id at once — the 400 proves the first call sent nothing.
public struct TelegramSender: ChannelSender {
    public let channel = Channel.telegram.rawValue
    let api: TelegramBotAPI
    let chats: TelegramChats?

    public init(
        baseURL: String, token: String, timeout: Duration, client: HTTPClient = .shared, chats: TelegramChats? = nil
    ) {
        api = TelegramBotAPI(baseURL: baseURL, token: token, timeout: timeout, client: client)
        self.chats = chats
    }

    struct SendMessage: Encodable, Sendable {
        struct ReplyParameters: Encodable, Sendable {
            var message_id: Int64
            var allow_sending_without_reply = true
        }
        var chat_id: ChatID
        var text: String
        var reply_parameters: ReplyParameters?
    }

    struct ChatAction: Encodable, Sendable {
        var chat_id: ChatID
        var action = "typing"
    }

    /// A chat id: an integer, or `@channelusername`.
    enum ChatID: Encodable, Sendable {
        case id(Int64)
        case name(String)
        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .id(let id): try container.encode(id)
            case .name(let name): try container.encode(name)
            }
        }
    }

    struct Sent: Decodable, Sendable { var message_id: Int64 }

    public func send(_ message: OutboundMessage) async -> SendOutcome {
        var recipient = message.recipient
        for prefix in ["telegram:", "tg:"] where recipient.hasPrefix(prefix) { recipient.removeFirst(prefix.count) }
        var chat: ChatID = Int64(recipient).map { .id(chats?.current(of: $0) ?? $0) } ?? .name(recipient)
        if message.kind == "typing_indicator" {
            switch await api.call("sendChatAction", ChatAction(chat_id: chat), as: Bool.self) {
            case .success: return .sent(providerMessageID: nil)
            case .failure(let error): return outcome(of: error)
            }
        }
        let parts = TextSplitter.split(message.text)
        guard !parts.isEmpty else {
            return .failed(SendFailure(permanent: true, code: "empty", message: "nothing to send: the text is empty"))
        }
        let replyTo = message.replyToExternalID.flatMap(TelegramMessageRef.init(externalID:))?.messageID
        var firstID: String?
        for (index, part) in parts.enumerated() {
            var body = SendMessage(
                chat_id: chat, text: part,
                reply_parameters: index == 0 ? replyTo.map { SendMessage.ReplyParameters(message_id: $0) } : nil)
            var result = await api.call("sendMessage", body, as: Sent.self)
            if case .failure(let error) = result, let new = error.migrateToChatID, case .id(let old) = chat {
                await chats?.migrated(from: old, to: new)
                chat = .id(new)
                body.chat_id = chat
                result = await api.call("sendMessage", body, as: Sent.self)
            }
            switch result {
            case .success(let sent):
                if firstID == nil { firstID = "\(sent.message_id)" }
            case .failure(let error):
                guard index > 0 else { return outcome(of: error) }
                return .uncertain(
                    reason: "sent \(index) of \(parts.count) parts, then part \(index + 1) failed: \(error.message)")
            }
        }
        return .sent(providerMessageID: firstID)
    }

    /// How a failed call ends the delivery.
    func outcome(of error: TelegramAPIError) -> SendOutcome {
        switch error.code {
        case .notSent:
            return .failed(SendFailure(permanent: false, code: "connect", message: error.message))
        case .uncertain, .badResponse:
            return .uncertain(reason: error.message)
        case .refused:
            let status = error.status ?? 0
            let code = error.errorCode ?? status
            if code == 429 || status == 429 {
                return .failed(
                    SendFailure(
                        permanent: false, retryAfter: error.retryAfter.map { .seconds($0) }, code: "429",
                        message: error.message))
            }
            if error.migrateToChatID != nil {
                return .failed(SendFailure(permanent: true, code: "migrated", message: error.message))
            }
            if code == 401 || code == 404 {
                // The token is wrong or revoked: nothing will go out until it is fixed.
                return .failed(
                    SendFailure(permanent: false, code: "\(code)", message: error.message, pause: .credentials))
            }
            // 400 (bad request), 403 (blocked, never started): retrying cannot help.
            return .failed(
                SendFailure(permanent: (400..<500).contains(status), code: "\(code)", message: error.message))
        }
    }
}
