import AsyncHTTPClient
import Foundation

/// Telegram Bot API `sendMessage`: `POST <base>/bot<token>/sendMessage` with a JSON body, plain text (no
/// `parse_mode`, so no escaping can make Telegram refuse an ordinary reply).
public struct TelegramSender: ChannelSender {
    public let channel = "telegram"
    let baseURL: String
    let token: String
    let call: ProviderCall

    public init(baseURL: String, token: String, timeout: Duration, client: HTTPClient = .shared) {
        self.baseURL = baseURL
        self.token = token
        call = ProviderCall(client: client, timeout: timeout)
    }

    struct Body: Encodable {
        struct ReplyParameters: Encodable {
            var message_id: Int64
            var allow_sending_without_reply = true
        }
        var chat_id: ChatID
        var text: String
        var reply_parameters: ReplyParameters?
    }

    /// A chat id: an integer, or `@channelusername`.
    enum ChatID: Encodable {
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

    struct Reply: Decodable {
        struct Message: Decodable { var message_id: Int64 }
        struct Parameters: Decodable {
            var retry_after: Int?
            var migrate_to_chat_id: Int64?
        }
        var ok: Bool
        var result: Message?
        var description: String?
        var error_code: Int?
        var parameters: Parameters?
    }

    public func send(_ message: OutboundMessage) async -> SendOutcome {
        var recipient = message.recipient
        for prefix in ["telegram:", "tg:"] where recipient.hasPrefix(prefix) { recipient.removeFirst(prefix.count) }
        let chat: ChatID = Int64(recipient).map { .id($0) } ?? .name(recipient)
        // Inbound Telegram ids are `<chat>:<message_id>`.
        let replyTo = message.replyToExternalID?.split(separator: ":").last.flatMap { Int64($0) }
        let body = Body(
            chat_id: chat, text: message.text, reply_parameters: replyTo.map { Body.ReplyParameters(message_id: $0) })
        guard let json = try? JSONEncoder().encode(body) else {
            return .failed(SendFailure(permanent: true, code: "encoding", message: "the message could not be encoded"))
        }
        switch await call.post("\(baseURL)/bot\(token)/sendMessage", headers: [], json: Array(json)) {
        case .notSent(let reason):
            return .failed(SendFailure(permanent: false, code: "connect", message: redact(reason)))
        case .unknown(let reason):
            return .uncertain(reason: redact(reason))
        case .response(let status, let bytes):
            let reply = try? JSONDecoder().decode(Reply.self, from: Data(bytes))
            if (200..<300).contains(status) {
                guard let reply, reply.ok else { return .uncertain(reason: "HTTP \(status) with an unreadable body") }
                return .sent(providerMessageID: reply.result.map { "\($0.message_id)" })
            }
            let code = reply?.error_code ?? status
            let description = redact(reply?.description ?? "HTTP \(status)")
            if code == 429 || status == 429 {
                let wait = reply?.parameters?.retry_after.map { Duration.seconds($0) }
                return .failed(SendFailure(permanent: false, retryAfter: wait, code: "429", message: description))
            }
            if reply?.parameters?.migrate_to_chat_id != nil {
                return .failed(SendFailure(permanent: true, code: "migrated", message: description))
            }
            // 400 (bad request), 401 (bad token), 403 (blocked, never started), 404: retrying cannot help.
            let permanent = (400..<500).contains(status)
            return .failed(SendFailure(permanent: permanent, code: "\(code)", message: description))
        }
    }

    /// The token is part of the URL: keep it out of every message.
    func redact(_ text: String) -> String { text.replacingOccurrences(of: token, with: "<token>") }
}

/// WhatsApp Cloud API: `POST <base>/<phone-number-id>/messages` with a bearer token and a text message body.
public struct WhatsAppCloudSender: ChannelSender {
    public let channel = "whatsapp"
    let baseURL: String
    let phoneNumberID: String
    let accessToken: String
    let call: ProviderCall

    public init(
        baseURL: String, phoneNumberID: String, accessToken: String, timeout: Duration, client: HTTPClient = .shared
    ) {
        self.baseURL = baseURL
        self.phoneNumberID = phoneNumberID
        self.accessToken = accessToken
        call = ProviderCall(client: client, timeout: timeout)
    }

    struct Body: Encodable {
        struct Text: Encodable {
            var preview_url = false
            var body: String
        }
        struct Context: Encodable { var message_id: String }
        var messaging_product = "whatsapp"
        var recipient_type = "individual"
        var to: String
        var type = "text"
        var text: Text
        var context: Context?
    }

    struct Reply: Decodable {
        struct Message: Decodable { var id: String }
        struct Failure: Decodable {
            var message: String?
            var code: Int?
        }
        var messages: [Message]?
        var error: Failure?
    }

    /// Meta's codes worth retrying (rate limits, throughput upgrade, transient); others are permanent.
    static let transientCodes: Set<Int> = [1, 2, 4, 130429, 131056, 131057, 131000, 131016, 80007, 133004]

    public func send(_ message: OutboundMessage) async -> SendOutcome {
        let body = Body(
            to: message.recipient, text: .init(body: message.text),
            context: message.replyToExternalID.map { Body.Context(message_id: $0) })
        guard let json = try? JSONEncoder().encode(body) else {
            return .failed(SendFailure(permanent: true, code: "encoding", message: "the message could not be encoded"))
        }
        let outcome = await call.post(
            "\(baseURL)/\(phoneNumberID)/messages", headers: [("Authorization", "Bearer \(accessToken)")],
            json: Array(json))
        switch outcome {
        case .notSent(let reason):
            return .failed(SendFailure(permanent: false, code: "connect", message: redact(reason)))
        case .unknown(let reason):
            return .uncertain(reason: redact(reason))
        case .response(let status, let bytes):
            let reply = try? JSONDecoder().decode(Reply.self, from: Data(bytes))
            if (200..<300).contains(status), reply?.error == nil {
                guard let reply, let id = reply.messages?.first?.id else {
                    return .uncertain(reason: "HTTP \(status) without a message id")
                }
                return .sent(providerMessageID: id)
            }
            let message = redact(reply?.error?.message ?? "HTTP \(status)")
            guard let code = reply?.error?.code else {
                return .failed(
                    SendFailure(
                        permanent: (400..<500).contains(status) && status != 429, code: "http_\(status)",
                        message: message))
            }
            let transient = Self.transientCodes.contains(code) || status == 429 || status >= 500
            return .failed(SendFailure(permanent: !transient, code: "\(code)", message: message))
        }
    }

    func redact(_ text: String) -> String { text.replacingOccurrences(of: accessToken, with: "<token>") }
}
