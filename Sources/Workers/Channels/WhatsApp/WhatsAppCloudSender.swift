import AsyncHTTPClient
import Foundation

/// WhatsApp Cloud API sends: `POST <base>/<phone-number-id>/messages` with a bearer token.
///
/// - Texts: `{"messaging_product":"whatsapp","recipient_type":"individual","to":…,"type":"text","text":{…}}`; a text
///   over 4096 characters is sent in parts (deliveries are normally split when enqueued, see ``TextSplitter``).
/// - Typing indicators: Meta's shape — the inbound message marked read with `typing_indicator` — never a text.
/// - Errors are classified by Meta's `error.code` (see ``classify(status:code:message:)``); the `wamid` of a sent
///   message is returned for `delivery.sent`, so status webhooks can be matched to the delivery.
/// - Outside the 24-hour window (131047) free text is refused; with a ``WhatsAppTemplate`` configured the text goes
///   out at once as that template instead, else the delivery fails for good and says why.
public struct WhatsAppCloudSender: ChannelSender {
    public let channel = Channel.whatsapp.rawValue
    let baseURL: String
    let phoneNumberID: String
    let accessToken: String
    let template: WhatsAppTemplate?
    let call: ProviderCall

    public init(
        baseURL: String, phoneNumberID: String, accessToken: String, timeout: Duration,
        template: WhatsAppTemplate? = nil, client: HTTPClient = .shared
    ) {
        self.baseURL = baseURL
        self.phoneNumberID = phoneNumberID
        self.accessToken = accessToken
        self.template = template
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

    struct Typing: Encodable {
        struct Indicator: Encodable { var type = "text" }
        var messaging_product = "whatsapp"
        var status = "read"
        var message_id: String
        var typing_indicator = Indicator()
    }

    struct Reply: Decodable {
        struct Message: Decodable { var id: String }
        struct Failure: Decodable {
            var message: String?
            var code: Int?
            var error_data: ErrorData?
        }
        struct ErrorData: Decodable { var details: String? }
        var messages: [Message]?
        var success: Bool?
        var error: Failure?
    }

    /// Meta's codes that are worth retrying later (rate limits, throughput upgrade, transient errors).
    static let transientCodes: Set<Int> = [1, 2, 4, 80007, 130429, 131000, 131016, 131048, 131056, 131057, 133004]
    /// Codes that mean the token or the app's permission is gone.
    static let credentialCodes: Set<Int> = [0, 10, 102, 190, 200]

    public func send(_ message: OutboundMessage) async -> SendOutcome {
        if message.kind == "typing_indicator" {
            guard let inbound = message.replyToExternalID else {
                return .failed(
                    SendFailure(
                        permanent: true, code: "no_message",
                        message: "a WhatsApp typing indicator marks an inbound message read: none was given"))
            }
            return await post(Typing(message_id: inbound), expectsID: false)
        }
        let parts = TextSplitter.split(message.text)
        guard !parts.isEmpty else {
            return .failed(SendFailure(permanent: true, code: "empty", message: "nothing to send: the text is empty"))
        }
        var firstID: String?
        for (index, part) in parts.enumerated() {
            let body = Body(
                to: message.recipient, text: .init(body: part),
                context: index == 0 ? message.replyToExternalID.map { Body.Context(message_id: $0) } : nil)
            var outcome = await post(body, expectsID: true)
            if index == 0, let template, case .failed(let failure) = outcome, failure.code == "131047" {
                // The window is closed: the whole text as the approved template (nothing of it went out as text).
                outcome = await post(
                    template.body(to: message.recipient, text: message.text), expectsID: true)
                if case .sent = outcome { return outcome }
            }
            switch outcome {
            case .sent(let id):
                if firstID == nil { firstID = id }
            case .failed(let failure) where index > 0:
                return .uncertain(
                    reason: "sent \(index) of \(parts.count) parts, then part \(index + 1) failed: \(failure.message)")
            case .failed, .uncertain:
                return outcome
            }
        }
        return .sent(providerMessageID: firstID)
    }

    private func post(_ body: some Encodable, expectsID: Bool) async -> SendOutcome {
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
                guard expectsID else { return .sent(providerMessageID: nil) }
                guard let id = reply?.messages?.first?.id else {
                    return .uncertain(reason: "HTTP \(status) without a message id")
                }
                return .sent(providerMessageID: id)
            }
            let text = redact(
                [reply?.error?.message, reply?.error?.error_data?.details].compactMap { $0 }.joined(separator: ": "))
            return .failed(
                Self.classify(status: status, code: reply?.error?.code, message: text.isEmpty ? "HTTP \(status)" : text)
            )
        }
    }

    /// How a refusal ends the delivery:
    /// - 131047 (more than 24 h since the user wrote): permanent — only a template may be sent now;
    /// - 130429 (the number's throughput): retryable, and the account pauses;
    /// - 131056 (pair rate limit): retryable after 6 s; the recipient's queue waits behind it, others go on;
    /// - 190, 0, 10, 102, 200 or HTTP 401 (token expired or revoked): the account pauses with an alert;
    /// - 5xx and the other transient codes: retryable; any other 4xx: permanent.
    public static func classify(status: Int, code: Int?, message: String) -> SendFailure {
        guard let code else {
            if status == 401 {
                return SendFailure(permanent: false, code: "http_401", message: message, pause: .credentials)
            }
            return SendFailure(
                permanent: (400..<500).contains(status) && status != 429, code: "http_\(status)", message: message)
        }
        switch code {
        case 131047:
            return SendFailure(
                permanent: true, code: "131047",
                message: "\(message) (more than 24 hours since the user last wrote: only a template may be sent)")
        case 130429, 4, 80007:
            return SendFailure(
                permanent: false, retryAfter: .seconds(5), code: "\(code)", message: message,
                pause: .account(.seconds(5)))
        case 131056:
            return SendFailure(permanent: false, retryAfter: .seconds(6), code: "131056", message: message)
        default:
            if credentialCodes.contains(code) || status == 401 {
                return SendFailure(permanent: false, code: "\(code)", message: message, pause: .credentials)
            }
            let transient = transientCodes.contains(code) || status == 429 || status >= 500
            return SendFailure(permanent: !transient, code: "\(code)", message: message)
        }
    }

    func redact(_ text: String) -> String {
        accessToken.isEmpty ? text : text.replacingOccurrences(of: accessToken, with: "<token>")
    }
}
