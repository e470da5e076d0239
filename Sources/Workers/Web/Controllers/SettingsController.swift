import HTTPTypes
import Hummingbird
import Logging

/// The settings page and Todoist connect: `GET /settings`, `GET /settings/todoist/connect` (to Todoist's
/// authorize URL), `POST /settings/todoist/disconnect` (CSRF) — the owner's — and the OAuth callback (the path
/// of `TODOIST_OAUTH_REDIRECT_URI`), which checks the session itself. See docs/web.md, "Todoist connect".
struct SettingsController: Sendable {
    let settings: WebSettings
    let auth: WebAuth
    let todoist: TodoistConnect
    let assets: WebAssets
    let gate: WebGate
    let whatsapp: WebWhatsApp?
    let logger: Logger

    func addRoutes(to group: RouterGroup<WebRequestContext>) {
        gate.owner(.page, on: group)
            .get("settings", use: page)
            .get("settings/todoist/connect", use: connect)
            .post("settings/todoist/disconnect", use: disconnect)
            .post("settings/whatsapp/unlink", use: unlinkWhatsApp)
            .post("settings/whatsapp/resume", use: resumeWhatsApp)
        // Open to anyone: the first arrival from Todoist's site has no cookie (see `callback`).
        group.group()
            .add(middleware: InternalErrorMiddleware(kind: .page, logger: logger))
            .get(RouterPath(settings.todoistCallbackPath), use: callback)
    }

    static let messages = [
        "connected": "Todoist is connected.", "disconnected": "Todoist is disconnected.",
        "denied": "Todoist did not grant access.", "failed": "Connecting Todoist failed; see the agent's log.",
        "busy": "Todoist settings are being changed by another process; try again.",
        "whatsapp-unlinked": "WhatsApp is unlinked.", "whatsapp-resumed": "The linked device is starting again.",
        "whatsapp-elsewhere": "The linked device runs in another process: use `agent whatsapp unlink` there.",
        "whatsapp-not-holder": "Not unlinked: another process holds the WhatsApp account (see /status).",
    ]

    /// `GET /settings`: the model that answers and Todoist's state; `?todoist=<outcome>` shows a message.
    @Sendable func page(_ request: Request, context: WebRequestContext) async throws -> Response {
        try await render(request, session: try context.ownerSession())
    }

    func render(
        _ request: Request, session: WebSession, status: HTTPResponse.Status = .ok, message: String? = nil
    ) async throws -> Response {
        let todoistState: WebPages.SettingsView.Todoist
        if settings.todoist == nil {
            todoistState = .notConfigured(missing: settings.todoistMissing)
        } else {
            todoistState = try todoist.isConnected() ? .connected : .notConnected
        }
        let query = request.uri.queryParameters
        let flash = message ?? (query.get("todoist") ?? query.get("whatsapp")).flatMap { Self.messages[$0] }
        let view = WebPages.SettingsView(
            todoist: todoistState, todoistOverride: settings.todoistTokenOverride, message: flash,
            model: settings.model, whatsapp: whatsapp?.section(csrf: session.csrf),
            refresh: whatsapp?.refreshes() == true ? 5 : nil)
        return WebResponse.html(status, WebPages.settings(view, assets: assets, csrf: session.csrf))
    }

    /// `POST /settings/whatsapp/unlink`: the linked device logs out and its keys are cleared (this process's).
    @Sendable func unlinkWhatsApp(_ request: Request, context: WebRequestContext) async throws -> Response {
        guard let device = whatsapp?.device else {
            return WebResponse.redirect("/settings?whatsapp=whatsapp-elsewhere")
        }
        let cleared = await device.unlink()
        return WebResponse.redirect("/settings?whatsapp=" + (cleared ? "whatsapp-unlinked" : "whatsapp-not-holder"))
    }

    /// `POST /settings/whatsapp/resume`: a paused linked device starts again (a new QR after an unlink).
    @Sendable func resumeWhatsApp(_ request: Request, context: WebRequestContext) async throws -> Response {
        guard let device = whatsapp?.device else {
            return WebResponse.redirect("/settings?whatsapp=whatsapp-elsewhere")
        }
        device.resume()
        return WebResponse.redirect("/settings?whatsapp=whatsapp-resumed")
    }

    /// `GET /settings/todoist/connect`: 303 to Todoist's authorize URL with a `state` bound to the session.
    @Sendable func connect(_ request: Request, context: WebRequestContext) async throws -> Response {
        let session = try context.ownerSession()
        guard let oauth = settings.todoist else { return WebResponse.redirect("/settings") }
        let state = auth.oauthState(for: session, purpose: TodoistConnect.statePurpose)
        return WebResponse.redirect(todoist.authorizeURL(oauth: oauth, state: state))
    }

    /// `POST /settings/todoist/disconnect`: removes the stored token.
    @Sendable func disconnect(_ request: Request, context: WebRequestContext) async throws -> Response {
        do {
            try await todoist.save(nil)
        } catch let error as WebError {
            logger.warning("[web] Todoist disconnect failed", metadata: ["error": "\(error.message)"])
            return WebResponse.redirect("/settings?todoist=busy")
        }
        return WebResponse.redirect("/settings?todoist=disconnected")
    }

    /// The OAuth callback. The browser arrives from Todoist's site, so a `SameSite=Strict` cookie is withheld on
    /// that first request: it is answered with a page that reloads the same URL from this site (`hop=1`), which
    /// carries the cookie. With a session, the `state` is checked in constant time against the session, the
    /// `code` exchanged and the token stored.
    @Sendable func callback(_ request: Request, context: WebRequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        guard let session = context.session else {
            if query.get("hop") == "1" { return WebResponse.redirect("/login?next=/settings") }
            let separator = request.uri.query == nil ? "?" : "&"
            return WebResponse.html(
                .ok, WebPages.sameSiteHop(url: request.uri.string + separator + "hop=1", assets: assets))
        }
        guard let oauth = settings.todoist else { return WebResponse.redirect("/settings") }
        if query.get("error") != nil { return WebResponse.redirect("/settings?todoist=denied") }
        guard let state = query.get("state"),
            auth.checkOAuthState(state, for: session, purpose: TodoistConnect.statePurpose)
        else {
            logger.warning("[web] Todoist callback refused: bad or expired state")
            return try await render(
                request, session: session, status: .badRequest,
                message: "The Todoist answer was refused (bad or expired state); connect again.")
        }
        guard let code = query.get("code"), !code.isEmpty else {
            return try await render(
                request, session: session, status: .badRequest, message: "Todoist sent no code; connect again.")
        }
        do {
            let token = try await todoist.exchange(oauth: oauth, code: code)
            try await todoist.save(token)
        } catch let error as WebError {
            logger.warning("[web] Todoist connect failed", metadata: ["error": "\(error.message)"])
            return try await render(
                request, session: session, status: .badGateway, message: "Connecting Todoist failed: \(error.message).")
        }
        return WebResponse.redirect("/settings?todoist=connected")
    }
}
