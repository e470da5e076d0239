import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Projections

/// The HTTP pieces the webhook routes share: checks done before a body is trusted, and short answers.
enum WebhookHTTP {
    /// A plain-text answer.
    static func answer(_ status: Int, _ text: String = "") -> Response {
        Response(
            status: .init(code: status), headers: [.contentType: "text/plain; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: text.isEmpty ? statusText(status) : text)))
    }

    static func statusText(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 400: "Bad request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 405: "Method not allowed"
        case 413: "Payload too large"
        case 415: "Unsupported media type: application/json expected"
        case 500: "Internal error"
        case 503: "Not configured"
        default: "HTTP \(status)"
        }
    }

    /// Whether the request says its body is JSON (`application/json`, any parameters).
    static func isJSON(_ request: Request) -> Bool {
        guard let type = request.headers[.contentType] else { return false }
        let media = type.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        return media == "application/json"
    }

    /// What reading a body bounded by `limit` gave.
    enum Body {
        case bytes([UInt8])
        case tooLarge
        case unreadable
    }

    /// Reads the whole body, refusing it past `limit` bytes (a `Content-Length` above it is refused unread).
    static func read(_ request: Request, limit: Int) async -> Body {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit { return .tooLarge }
        do {
            let buffer = try await request.body.collect(upTo: limit)
            return .bytes(Array(buffer.readableBytesView))
        } catch is NIOTooManyBytesError {
            return .tooLarge
        } catch {
            return .unreadable
        }
    }

    /// Compares a presented secret with the expected one in time that depends on neither (both are hashed
    /// first, so not even the length leaks).
    static func secretsMatch(_ presented: String, _ expected: String) -> Bool {
        constantTimeEqual(
            Array(SHA256.hash(data: Array(presented.utf8))), Array(SHA256.hash(data: Array(expected.utf8))))
    }
}

/// The webhook routes of the channels this process receives, added to the agent's HTTP server.
public struct ChannelRoutes: Sendable {
    public var telegram: TelegramWebhook?
    public var whatsapp: WhatsAppWebhook?

    public init(telegram: TelegramWebhook? = nil, whatsapp: WhatsAppWebhook? = nil) {
        self.telegram = telegram
        self.whatsapp = whatsapp
    }

    /// `POST /telegram/webhook`; `GET`/`POST /whatsapp/webhook` (also under the original's
    /// `/whatsapp-cloud/webhook`). Any other method on these paths gets 405 with `Allow` (a path of a channel
    /// that is not configured stays 404).
    public func add<Context: RequestContext>(to router: Router<Context>) {
        if let telegram {
            router.post("telegram/webhook") { request, _ in await telegram.handle(request) }
            Self.refuseOtherMethods(on: "telegram/webhook", allowed: [.post], router)
        }
        if let whatsapp {
            for path in ["whatsapp/webhook", "whatsapp-cloud/webhook"] {
                router.get(RouterPath(path)) { request, _ in await whatsapp.verify(request) }
                router.post(RouterPath(path)) { request, _ in await whatsapp.handle(request) }
                Self.refuseOtherMethods(on: path, allowed: [.get, .post], router)
            }
        }
    }

    /// The methods a request may name that get an answer of their own (405) on a webhook path. `CONNECT` never
    /// names a path; an extension method the router does not know stays 404.
    static let answeredMethods: [HTTPRequest.Method] = [.get, .head, .post, .put, .delete, .patch, .options, .trace]

    /// 405 Method Not Allowed, with `Allow` listing `allowed`, for every other method of ``answeredMethods`` on
    /// `path` (HEAD included: the GET handshake is not served for HEAD).
    static func refuseOtherMethods<Context: RequestContext>(
        on path: String, allowed: [HTTPRequest.Method], _ router: Router<Context>
    ) {
        let allow = allowed.map(\.rawValue).joined(separator: ", ")
        for method in answeredMethods where !allowed.contains(method) {
            router.on(RouterPath(path), method: method) { _, _ in
                var response = WebhookHTTP.answer(405)
                response.headers[.allow] = allow
                return response
            }
        }
    }
}

extension HTTPField.Name {
    static let telegramSecretToken = HTTPField.Name("X-Telegram-Bot-Api-Secret-Token")!
    static let hubSignature256 = HTTPField.Name("X-Hub-Signature-256")!
}
