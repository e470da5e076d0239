import AsyncHTTPClient
import Foundation
import Logging
import Projections
import ServiceLifecycle

/// The session keys of a WhatsApp Cloud account (namespace `whatsapp/<account>`).
public enum WhatsAppSessionKey {
    /// The bearer token, when given by `agent whatsapp login` (sealed when `SESSION_ENCRYPTION_KEY` is set).
    public static let accessToken = "access_token"
    public static let phoneNumberID = "phone_number_id"
    public static let businessAccountID = "business_account_id"
}

/// The channel side of one agent process: for each channel account of its role, the lease keeper, the outbound
/// loop, the inbound (webhook routes or Telegram polling) and the connection health.
public struct ChannelRuntime: Sendable {
    /// The webhook routes the HTTP server adds.
    public var routes = ChannelRoutes()
    /// One per sending channel account; they start before ``services``.
    public var keepers: [LeaseKeeper] = []
    /// Outbound loops, pollers and connection monitors, after the keepers (so they stop before the leases are
    /// released).
    public var services: [any Service] = []
    /// The WhatsApp linked device, when this process runs one (`WHATSAPP_TRANSPORT=web`).
    public var linkedDevice: LinkedDevice?

    /// Builds the channels of `settings.role`; channels that cannot run say why in `status` and the log.
    public static func make(
        settings: AgentSettings, engine: Switchboard, status: WorkerStatus, metrics: WorkerMetrics, logger: Logger
    ) -> ChannelRuntime {
        var runtime = ChannelRuntime()
        let channels = settings.channels
        let ingress = ChannelIngress(engine: engine, logger: logger)
        let store: SessionStore
        do {
            store = try SessionStore(
                backend: settings.sessionBackend, engine: engine, directory: settings.sessionDirectory)
        } catch {
            logger.error("[channels] Session store unavailable: \(error)")
            return runtime
        }
        func off(_ name: String, _ account: String, _ reason: String) {
            status.channelOff(name, reason: reason)
            logger.warning(
                "[\(name)] Channel off (\(reason)): not sending", metadata: ["channel.account": "\(account)"])
        }
        // The senders' own HTTP client: enough connections per provider host for every concurrent send of an
        // account plus its typing lane (the shared client allows 8), shut down after the outbound loops.
        var senderClient: HTTPClient?
        func client() -> HTTPClient {
            if let senderClient { return senderClient }
            var configuration = HTTPClient.Configuration()
            configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = settings.outboundConcurrency + 2
            let made = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
            senderClient = made
            runtime.services.insert(HTTPClientService(client: made), at: 0)
            return made
        }
        func keeper(_ name: String, _ account: String) -> LeaseKeeper {
            let keeper = LeaseKeeper(
                channel: name, accountID: account, engine: engine, timing: engine.settings.lease, status: status,
                metrics: metrics, logger: logger)
            runtime.keepers.append(keeper)
            return keeper
        }

        // Telegram
        if settings.role == .telegram || settings.role == .all {
            let account = settings.telegramAccountID
            let health = ChannelHealth(
                channel: Channel.telegram.rawValue, accountID: account, engine: engine, logger: logger)
            let access = ChannelAccess(
                channel: Channel.telegram.rawValue, policy: channels.telegramPolicy,
                allowlist: channels.telegramAllowedChats)
            let groups = TelegramGroups(policy: channels.groupPolicy, allowed: channels.telegramAllowedGroups)
            var chats = TelegramChats()
            var keeperOfAccount: LeaseKeeper?
            if let token = settings.telegramBotToken {
                let leaseKeeper = keeper(Channel.telegram.rawValue, account)
                keeperOfAccount = leaseKeeper
                let session = ChannelSession(store: store, keeper: leaseKeeper, logger: logger)
                chats = TelegramChats(session: session)
                let sender = TelegramSender(
                    baseURL: settings.telegramAPIBaseURL, token: token, timeout: settings.providerTimeout,
                    client: client(), chats: chats)
                runtime.services.append(
                    OutboundService(
                        keeper: leaseKeeper, sender: sender, engine: engine, metrics: metrics, health: health,
                        concurrency: settings.outboundConcurrency, logger: logger))
                let api = TelegramBotAPI(
                    baseURL: settings.telegramAPIBaseURL, token: token, timeout: settings.providerTimeout)
                let inbound = TelegramInbound(accountID: account, access: access, chats: chats, groups: groups)
                switch channels.telegramMode {
                case .polling:
                    runtime.services.append(
                        TelegramPoller(
                            keeper: leaseKeeper, session: session, api: api, inbound: inbound, ingress: ingress,
                            health: health, pollTimeout: channels.telegramPollTimeout, logger: logger))
                case .webhook, .off:
                    let mode = channels.telegramMode.rawValue
                    runtime.services.append(
                        ChannelConnection(keeper: leaseKeeper, health: health, logger: logger) { _ in
                            switch await api.getMe() {
                            case .success(let me):
                                groups.identity.set(id: me.id, username: me.username, firstName: me.first_name)
                                return .ok(detail: "\(mode) @\(me.username ?? "\(me.id)")")
                            case .failure(let error)
                            where error.code == .refused && [401, 404].contains(error.errorCode ?? 0):
                                return .refused(code: error.errorCode, message: error.message)
                            case .failure(let error):
                                return .unreachable(code: error.errorCode ?? error.status, message: error.message)
                            }
                        })
                }
            } else {
                off(Channel.telegram.rawValue, account, "no credentials: TELEGRAM_BOT_TOKEN not set")
            }
            if channels.telegramMode == .webhook, let secret = channels.telegramWebhookSecret {
                let inbound = TelegramInbound(accountID: account, access: access, chats: chats, groups: groups)
                runtime.routes.telegram = TelegramWebhook(
                    secret: secret, inbound: inbound, ingress: ingress, maxBodyBytes: channels.webhookMaxBodyBytes,
                    logger: logger)
                logger.info(
                    "[telegram] Webhook route POST /telegram/webhook (DM policy \(access.policy.rawValue))",
                    metadata: ["lease.held_by_this_process": "\(keeperOfAccount != nil)"])
            } else if channels.telegramMode == .polling && settings.telegramBotToken != nil {
                logger.info("[telegram] Long polling (DM policy \(access.policy.rawValue))")
            }
        }

        // WhatsApp Cloud
        if (settings.role == .whatsapp || settings.role == .all) && !settings.enableWhatsApp {
            off(Channel.whatsapp.rawValue, settings.whatsappAccountID, "ENABLE_WHATSAPP=false")
        } else if settings.role == .whatsapp || settings.role == .all {
            let account = settings.whatsappAccountID
            let namespace = "whatsapp/\(account)"
            let stored = (try? store.entries(namespace)) ?? [:]
            @Sendable func storedString(_ key: String) -> String? {
                stored[key].map { String(decoding: $0, as: UTF8.self) }.flatMap { $0.isEmpty ? nil : $0 }
            }
            let token = settings.whatsappAccessToken ?? storedString(WhatsAppSessionKey.accessToken)
            let phoneNumberID = settings.whatsappPhoneNumberID ?? storedString(WhatsAppSessionKey.phoneNumberID)
            let businessAccountID =
                channels.whatsappBusinessAccountID ?? storedString(WhatsAppSessionKey.businessAccountID)
            let access = ChannelAccess(
                channel: Channel.whatsapp.rawValue, policy: channels.whatsappPolicy,
                allowlist: channels.whatsappAllowedNumbers)
            let (transport, why) = whatsappTransport(
                channels.whatsappTransport, cloudCredentials: token != nil && phoneNumberID != nil,
                linked: LinkedSessionLayout.isLinked(stored))
            logger.info("[whatsapp] Transport: \(transport?.rawValue ?? "none") (\(why))")
            // With neither, the one-process agent keeps a linked device ready but idle: /settings starts it (Link
            // WhatsApp), so a person can put the assistant on their number from the browser.
            let idle = transport == nil && settings.role == .all
            if transport == .web || idle {
                let leaseKeeper = keeper(Channel.whatsapp.rawValue, account)
                let linked = LinkedDevice.make(
                    settings: settings, keeper: leaseKeeper, store: store, engine: engine, printQR: true, logger: logger
                )
                runtime.linkedDevice = linked
                if idle {
                    // Nothing holds the number until someone presses Link WhatsApp: another process may use it.
                    linked.pause(.notStarted)
                    leaseKeeper.startDormant()
                }
                // The device stops after the outbound loop (services stop in reverse order).
                runtime.services.append(linked)
                runtime.services.append(
                    OutboundService(
                        keeper: leaseKeeper,
                        sender: WhatsAppWebSender(device: linked, sendsPerSecond: channels.whatsappWebSendsPerSecond),
                        engine: engine,
                        metrics: metrics, health: linked.health, concurrency: settings.outboundConcurrency,
                        logger: logger))
                if !idle { return runtime }
                logger.info(
                    "[whatsapp] Link your own number on the web chat's /settings page, or with `agent whatsapp link`")
            }
            if let token, let phoneNumberID, !idle {
                if settings.whatsappAccessToken == nil {
                    logger.info("[whatsapp] Using the credentials stored by `agent whatsapp login`")
                }
                let leaseKeeper = keeper(Channel.whatsapp.rawValue, account)
                let session = ChannelSession(store: store, keeper: leaseKeeper, logger: logger)
                let health = ChannelHealth(
                    channel: Channel.whatsapp.rawValue, accountID: account, engine: engine, logger: logger)
                let sender = WhatsAppCloudSender(
                    baseURL: settings.whatsappGraphBaseURL, phoneNumberID: phoneNumberID, accessToken: token,
                    timeout: settings.providerTimeout, template: settings.channels.whatsappTemplate, client: client())
                runtime.services.append(
                    OutboundService(
                        keeper: leaseKeeper, sender: sender, engine: engine, metrics: metrics, health: health,
                        concurrency: settings.outboundConcurrency, logger: logger))
                let graph = WhatsAppGraphAPI(
                    baseURL: settings.whatsappGraphBaseURL, accessToken: token, timeout: settings.providerTimeout)
                runtime.services.append(
                    ChannelConnection(keeper: leaseKeeper, health: health, logger: logger) { tenure in
                        let probe = await graph.probe(phoneNumberID: phoneNumberID)
                        if case .ok = probe {
                            // The account's identity, for restarts and operators (never the token from the
                            // environment: only `agent whatsapp login` stores one).
                            var changes: SessionChanges = [:]
                            if storedString(WhatsAppSessionKey.phoneNumberID) != phoneNumberID {
                                changes[WhatsAppSessionKey.phoneNumberID] = Data(phoneNumberID.utf8)
                            }
                            if let businessAccountID,
                                storedString(WhatsAppSessionKey.businessAccountID) != businessAccountID
                            {
                                changes[WhatsAppSessionKey.businessAccountID] = Data(businessAccountID.utf8)
                            }
                            if !changes.isEmpty { await session.write(changes, under: tenure) }
                        }
                        return probe
                    })
            } else if !idle {
                var missing: [String] = []
                if token == nil { missing.append("WHATSAPP_CLOUD_ACCESS_TOKEN") }
                if phoneNumberID == nil { missing.append("WHATSAPP_PHONE_NUMBER_ID") }
                off(Channel.whatsapp.rawValue, account, "no credentials: \(missing.joined(separator: " and ")) not set")
                logger.info("[whatsapp] Credentials can also be stored once with `agent whatsapp login`")
            }
            let inbound = WhatsAppInbound(accountID: account, phoneNumberID: phoneNumberID, access: access)
            runtime.routes.whatsapp = WhatsAppWebhook(
                verifyToken: channels.whatsappVerifyToken, appSecret: channels.whatsappAppSecret, inbound: inbound,
                ingress: ingress, maxBodyBytes: channels.webhookMaxBodyBytes, logger: logger)
            if channels.whatsappAppSecret == nil {
                logger.warning(
                    "[whatsapp] WHATSAPP_CLOUD_APP_SECRET not set: POST /whatsapp/webhook refuses every notification (503)"
                )
            }
        }
        return runtime
    }

    /// The transport of the WhatsApp account, and why: `WHATSAPP_TRANSPORT` when set; else `cloud` with Cloud API
    /// credentials, `web` with a linked session, none otherwise.
    static func whatsappTransport(_ setting: WhatsAppTransport?, cloudCredentials: Bool, linked: Bool)
        -> (WhatsAppTransport?, String)
    {
        if let setting { return (setting, "WHATSAPP_TRANSPORT=\(setting.rawValue)") }
        if cloudCredentials { return (.cloud, "Cloud API credentials are set") }
        if linked { return (.web, "a linked session is stored") }
        return (
            nil, "no Cloud API credentials and no linked session: set WHATSAPP_TRANSPORT=web to link your own number"
        )
    }
}
