import AsyncHTTPClient
import EventLog
import Foundation
import Hummingbird
import Logging
import Projections
import SwitchboardEvents
import Synchronization
import TestSupport
import Workers

/// The channels' webhook routes served in this process on 127.0.0.1 (port 0), over a fresh log: what the agent's
/// HTTP server does with them, without spawning it.
final class WebhookHarness: Sendable {
    static let telegramSecret = "s3cr3t_-token-0123456789"
    static let appSecret = "meta-app-secret-0123"
    static let verifyToken = "verify-me-please"
    static let phoneNumberID = "109900001"

    let directory: TemporaryDirectory
    let log: TestLog
    let ingress: ChannelIngress
    let client: WebhookClient
    let port: Int
    private let task: Task<Void, any Error>

    private init(
        directory: TemporaryDirectory, log: TestLog, ingress: ChannelIngress, port: Int, task: Task<Void, any Error>
    ) {
        self.directory = directory
        self.log = log
        self.ingress = ingress
        self.port = port
        self.task = task
        client = WebhookClient(baseURL: "http://127.0.0.1:\(port)")
    }

    var engine: Switchboard { log.engine }

    /// Serves the Telegram and WhatsApp routes; `whatsappSecret`/`verifyToken` `nil` leaves them unconfigured.
    static func start(
        telegramPolicy: DMPolicy = .open, telegramAllowed: Set<String> = [], whatsappPolicy: DMPolicy = .open,
        whatsappSecret: String? = appSecret, verifyToken: String? = verifyToken, maxBodyBytes: Int = 64 * 1024,
        refusalInterval: Duration = .zero
    ) async throws -> WebhookHarness {
        let directory = TemporaryDirectory()
        let log = try TestLog(directory.path, workerID: "webhook")
        let logger = Logger(label: "webhook-test", factory: { _ in SwiftLogNoOpLogHandler() })
        let ingress = ChannelIngress(engine: log.engine, refusalInterval: refusalInterval, logger: logger)
        let telegram = TelegramWebhook(
            secret: ChannelSecret(telegramSecret),
            inbound: TelegramInbound(
                accountID: "default",
                access: ChannelAccess(channel: "telegram", policy: telegramPolicy, allowlist: telegramAllowed),
                chats: TelegramChats()),
            ingress: ingress, maxBodyBytes: maxBodyBytes, logger: logger)
        let whatsapp = WhatsAppWebhook(
            verifyToken: verifyToken.map(ChannelSecret.init), appSecret: whatsappSecret.map(ChannelSecret.init),
            inbound: WhatsAppInbound(
                accountID: "default", phoneNumberID: phoneNumberID,
                access: ChannelAccess(channel: "whatsapp", policy: whatsappPolicy)),
            ingress: ingress, maxBodyBytes: maxBodyBytes, logger: logger)
        let router = Router()
        ChannelRoutes(telegram: telegram, whatsapp: whatsapp).add(to: router)
        let (portStream, portContinuation) = AsyncStream<Int>.makeStream()
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                portContinuation.yield(channel.localAddress?.port ?? 0)
                portContinuation.finish()
            }, logger: logger)
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var ports = portStream.makeAsyncIterator()
        guard let port = await ports.next() else { throw TestTimeout(what: "the webhook server to listen") }
        return WebhookHarness(directory: directory, log: log, ingress: ingress, port: port, task: task)
    }

    func stop() {
        task.cancel()
        log.close()
    }

    /// Every event of a type, decoded.
    func events<E: EventPayload>(_ kind: E.Type) throws -> [E] {
        try log.events().compactMap { entry in
            try? entry.record.type == E.eventType ? entry.record.decode(E.self) : nil
        }
    }
}
