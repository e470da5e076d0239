import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import Projections

/// The web chat: the routes the `web` (and `all`) role adds to the agent's HTTP server — login, the chat pages,
/// their script and style, the conversation event stream, the message / conversation / approval APIs, the
/// status page and the settings page with Todoist connect. See docs/web.md.
///
/// A façade: the routes are the controllers' (`Controllers/`, one per area), the checks the middleware's
/// (`Middleware/`, see ``WebGate``). Only `/login`, `/assets/…`, `/healthz`, `/metrics` and the OAuth callback
/// (which checks its own session) answer without a session; other pages redirect to `/login`, other APIs answer
/// 401 JSON. Every POST needs the session's CSRF token (`X-CSRF-Token` header or `csrf` form field), else 403.
public final class WebChat: Sendable {
    public let settings: WebSettings
    public let auth: WebAuth
    public let assets = WebAssets()
    /// Fired at shutdown: open event streams end.
    public let shutdown = WebShutdown()
    let keys: WebKeyFiles
    let engine: Switchboard
    let todoist: TodoistConnect
    /// The WhatsApp section of /settings.
    let whatsapp: WebWhatsApp?
    let heartbeat: Duration
    /// The local model server's health, when this process supervises one (the status page shows it).
    let modelHealth: ModelHealth?
    let logger: Logger

    /// Loads or creates the owner token and cookie key (see ``WebKeyFiles``).
    /// - Parameters:
    ///   - heartbeat: the comment interval of event streams (15 s).
    ///   - clock: the wall clock of sessions and the login limit (tests move it).
    public init(
        engine: Switchboard, settings: WebSettings, sessionStore: SessionStore, httpClient: HTTPClient = .shared,
        heartbeat: Duration = .seconds(15), clock: @escaping @Sendable () -> Date = { Date() },
        modelHealth: ModelHealth? = nil, whatsapp: WebWhatsApp? = nil, logger: Logger
    ) throws {
        self.engine = engine
        self.whatsapp = whatsapp
        self.modelHealth = modelHealth
        self.settings = settings
        keys = try WebKeyFiles(settings: settings)
        auth = WebAuth(
            secret: keys.secret, cookieKey: keys.cookieKey, lifetime: settings.sessionLifetime,
            secure: settings.secureCookies, failuresPerMinute: settings.loginFailuresPerMinute, clock: clock)
        todoist = TodoistConnect(
            oauth: settings.todoist, store: sessionStore, engine: engine, client: httpClient, timeout: .seconds(30),
            logger: logger)
        self.heartbeat = heartbeat
        self.logger = logger
    }

    /// The startup lines: where to sign in and with what. A token made by this start is printed once, to
    /// standard error directly (never through the logger, whose handlers may ship lines elsewhere).
    public func announce(url: String) {
        switch keys.source {
        case .password:
            logger.info("[web] Web chat at \(url) — sign in with WEB_PASSWORD")
        case .tokenFile(let path, created: true):
            FileHandle.standardError.write(
                Data(
                    """
                    [web] Owner token (shown once; also stored in \(path), mode 0600): \(keys.secret)
                    [web] Open \(url)/login and sign in with it, or set WEB_PASSWORD.

                    """.utf8))
            logger.info("[web] Web chat at \(url) — the owner token was printed above and stored in \(path)")
        case .tokenFile(let path, created: false):
            logger.info("[web] Web chat at \(url) — sign in with the owner token stored in \(path)")
        }
    }

    // MARK: Routes

    /// Adds the web chat's routes to `router`: every one behind ``SecurityHeaders`` and
    /// ``WebSessionAuthenticator``; the owner's behind the middleware of ``WebGate``.
    public func addRoutes(to router: Router<WebRequestContext>) {
        let web = router.group()
            .add(middleware: SecurityHeaders())
            .add(middleware: WebSessionAuthenticator(auth: auth))
        let gate = WebGate(
            auth: auth, sameOrigin: SameOrigin(publicURL: settings.publicURL, logger: logger), logger: logger)
        let views = ChatViews(engine: engine, settings: settings, logger: logger)
        let intake = MessageIntake(engine: engine)
        assets.addRoutes(to: web)
        LoginController(auth: auth, secretSource: keys.source, assets: assets, gate: gate, logger: logger)
            .addRoutes(to: web)
        ChatPagesController(views: views, intake: intake, assets: assets, gate: gate).addRoutes(to: web)
        ChatAPIController(
            engine: engine, views: views, intake: intake, gate: gate, heartbeat: heartbeat, shutdown: shutdown,
            logger: logger
        ).addRoutes(to: web)
        ConversationControlsController(engine: engine, gate: gate, logger: logger).addRoutes(to: web)
        ApprovalsController(engine: engine, gate: gate, logger: logger).addRoutes(to: web)
        StatusController(engine: engine, modelHealth: modelHealth, assets: assets, gate: gate).addRoutes(to: web)
        SettingsController(
            settings: settings, auth: auth, todoist: todoist, assets: assets, gate: gate, whatsapp: whatsapp,
            logger: logger
        ).addRoutes(to: web)
    }
}
