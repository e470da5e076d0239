import Hummingbird

/// The chat as server-rendered pages (the owner's): `GET /` (a new conversation), `GET /c/<conversationID>` and
/// the composer without script, `POST /c/<conversationID>/send` (CSRF). `chat.js` continues a page from the event
/// stream (``ChatAPIController``).
struct ChatPagesController: Sendable {
    let views: ChatViews
    let intake: MessageIntake
    let assets: WebAssets
    let gate: WebGate

    func addRoutes(to group: RouterGroup<WebRequestContext>) {
        gate.owner(.page, on: group)
            .get("/", use: newChat)
            .get("c/:conversationID", use: conversation)
            .post("c/:conversationID/send", use: formSend)
    }

    /// `GET /`: the chat with a new conversation id (the conversation exists once its first message is posted).
    @Sendable func newChat(_ request: Request, context: WebRequestContext) async throws -> Response {
        try await page(ChatViews.newConversationID(), context: context)
    }

    /// `GET /c/<conversationID>`: the chat on one conversation, of any channel.
    @Sendable func conversation(_ request: Request, context: WebRequestContext) async throws -> Response {
        try await page(context.decodedParameter("conversationID") ?? ChatViews.newConversationID(), context: context)
    }

    func page(_ id: String, context: WebRequestContext) async throws -> Response {
        let session = try context.ownerSession()
        guard ChatViews.validConversationID(id) else {
            return WebResponse.html(.notFound, "<!doctype html><title>Not found</title><p>No such conversation.</p>")
        }
        let views = views
        let chat = try await offload { try views.chat(id) }
        return WebResponse.html(.ok, WebPages.chat(chat, assets: assets, csrf: session.csrf))
    }

    /// `POST /c/<conversationID>/send`: the no-script composer, form `csrf`, `clientID`, `text`; then back to the
    /// conversation (a refused message: 400 and a page saying why).
    @Sendable func formSend(_ request: Request, context: WebRequestContext) async throws -> Response {
        guard let id = context.decodedParameter("conversationID") else { return WebResponse.redirect("/") }
        var request = request
        let form = WebForm.fields(of: request, body: try await request.collectBody(upTo: CSRFMiddleware.maxBody))
        do {
            _ = try await intake.ingest(conversationID: id, clientID: form["clientID"] ?? "", text: form["text"] ?? "")
            return WebResponse.redirect("/c/\(HTML.pathSegment(id))")
        } catch let refusal as MessageIntake.Refusal {
            return WebResponse.html(
                .badRequest,
                "<!doctype html><title>Not sent</title><p>Not sent: \(HTML.escape(refusal.message)).</p>"
                    + "<p><a href=\"/c/\(HTML.pathSegment(id))\">Back</a></p>")
        }
    }
}
