import AsyncHTTPClient
import EventLog
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Projections
import SwitchboardEvents

/// The web chat: the routes the `web` (and `all`) role adds to the agent's HTTP server — login, the chat pages,
/// their script and style, the conversation event stream, the message / conversation / approval APIs, the
/// status page and the settings page with Todoist connect. See docs/web.md.
///
/// Only `/login`, `/assets/…`, `/healthz`, `/metrics` and the OAuth callback (which checks its own session) answer
/// without a session; other pages redirect to `/login`, other APIs answer 401 JSON. Every POST needs the
/// session's CSRF token (`X-CSRF-Token` header or `csrf` form field), else 403.
public final class WebChat: Sendable {
    public let settings: WebSettings
    public let auth: WebAuth
    public let assets = WebAssets()
    /// Fired at shutdown: open event streams end.
    public let shutdown = WebShutdown()
    let keys: WebKeyFiles
    let engine: Switchboard
    let todoist: TodoistConnect
    let heartbeat: Duration
    /// The local model server's health, when this process supervises one (the status page shows it).
    let modelHealth: ModelHealth?
    let logger: Logger

    /// The longest message text accepted (characters).
    static let maxTextLength = 16_000
    /// The largest request body read (bytes).
    static let maxBody = 256 * 1024

    /// Loads or creates the owner token and cookie key (see ``WebKeyFiles``).
    /// - Parameters:
    ///   - heartbeat: the comment interval of event streams (15 s).
    ///   - clock: the wall clock of sessions and the login limit (tests move it).
    public init(
        engine: Switchboard, settings: WebSettings, sessionStore: SessionStore, httpClient: HTTPClient = .shared,
        heartbeat: Duration = .seconds(15), clock: @escaping @Sendable () -> Date = { Date() },
        modelHealth: ModelHealth? = nil, logger: Logger
    ) throws {
        self.engine = engine
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

    /// Adds the web chat's routes to `router`.
    public func addRoutes(to router: Router<WebRequestContext>) {
        let web = router.group().add(middleware: SecurityHeaders())
        web.get("login") { request, context in try await self.loginPage(request, context) }
        web.post("login") { request, context in try await self.login(request, context) }
        web.post("logout", use: post(.page) { call in self.logout(call) })
        web.get("api/session", use: owner(.api) { call in self.json(.ok, SessionInfo(call.session)) })
        web.get("assets/:name") { _, context in
            guard let name = context.parameters.get("name"), let asset = self.assets.asset(named: name) else {
                return Response(status: .notFound)
            }
            return self.assets.response(asset)
        }
        web.get("/", use: owner(.page) { call in try await self.chatPage(call, conversationID: nil) })
        web.get("c/:id", use: owner(.page) { call in try await self.chatPage(call, conversationID: call.id) })
        web.post("c/:id/send", use: post(.page) { call in try await self.formSend(call) })
        web.get("api/conversations", use: owner(.api) { _ in try await self.conversationList() })
        web.post("api/conversations", use: post(.api) { _ in self.newConversation() })
        web.get("api/conversations/:id/events", use: owner(.api) { call in try self.events(call) })
        web.post("api/conversations/:id/messages", use: post(.api) { call in try await self.postMessage(call) })
        web.post("api/approvals/:id", use: post(.api) { call in try await self.answerApproval(call) })
        web.get("status", use: owner(.page) { call in try await self.statusPage(call) })
        web.get(
            "api/status",
            use: owner(.api) { _ in
                self.json(.ok, try await WebStatus.read(engine: self.engine, model: self.modelHealth))
            })
        web.get("settings", use: owner(.page) { call in try await self.settingsPage(call) })
        web.get("settings/todoist/connect", use: owner(.page) { call in self.todoistConnect(call) })
        web.post("settings/todoist/disconnect", use: post(.page) { call in try await self.todoistDisconnect(call) })
        web.get(RouterPath(settings.todoistCallbackPath)) { request, context in
            try await self.todoistCallback(request, context)
        }
    }

    /// `GET /api/session`: whether the cookie is a live session, its expiry and its CSRF token (readable by this
    /// origin's scripts only).
    struct SessionInfo: Encodable {
        var expires: Int64
        var csrf: String
        init(_ session: WebSession) {
            expires = session.expires
            csrf = session.csrf
        }
    }

    // MARK: The gate

    enum Kind {
        /// A page: without a session, a redirect to `/login`.
        case page
        /// An API: without a session, 401 JSON.
        case api
    }

    /// A request that passed the gate.
    struct Call: Sendable {
        var request: Request
        var context: WebRequestContext
        var session: WebSession
        var body = ByteBuffer()
        var form: [String: String] = [:]

        /// The `:id` path parameter, percent-decoded.
        var id: String? {
            context.parameters.get("id").flatMap { $0.removingPercentEncoding }
        }
    }

    typealias Handler = @Sendable (Call) async throws -> Response

    func currentSession(_ request: Request) -> WebSession? {
        request.cookies[WebAuth.cookieName].flatMap { auth.session(cookie: $0.value) }
    }

    func refuse(_ kind: Kind, _ request: Request) -> Response {
        switch kind {
        case .api:
            return json(.unauthorized, ["error": "sign in first (POST /login)"])
        case .page:
            let next = request.uri.path == "/" ? "" : "?next=\(HTML.queryValue(request.uri.path))"
            return redirect("/login\(next)")
        }
    }

    /// A GET handler that needs a session.
    func owner(_ kind: Kind, _ handler: @escaping Handler)
        -> @Sendable (Request, WebRequestContext) async throws
        -> Response
    {
        { request, context in
            guard let session = self.currentSession(request) else { return self.refuse(kind, request) }
            return try await self.guarded(kind) {
                try await handler(Call(request: request, context: context, session: session))
            }
        }
    }

    /// A POST handler that needs a session, a same-origin request and the session's CSRF token.
    func post(_ kind: Kind, _ handler: @escaping Handler)
        -> @Sendable (Request, WebRequestContext) async throws
        -> Response
    {
        { request, context in
            guard let session = self.currentSession(request) else { return self.refuse(kind, request) }
            guard self.sameOrigin(request) else {
                return self.crossOrigin(request)
            }
            var call = Call(request: request, context: context, session: session)
            do {
                var request = request
                call.body = try await request.collectBody(upTo: Self.maxBody)
            } catch {
                return self.json(.contentTooLarge, ["error": "the request body is larger than \(Self.maxBody) bytes"])
            }
            if self.isForm(request) { call.form = Self.parseForm(call.body) }
            let token = request.headers[.csrfToken] ?? call.form["csrf"]
            guard self.auth.checkCSRF(token, for: session) else {
                return self.json(
                    .forbidden, ["error": "missing or wrong CSRF token (X-CSRF-Token header or csrf field)"])
            }
            return try await self.guarded(kind) { try await handler(call) }
        }
    }

    /// Runs a handler; an unexpected error is logged and answered 500 without its details.
    func guarded(_ kind: Kind, _ body: () async throws -> Response) async throws -> Response {
        do {
            return try await body()
        } catch let error as HTTPError {
            throw error
        } catch {
            logger.error("web.request.failed", metadata: ["error": "\(error)"])
            switch kind {
            case .api: return json(.internalServerError, ["error": "internal error; see the agent's log"])
            case .page:
                return htmlResponse(
                    .internalServerError,
                    "<!doctype html><title>Error</title><p>Internal error; see the agent's log.</p>")
            }
        }
    }

    /// Whether an `Origin` header, when present, names this server (the `Host` it was asked for, or
    /// `WEB_PUBLIC_URL`).
    func sameOrigin(_ request: Request) -> Bool {
        // `null` (a privacy setting, a sandboxed frame) names no site: the CSRF token decides.
        guard let origin = request.headers[.origin], origin != "null" else { return true }
        if let publicURL = settings.publicURL, origin.lowercased() == publicURL.lowercased() { return true }
        guard let host = request.head.authority,
            let parsed = URL(string: origin), let originHost = parsed.host
        else { return false }
        let originAuthority = parsed.port.map { "\(originHost):\($0)" } ?? originHost
        return originAuthority.lowercased() == host.lowercased()
    }

    func crossOrigin(_ request: Request) -> Response {
        logger.warning(
            "[web] Cross-origin request refused",
            metadata: [
                "http.origin": "\(request.headers[.origin] ?? "")", "http.host": "\(request.head.authority ?? "")",
                "http.path": "\(request.uri.path)",
            ])
        return json(.forbidden, ["error": "cross-origin request refused"])
    }

    func isForm(_ request: Request) -> Bool {
        request.headers[.contentType]?.lowercased().hasPrefix("application/x-www-form-urlencoded") ?? false
    }

    static func parseForm(_ body: ByteBuffer) -> [String: String] {
        var out: [String: String] = [:]
        for pair in String(buffer: body).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ text: Substring) -> String {
                text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
            }
            let key = decode(parts[0])
            if out[key] == nil { out[key] = parts.count > 1 ? decode(parts[1]) : "" }
        }
        return out
    }

    // MARK: Responses

    func json(_ status: HTTPResponse.Status, _ value: some Encodable) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(
            status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    func htmlResponse(_ status: HTTPResponse.Status, _ html: String, headers: HTTPFields = [:]) -> Response {
        var fields: HTTPFields = [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"]
        fields.append(contentsOf: headers)
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    func redirect(_ location: String, headers: HTTPFields = [:]) -> Response {
        var fields: HTTPFields = [.location: location, .cacheControl: "no-store"]
        fields.append(contentsOf: headers)
        return Response(status: .seeOther, headers: fields)
    }

    // MARK: Login and logout

    /// A local path to return to after login (never another site).
    static func safeNext(_ next: String?) -> String {
        guard let next, next.hasPrefix("/"), !next.hasPrefix("//"), !next.contains("\\"),
            !next.contains(where: { $0.isNewline })
        else { return "/" }
        return next
    }

    var loginHint: String {
        switch keys.source {
        case .password: return "Sign in with the password set in WEB_PASSWORD."
        case .tokenFile:
            return "Sign in with the owner token: it was printed when the agent first started and is stored in "
                + "web/owner-token under the agent's data directory."
        }
    }

    func loginPage(_ request: Request, _ context: WebRequestContext) async throws -> Response {
        let next = Self.safeNext(request.uri.queryParameters.get("next"))
        if currentSession(request) != nil { return redirect(next) }
        return htmlResponse(.ok, WebPages.login(assets: assets, error: nil, next: next, hint: loginHint))
    }

    func login(_ request: Request, _ context: WebRequestContext) async throws -> Response {
        let client = context.clientKey(request)
        let wantsJSON = request.headers[.contentType]?.lowercased().hasPrefix("application/json") ?? false
        func failure(_ status: HTTPResponse.Status, _ message: String, next: String, headers: HTTPFields = [:])
            -> Response
        {
            if wantsJSON {
                var response = json(status, ["error": message])
                response.headers.append(contentsOf: headers)
                return response
            }
            return htmlResponse(
                status, WebPages.login(assets: assets, error: message, next: next, hint: loginHint), headers: headers)
        }
        if let wait = auth.limiter.retryAfter(client) {
            logger.warning("[web] Login refused: too many failures", metadata: ["web.client": "\(client)"])
            return failure(
                .tooManyRequests, "Too many failed attempts. Try again in \(wait) s.", next: "/",
                headers: [.retryAfter: "\(wait)"])
        }
        guard sameOrigin(request) else { return crossOrigin(request) }
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: 16 * 1024)
        } catch {
            return failure(.contentTooLarge, "The request is too large.", next: "/")
        }
        let secret: String?
        let next: String
        if wantsJSON {
            struct LoginBody: Decodable {
                var secret: String
                var next: String?
            }
            let decoded = try? JSONDecoder().decode(LoginBody.self, from: Data(body.readableBytesView))
            secret = decoded?.secret
            next = Self.safeNext(decoded?.next)
        } else {
            let form = Self.parseForm(body)
            secret = form["secret"]
            next = Self.safeNext(form["next"])
        }
        guard let secret, auth.checkSecret(secret) else {
            auth.limiter.failed(client)
            logger.warning("[web] Login failed", metadata: ["web.client": "\(client)"])
            return failure(.unauthorized, "Wrong secret.", next: next)
        }
        auth.limiter.succeeded(client)
        let (_, cookie) = auth.newSession()
        logger.info("[web] Owner signed in", metadata: ["web.client": "\(client)"])
        let setCookie: HTTPFields = [.setCookie: auth.setCookie(cookie)]
        if wantsJSON {
            var response = json(.ok, ["next": next])
            response.headers.append(contentsOf: setCookie)
            return response
        }
        return redirect(next, headers: setCookie)
    }

    func logout(_ call: Call) -> Response {
        auth.revoke(call.session)
        logger.info("[web] Owner signed out")
        return redirect("/login", headers: [.setCookie: auth.clearCookie])
    }

    // MARK: Chat pages

    /// Whether `id` can name a conversation in a URL: 1…200 bytes, no control characters, no `/`.
    static func validConversationID(_ id: String) -> Bool {
        (1...200).contains(id.utf8.count) && !id.contains("/")
            && !id.unicodeScalars.contains { $0.properties.generalCategory == .control }
    }

    /// A new web conversation id.
    static func newConversationID() -> String { "web-" + UUID().uuidString.lowercased() }

    static func readOnlyReason(_ conversation: ConversationState?) -> String? {
        guard let conversation, conversation.channel != "web" else { return nil }
        return "This \(conversation.channel) conversation is read-only here: the contact writes on "
            + "\(conversation.channel), and the assistant answers there."
    }

    func chatPage(_ call: Call, conversationID: String?) async throws -> Response {
        let id = conversationID ?? Self.newConversationID()
        guard Self.validConversationID(id) else {
            return htmlResponse(.notFound, "<!doctype html><title>Not found</title><p>No such conversation.</p>")
        }
        let chat = try await offload { try self.chatView(id) }
        return htmlResponse(.ok, WebPages.chat(chat, assets: assets, csrf: call.session.csrf))
    }

    /// The sidebar and the thread as of the log's current end.
    func chatView(_ id: String) throws -> WebPages.Chat {
        let conversation = try engine.conversation(id)
        let recent = try engine.conversations(limit: 100)
        let logger = logger
        let (fold, after, entries) = try engine.log.withSnapshot {
            snapshot -> (ThreadFold, UInt64, [WebPages.SidebarEntry]) in
            let after = try snapshot.lastSeq
            var fold = ThreadFold()
            if let conversation {
                // Every job of the conversation is enqueued after its first record: no lookup is needed.
                var filter = ConversationRecordFilter(conversationID: id) { _ in nil }
                try snapshot.forEach(from: conversation.firstSeq) { record in
                    guard record.seq <= after else { return false }
                    if let event = filter.event(of: record, logger: logger) {
                        fold.apply(seq: record.seq, time: record.timestamp, event)
                    }
                    return true
                }
            }
            let entries = try Self.sidebar(recent, snapshot)
            return (fold, after, entries)
        }
        let title = entries.first { $0.conversationID == id }?.title ?? "New chat"
        return WebPages.Chat(
            conversationID: id, title: title, entries: entries, thread: fold, after: after,
            readOnlyReason: Self.readOnlyReason(conversation), formClientID: "form-" + UUID().uuidString.lowercased(),
            model: WebPages.modelLine(settings.model),
            now: Date())
    }

    /// The sidebar entries of `conversations`: each titled by its first message, with its last activity.
    static func sidebar(_ conversations: [ConversationState], _ snapshot: borrowing Snapshot) throws
        -> [WebPages.SidebarEntry]
    {
        var entries: [WebPages.SidebarEntry] = []
        for c in conversations {
            var title = c.conversationID
            if let first = try snapshot.record(at: c.firstSeq), case .messageReceived(let m)? = try? first.event() {
                title = Self.title(m.text, fallback: c.conversationID)
            }
            entries.append(
                WebPages.SidebarEntry(
                    conversationID: c.conversationID, channel: c.channel, title: title,
                    lastActive: try snapshot.record(at: c.lastSeq)?.timestamp.date))
        }
        return entries
    }

    /// A conversation's title: the first line of its first message, at most 60 characters.
    static func title(_ text: String, fallback: String) -> String {
        let line =
            text.split(whereSeparator: \.isNewline).first.map(String.init)?
            .trimmingCharacters(in: .whitespaces) ?? ""
        guard !line.isEmpty else { return fallback }
        return line.count > 60 ? String(line.prefix(59)) + "…" : line
    }

    // MARK: Messages

    struct MessageBody: Decodable {
        var clientID: String
        var text: String
    }

    struct MessageAnswer: Encodable {
        var seq: UInt64
        var conversationID: String
        var jobID: String?
        var duplicate: Bool
        /// The contact's status when it is not `allowed` (then no reply job starts).
        var contactStatus: String?
    }

    enum MessageRefusal: Error {
        case invalid(String)
        case readOnly(String)
    }

    static func validClientID(_ id: String) -> Bool {
        (1...128).contains(id.utf8.count)
            && id.unicodeScalars.allSatisfy {
                ($0.isASCII && (CharacterSet.alphanumerics.contains($0))) || "-_.:".unicodeScalars.contains($0)
            }
    }

    /// Ingests one owner message into a web conversation; a clientID seen before is a duplicate.
    func ingest(conversationID: String, clientID: String, text: String) async throws -> (
        HTTPResponse.Status, MessageAnswer
    ) {
        guard Self.validConversationID(conversationID) else {
            throw MessageRefusal.invalid("the conversation id is not valid")
        }
        guard Self.validClientID(clientID) else {
            throw MessageRefusal.invalid("clientID must be 1…128 characters of A-Z, a-z, 0-9, '-', '_', '.', ':'")
        }
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw MessageRefusal.invalid("text is empty")
        }
        guard text.count <= Self.maxTextLength else {
            throw MessageRefusal.invalid("text is longer than \(Self.maxTextLength) characters")
        }
        if let reason = Self.readOnlyReason(try engine.conversation(conversationID)) {
            throw MessageRefusal.readOnly(reason)
        }
        var message = InboundMessage(
            channel: "web", accountID: "default", externalID: clientID, contactID: "owner", text: text)
        message.conversationID = conversationID
        switch try await engine.ingest(message) {
        case .accepted(let seq, let conversation, let jobID, let status):
            return (
                .accepted,
                MessageAnswer(
                    seq: seq, conversationID: conversation, jobID: jobID, duplicate: false,
                    contactStatus: status == .allowed ? nil : status.rawValue)
            )
        case .duplicate(let firstSeq):
            // The first record and its reply job (enqueued in the same transaction, right after it).
            var conversation = conversationID
            var jobID: String?
            for record in try engine.log.records(from: firstSeq, limit: 2) {
                switch try record.event() {
                case .messageReceived(let m)?: conversation = m.conversationID
                case .jobEnqueued(let j)? where j.triggeringMessageSeq == firstSeq: jobID = j.jobID
                default: break
                }
            }
            return (.ok, MessageAnswer(seq: firstSeq, conversationID: conversation, jobID: jobID, duplicate: true))
        }
    }

    func postMessage(_ call: Call) async throws -> Response {
        guard let id = call.id else { return json(.notFound, ["error": "no conversation id"]) }
        let body: MessageBody
        do {
            body = try JSONDecoder().decode(MessageBody.self, from: Data(call.body.readableBytesView))
        } catch {
            return json(
                .badRequest,
                ["error": "malformed JSON: expected {\"clientID\": string, \"text\": string} (\(Self.reason(error)))"])
        }
        do {
            let (status, answer) = try await ingest(conversationID: id, clientID: body.clientID, text: body.text)
            return json(status, answer)
        } catch MessageRefusal.invalid(let why) {
            return json(.badRequest, ["error": why])
        } catch MessageRefusal.readOnly(let why) {
            return json(.conflict, ["error": why])
        }
    }

    /// The no-script composer: a form POST, then back to the conversation.
    func formSend(_ call: Call) async throws -> Response {
        guard let id = call.id else { return redirect("/") }
        do {
            _ = try await ingest(
                conversationID: id, clientID: call.form["clientID"] ?? "", text: call.form["text"] ?? "")
            return redirect("/c/\(HTML.pathSegment(id))")
        } catch MessageRefusal.invalid(let why), MessageRefusal.readOnly(let why) {
            return htmlResponse(
                .badRequest,
                "<!doctype html><title>Not sent</title><p>Not sent: \(HTML.escape(why)).</p>"
                    + "<p><a href=\"/c/\(HTML.pathSegment(id))\">Back</a></p>")
        }
    }

    /// A decoding error's gist, without the payload.
    static func reason(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): return "missing \(key.stringValue)"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return "wrong type at \(context.codingPath.map(\.stringValue).joined(separator: "."))"
        case DecodingError.dataCorrupted: return "not JSON"
        default: return "unreadable"
        }
    }

    // MARK: Conversations

    struct ConversationSummary: Encodable {
        var conversationID: String
        var channel: String
        var title: String
        var lastSeq: UInt64
        var messageCount: Int
    }

    func conversationList() async throws -> Response {
        let summaries = try await offload { () -> [ConversationSummary] in
            let recent = try self.engine.conversations(limit: 100)
            let entries = try self.engine.log.withSnapshot { try Self.sidebar(recent, $0) }
            return zip(recent, entries).map { c, entry in
                ConversationSummary(
                    conversationID: c.conversationID, channel: c.channel, title: entry.title, lastSeq: c.lastSeq,
                    messageCount: c.messageCount)
            }
        }
        return json(.ok, summaries)
    }

    /// `POST /api/conversations`: a new web conversation id. Nothing is written: the conversation exists once its
    /// first message is posted (the page at `/` makes its id the same way).
    func newConversation() -> Response {
        json(.created, ["conversationID": Self.newConversationID()])
    }

    func events(_ call: Call) throws -> Response {
        guard let id = call.id, Self.validConversationID(id) else {
            return json(.notFound, ["error": "no such conversation id"])
        }
        let after: UInt64?
        if let header = call.request.headers[.lastEventID], !header.isEmpty {
            guard let seq = UInt64(header.trimmingCharacters(in: .whitespaces)) else {
                return json(.badRequest, ["error": "Last-Event-ID must be a seq"])
            }
            after = seq
        } else if let query = call.request.uri.queryParameters.get("after"), !query.isEmpty {
            guard let seq = UInt64(query) else { return json(.badRequest, ["error": "after must be a seq"]) }
            after = seq
        } else {
            after = nil
        }
        let start = try ConversationEvents.startSeq(engine: engine, conversationID: id, after: after)
        return ConversationEvents.response(
            engine: engine, conversationID: id, start: start, heartbeat: heartbeat, shutdown: shutdown, logger: logger)
    }

    // MARK: Approvals

    struct ApprovalBody: Decodable {
        var approve: Bool
    }

    struct ApprovalAnswerBody: Encodable {
        var callID: String
        /// `approved`, `rejected`, `expired` or `awaiting` (the card's states), when known.
        var status: String?
        var error: String?
    }

    static func cardStatus(_ status: ToolCallStatus) -> String? {
        switch status {
        case .awaitingApproval: "awaiting"
        case .approved: "approved"
        case .rejected: "rejected"
        case .expired: "expired"
        case .called, .done, .failed: nil
        }
    }

    func answerApproval(_ call: Call) async throws -> Response {
        guard let callID = call.id, !callID.isEmpty else { return json(.notFound, ["error": "no call id"]) }
        let body: ApprovalBody
        do {
            body = try JSONDecoder().decode(ApprovalBody.self, from: Data(call.body.readableBytesView))
        } catch {
            return json(
                .badRequest, ["error": "malformed JSON: expected {\"approve\": true|false} (\(Self.reason(error)))"])
        }
        switch try await engine.answerApproval(callID: callID, approve: body.approve, by: "web:owner") {
        case .recorded(let status):
            logger.info(
                "[web] Tool call \(body.approve ? "approved" : "rejected") by the owner",
                metadata: ["tool.call": "\(callID)"])
            return json(.ok, ApprovalAnswerBody(callID: callID, status: Self.cardStatus(status), error: nil))
        case .refused(.unknownCall):
            return json(.notFound, ApprovalAnswerBody(callID: callID, status: nil, error: "no such tool call"))
        case .refused(.notAwaiting(let status)):
            return json(
                .conflict,
                ApprovalAnswerBody(
                    callID: callID, status: Self.cardStatus(status),
                    error: "this call is not awaiting approval (it is \(status.rawValue))"))
        case .refused(.expired):
            return json(
                .conflict, ApprovalAnswerBody(callID: callID, status: "expired", error: "the approval expired"))
        }
    }

    // MARK: Status and settings

    func statusPage(_ call: Call) async throws -> Response {
        let status = try await WebStatus.read(engine: engine, model: modelHealth)
        return htmlResponse(.ok, WebPages.status(status, assets: assets, csrf: call.session.csrf))
    }

    static let settingsMessages = [
        "connected": "Todoist is connected.", "disconnected": "Todoist is disconnected.",
        "denied": "Todoist did not grant access.", "failed": "Connecting Todoist failed; see the agent's log.",
        "busy": "Todoist settings are being changed by another process; try again.",
    ]

    func settingsPage(_ call: Call, status: HTTPResponse.Status = .ok, message: String? = nil) async throws -> Response
    {
        let todoistState: WebPages.SettingsView.Todoist
        if settings.todoist == nil {
            todoistState = .notConfigured(missing: settings.todoistMissing)
        } else {
            todoistState = try todoist.isConnected() ? .connected : .notConnected
        }
        let flash = message ?? call.request.uri.queryParameters.get("todoist").flatMap { Self.settingsMessages[$0] }
        let view = WebPages.SettingsView(
            todoist: todoistState, todoistOverride: settings.todoistTokenOverride, message: flash,
            model: settings.model)
        return htmlResponse(status, WebPages.settings(view, assets: assets, csrf: call.session.csrf))
    }

    func todoistConnect(_ call: Call) -> Response {
        guard let oauth = settings.todoist else { return redirect("/settings") }
        let state = auth.oauthState(for: call.session, purpose: TodoistConnect.statePurpose)
        return redirect(todoist.authorizeURL(oauth: oauth, state: state))
    }

    func todoistDisconnect(_ call: Call) async throws -> Response {
        do {
            try await todoist.save(nil)
        } catch let error as WebError {
            logger.warning("[web] Todoist disconnect failed", metadata: ["error": "\(error.message)"])
            return redirect("/settings?todoist=busy")
        }
        return redirect("/settings?todoist=disconnected")
    }

    /// The OAuth callback. The browser arrives from Todoist's site, so a `SameSite=Strict` cookie is withheld on
    /// that first request: it is answered with a page that reloads the same URL from this site (`hop=1`), which
    /// carries the cookie. With a session, the `state` is checked in constant time against the session, the
    /// `code` exchanged and the token stored.
    func todoistCallback(_ request: Request, _ context: WebRequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        guard let session = currentSession(request) else {
            if query.get("hop") == "1" { return redirect("/login?next=/settings") }
            let separator = request.uri.query == nil ? "?" : "&"
            return htmlResponse(
                .ok, WebPages.sameSiteHop(url: request.uri.string + separator + "hop=1", assets: assets))
        }
        let call = Call(request: request, context: context, session: session)
        return try await guarded(.page) {
            guard let oauth = settings.todoist else { return redirect("/settings") }
            if query.get("error") != nil { return redirect("/settings?todoist=denied") }
            guard let state = query.get("state"),
                auth.checkOAuthState(state, for: session, purpose: TodoistConnect.statePurpose)
            else {
                logger.warning("[web] Todoist callback refused: bad or expired state")
                return try await settingsPage(
                    call, status: .badRequest,
                    message: "The Todoist answer was refused (bad or expired state); connect again.")
            }
            guard let code = query.get("code"), !code.isEmpty else {
                return try await settingsPage(
                    call, status: .badRequest, message: "Todoist sent no code; connect again.")
            }
            do {
                let token = try await todoist.exchange(oauth: oauth, code: code)
                try await todoist.save(token)
            } catch let error as WebError {
                logger.warning("[web] Todoist connect failed", metadata: ["error": "\(error.message)"])
                return try await settingsPage(
                    call, status: .badGateway, message: "Connecting Todoist failed: \(error.message).")
            }
            return redirect("/settings?todoist=connected")
        }
    }
}

/// Security headers on every web response: no sniffing, no referrer to other sites (OAuth codes stay out of it), and on pages
/// a content security policy allowing only this origin's script and style (model output can never run), no
/// framing.
struct SecurityHeaders<Context: RequestContext>: RouterMiddleware {
    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        var response = try await next(request, context)
        response.headers[.xContentTypeOptions] = "nosniff"
        // Same-origin only: no referrer leaves for another site (an OAuth code in a URL stays here), while this
        // site's own form POSTs keep their `Origin` (under `no-referrer` browsers send `Origin: null`).
        response.headers[.referrerPolicy] = "same-origin"
        if response.headers[.contentType]?.hasPrefix("text/html") ?? false {
            response.headers[.contentSecurityPolicy] =
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
                + "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
            response.headers[.xFrameOptions] = "DENY"
        }
        return response
    }
}
