import Crypto
import Foundation
import Hummingbird
import Logging
import Projections

/// The WhatsApp Cloud API webhook, fail-closed (the original answered 200 to unsigned or badly signed posts and
/// lost them).
///
/// `GET /whatsapp/webhook` — the subscription handshake: `hub.mode=subscribe` and `hub.verify_token` equal to
/// `WHATSAPP_CLOUD_VERIFY_TOKEN` (constant time) → 200 with `hub.challenge`; otherwise 403 (503 when no token is
/// configured), recorded as `webhook.rejected`.
///
/// `POST /whatsapp/webhook`, in order:
///
/// | check | answer |
/// |---|---|
/// | `WHATSAPP_CLOUD_APP_SECRET` not set | 503 (Meta retries), `webhook.rejected` `not_configured` |
/// | `X-Hub-Signature-256` missing | 401, `webhook.rejected` |
/// | body over `WEBHOOK_MAX_BODY_BYTES` | 413 |
/// | `sha256=<hex>` is not HMAC-SHA256(app secret, **raw body**), compared in constant time | 401, `webhook.rejected` |
/// | `Content-Type` not `application/json` | 415 |
/// | not JSON, or an envelope of the wrong shape | 400 |
/// | messages and statuses | 200 after all of them are in the log (one transaction; dedupe by wamid, statuses by wamid and status) |
/// | a message or status that does not read (bad text, nonsense timestamp, no id, unknown status) | recorded as `inbound.ignored` `malformed`, the others as usual; 200 |
/// | the log refused the write | 500 (Meta retries for days; the retry is deduplicated) |
public struct WhatsAppWebhook: Sendable {
    let verifyToken: ChannelSecret?
    let appSecret: ChannelSecret?
    let inbound: WhatsAppInbound
    let ingress: ChannelIngress
    let maxBodyBytes: Int
    let logger: Logger

    public init(
        verifyToken: ChannelSecret?, appSecret: ChannelSecret?, inbound: WhatsAppInbound, ingress: ChannelIngress,
        maxBodyBytes: Int, logger: Logger
    ) {
        self.verifyToken = verifyToken
        self.appSecret = appSecret
        self.inbound = inbound
        self.ingress = ingress
        self.maxBodyBytes = maxBodyBytes
        self.logger = logger
    }

    var accountID: String { inbound.accountID }

    /// The subscription handshake.
    public func verify(_ request: Request) async -> Response {
        guard let verifyToken else {
            await ingress.rejected(
                channel: Channel.whatsapp.rawValue, accountID: accountID, reason: "not_configured", status: 503)
            return WebhookHTTP.answer(503, "Not configured: WHATSAPP_CLOUD_VERIFY_TOKEN is not set")
        }
        let query = request.uri.queryParameters
        guard query["hub.mode"] == "subscribe", let presented = query["hub.verify_token"],
            WebhookHTTP.secretsMatch(String(presented), verifyToken.value)
        else {
            await ingress.rejected(
                channel: Channel.whatsapp.rawValue, accountID: accountID, reason: "bad_verify_token", status: 403)
            return WebhookHTTP.answer(403)
        }
        // Meta's challenge is a number: echo only a short, plain one.
        let challenge = String(query["hub.challenge"] ?? "")
        guard challenge.count <= 128,
            challenge.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") })
        else { return WebhookHTTP.answer(400, "Bad request: hub.challenge") }
        logger.info("[whatsapp] Webhook subscription verified", metadata: ["channel.account": "\(accountID)"])
        return Response(
            status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: challenge)))
    }

    /// A notification.
    public func handle(_ request: Request) async -> Response {
        guard let appSecret else {
            await ingress.rejected(
                channel: Channel.whatsapp.rawValue, accountID: accountID, reason: "not_configured", status: 503)
            return WebhookHTTP.answer(503, "Not configured: WHATSAPP_CLOUD_APP_SECRET is not set")
        }
        guard let signature = request.headers[.hubSignature256] else {
            await ingress.rejected(
                channel: Channel.whatsapp.rawValue, accountID: accountID, reason: "missing_signature", status: 401)
            return WebhookHTTP.answer(401)
        }
        let bytes: [UInt8]
        switch await WebhookHTTP.read(request, limit: maxBodyBytes) {
        case .bytes(let read): bytes = read
        case .tooLarge: return WebhookHTTP.answer(413)
        case .unreadable: return WebhookHTTP.answer(400)
        }
        guard Self.signatureValid(signature, body: bytes, secret: appSecret.value) else {
            await ingress.rejected(
                channel: Channel.whatsapp.rawValue, accountID: accountID, reason: "bad_signature", status: 401)
            return WebhookHTTP.answer(401)
        }
        guard WebhookHTTP.isJSON(request) else { return WebhookHTTP.answer(415) }
        // Read per item: a message or status that does not read (bad text, a nonsense timestamp, no id, an unknown
        // status) is recorded as malformed and the others as usual; only a body whose envelope is not a
        // notification is refused.
        let notification: WhatsAppNotification
        do {
            notification = try WhatsAppNotification(json: bytes)
        } catch {
            logger.warning(
                "[whatsapp] Webhook body is not a notification",
                metadata: ["webhook.bytes": "\(bytes.count)", "webhook.problem": "\(error)"])
            return WebhookHTTP.answer(400, "Bad request: not a WhatsApp notification")
        }
        for entry in notification.entry {
            for change in entry.changes {
                for failure in change.value?.errors ?? [] {
                    logger.warning(
                        "[whatsapp] Error notification: \(failure.title ?? failure.message ?? "?")",
                        metadata: ["whatsapp.code": "\(failure.code ?? 0)"])
                }
            }
        }
        let items = inbound.items(notification)
        do {
            try await ingress.ingest(items, channel: Channel.whatsapp.rawValue)
            return WebhookHTTP.answer(200)
        } catch {
            logger.error("[whatsapp] Webhook notification not recorded", metadata: ["error": "\(error)"])
            return WebhookHTTP.answer(500)
        }
    }

    /// Whether `header` (`sha256=<hex>`; bare hex is accepted too) is HMAC-SHA256 of the raw `body` under
    /// `secret`, compared in constant time.
    public static func signatureValid(_ header: String, body: [UInt8], secret: String) -> Bool {
        var hex = Substring(header.trimmingCharacters(in: .whitespaces))
        if hex.lowercased().hasPrefix("sha256=") { hex = hex.dropFirst("sha256=".count) }
        guard hex.count == 64, let code = bytes(fromHex: hex) else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(
            code, authenticating: body, using: SymmetricKey(data: Array(secret.utf8)))
    }

    /// The hex signature of `body` under `secret`, as Meta sends it (`sha256=…`).
    public static func signature(of body: [UInt8], secret: String) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Array(secret.utf8)))
        return "sha256=" + code.map { String(format: "%02x", $0) }.joined()
    }

    static func bytes(fromHex hex: Substring) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(hex.count / 2)
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2, limitedBy: hex.endIndex) ?? hex.endIndex
            guard let byte = UInt8(hex[index..<next], radix: 16) else { return nil }
            out.append(byte)
            index = next
        }
        return out
    }
}
