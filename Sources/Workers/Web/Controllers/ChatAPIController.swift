import EventLog
import Foundation
import Hummingbird
import Logging
import Projections

/// The chat's JSON API and event stream (the owner's; errors are JSON `{"error"}`):
/// `GET /api/conversations` (the sidebar), `POST /api/conversations` (a new id),
/// `GET /api/conversations/<id>/events` (server-sent events, resumable, see ``ConversationEvents``) and
/// `POST /api/conversations/<id>/messages` (CSRF; see ``MessageIntake``).
struct ChatAPIController: Sendable {
    let engine: Switchboard
    let views: ChatViews
    let intake: MessageIntake
    let gate: WebGate
    /// The comment interval of event streams.
    let heartbeat: Duration
    /// Fired at shutdown: open event streams end.
    let shutdown: WebShutdown
    let logger: Logger

    func addRoutes(to group: RouterGroup<WebRequestContext>) {
        gate.owner(.api, on: group)
            .get("api/conversations", use: list)
            .post("api/conversations", use: create)
            .get("api/conversations/:conversationID/events", use: events)
            .post("api/conversations/:conversationID/messages", use: postMessage)
    }

    /// `GET /api/conversations`: the sidebar as JSON, newest first.
    @Sendable func list(_ request: Request, context: WebRequestContext) async throws -> Response {
        let views = views
        return WebResponse.json(.ok, try await offload { try views.summaries() })
    }

    /// `POST /api/conversations`: a new web conversation id. Nothing is written: the conversation exists once its
    /// first message is posted (the page at `/` makes its id the same way).
    @Sendable func create(_ request: Request, context: WebRequestContext) async throws -> Response {
        WebResponse.json(.created, ["conversationID": ChatViews.newConversationID()])
    }

    /// `GET /api/conversations/<id>/events`: from the conversation's first record, or after `Last-Event-ID`
    /// (which wins) or `?after=`.
    @Sendable func events(_ request: Request, context: WebRequestContext) async throws -> Response {
        guard let id = context.decodedParameter("conversationID"), ChatViews.validConversationID(id) else {
            return WebResponse.json(.notFound, ["error": "no such conversation id"])
        }
        let after: UInt64?
        if let header = request.headers[.lastEventID], !header.isEmpty {
            guard let seq = UInt64(header.trimmingCharacters(in: .whitespaces)) else {
                return WebResponse.json(.badRequest, ["error": "Last-Event-ID must be a seq"])
            }
            after = seq
        } else if let query = request.uri.queryParameters.get("after"), !query.isEmpty {
            guard let seq = UInt64(query) else {
                return WebResponse.json(.badRequest, ["error": "after must be a seq"])
            }
            after = seq
        } else {
            after = nil
        }
        let start = try ConversationEvents.startSeq(engine: engine, conversationID: id, after: after)
        let sidebar = request.uri.queryParameters.get("sidebar") == "1" ? views : nil
        return ConversationEvents.response(
            engine: engine, conversationID: id, start: start, heartbeat: heartbeat, shutdown: shutdown,
            sidebar: sidebar, logger: logger)
    }

    struct MessageBody: Decodable {
        var clientID: String
        var text: String
        /// The user message this one follows (`0`: none); omitted: the conversation's newest.
        var parentSeq: UInt64?
        /// The reply version to `parentSeq` shown when it was written.
        var afterJobID: String?
    }

    /// `POST /api/conversations/<id>/messages`: JSON `{"clientID", "text"}` → 202 (new) or 200 (a duplicate).
    @Sendable func postMessage(_ request: Request, context: WebRequestContext) async throws -> Response {
        guard let id = context.decodedParameter("conversationID") else {
            return WebResponse.json(.notFound, ["error": "no conversation id"])
        }
        var request = request
        let bytes = try await request.collectBody(upTo: CSRFMiddleware.maxBody)
        let body: MessageBody
        do {
            body = try JSONDecoder().decode(MessageBody.self, from: Data(bytes.readableBytesView))
        } catch {
            return WebResponse.json(
                .badRequest,
                [
                    "error":
                        "malformed JSON: expected {\"clientID\": string, \"text\": string} (\(WebResponse.reason(error)))"
                ])
        }
        do {
            let (status, answer) = try await intake.ingest(
                conversationID: id, clientID: body.clientID, text: body.text, parentSeq: body.parentSeq,
                afterJobID: body.afterJobID)
            return WebResponse.json(status, answer)
        } catch let refusal as MessageIntake.Refusal {
            return WebResponse.json(refusal.code == .readOnly ? .conflict : .badRequest, ["error": refusal.message])
        }
    }
}
