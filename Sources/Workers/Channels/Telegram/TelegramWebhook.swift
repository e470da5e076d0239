import Foundation
import Hummingbird
import Logging
import Projections

/// `POST /telegram/webhook`, fail-closed. In order:
///
/// | check | answer |
/// |---|---|
/// | `X-Telegram-Bot-Api-Secret-Token` missing, or not the secret (compared in constant time) | 401, `webhook.rejected` |
/// | `Content-Type` not `application/json` | 415 |
/// | body over `WEBHOOK_MAX_BODY_BYTES` | 413 |
/// | not JSON, or not an update object | 400 |
/// | a message, edited message, channel post or edited post with text or caption | 200 after it is in the log (dedupe by chat and message id) |
/// | any other update (with an `update_id`) | 200, recorded as `inbound.ignored` (dedupe by update id) |
/// | the log refused the write | 500 (Telegram retries; the retry is deduplicated) |
///
/// The route exists only when `TELEGRAM_WEBHOOK_SECRET` is set: the agent refuses to start in webhook mode
/// without it.
public struct TelegramWebhook: Sendable {
    let secret: ChannelSecret
    let inbound: TelegramInbound
    let ingress: ChannelIngress
    let maxBodyBytes: Int
    let logger: Logger

    public init(
        secret: ChannelSecret, inbound: TelegramInbound, ingress: ChannelIngress, maxBodyBytes: Int, logger: Logger
    ) {
        self.secret = secret
        self.inbound = inbound
        self.ingress = ingress
        self.maxBodyBytes = maxBodyBytes
        self.logger = logger
    }

    var accountID: String { inbound.accountID }

    public func handle(_ request: Request) async -> Response {
        guard let presented = request.headers[.telegramSecretToken] else {
            await ingress.rejected(
                channel: Channel.telegram.rawValue, accountID: accountID, reason: "missing_secret", status: 401)
            return WebhookHTTP.answer(401)
        }
        guard WebhookHTTP.secretsMatch(presented, secret.value) else {
            await ingress.rejected(
                channel: Channel.telegram.rawValue, accountID: accountID, reason: "bad_secret", status: 401)
            return WebhookHTTP.answer(401)
        }
        guard WebhookHTTP.isJSON(request) else { return WebhookHTTP.answer(415) }
        let bytes: [UInt8]
        switch await WebhookHTTP.read(request, limit: maxBodyBytes) {
        case .bytes(let read): bytes = read
        case .tooLarge: return WebhookHTTP.answer(413)
        case .unreadable: return WebhookHTTP.answer(400)
        }
        let update: TelegramUpdate
        do {
            update = try JSONDecoder().decode(TelegramUpdate.self, from: Data(bytes))
        } catch {
            logger.warning("[telegram] Webhook body is not an update", metadata: ["webhook.bytes": "\(bytes.count)"])
            return WebhookHTTP.answer(400, "Bad request: not a Telegram update")
        }
        let (item, migration) = inbound.item(for: update)
        if let migration { await inbound.chats.migrated(from: migration.from, to: migration.to) }
        guard let item else { return WebhookHTTP.answer(200) }
        do {
            try await ingress.ingest([item], channel: Channel.telegram.rawValue)
            return WebhookHTTP.answer(200)
        } catch {
            logger.error("[telegram] Webhook update not recorded", metadata: ["error": "\(error)"])
            return WebhookHTTP.answer(500)
        }
    }
}
