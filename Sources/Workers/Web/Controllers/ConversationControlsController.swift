import EventLog
import Foundation
import Hummingbird
import Logging
import Projections
import SwitchboardEvents

/// The conversation controls (the owner's; CSRF on every POST; errors are JSON `{"error"}`), each one event
/// decided in the write transaction (``ConversationDecider``):
/// - `POST /api/conversations/<id>/stop` `{"jobID"}` → 200 `{"jobID", "outcome": "stopped"|"ended", "text"}`
/// - `POST /api/conversations/<id>/regenerate` `{"triggerSeq", "requestID"}` → 202 `{"jobID", "duplicate"}`
/// - `POST /api/conversations/<id>/rename` `{"title"}` → 200 `{"conversationID", "title"}`
/// - `POST /api/conversations/<id>/delete` → 200 `{"conversationID", "throughSeq"}`
/// - `GET /api/search?q=` → `[{conversationID, channel, title, field, snippet, seq}]`
struct ConversationControlsController: Sendable {
    let engine: Switchboard
    let gate: WebGate
    let logger: Logger

    /// Who the web's controls are recorded as.
    static let owner = "web:owner"

    func addRoutes(to group: RouterGroup<WebRequestContext>) {
        gate.owner(.api, on: group)
            .get("api/search", use: search)
            .post("api/conversations/:conversationID/stop", use: stop)
            .post("api/conversations/:conversationID/regenerate", use: regenerate)
            .post("api/conversations/:conversationID/rename", use: rename)
            .post("api/conversations/:conversationID/delete", use: delete)
    }

    struct StopBody: Decodable { var jobID: String }
    struct RegenerateBody: Decodable {
        var triggerSeq: UInt64
        var requestID: String
    }
    struct RenameBody: Decodable { var title: String }

    /// The refusal as an HTTP answer.
    static func refused(_ refusal: ControlRefusal) -> Response {
        switch refusal {
        case .unknownConversation: WebResponse.json(.notFound, ["error": "no such conversation"])
        case .unknownTarget: WebResponse.json(.notFound, ["error": "no such reply or message in this conversation"])
        case .readOnly:
            WebResponse.json(.conflict, ["error": "this conversation is another channel's: it is read-only here"])
        case .deleted: WebResponse.json(.conflict, ["error": "this conversation was deleted"])
        case .busy:
            WebResponse.json(.conflict, ["error": "a reply to this message is still being written: stop it first"])
        case .invalidTitle:
            WebResponse.json(
                .badRequest, ["error": "the title must be 1–\(ConversationDecider.maxTitleLength) characters"])
        }
    }

    /// The JSON body as `T`, or the 400 that says what was expected.
    enum Parsed<T> {
        case success(T)
        case failure(Response)
    }

    static func body<T: Decodable>(_ type: T.Type, _ request: Request, expected: String) async throws -> Parsed<T> {
        var request = request
        let bytes = try await request.collectBody(upTo: CSRFMiddleware.maxBody)
        do {
            return .success(try JSONDecoder().decode(T.self, from: Data(bytes.readableBytesView)))
        } catch {
            return .failure(
                WebResponse.json(
                    .badRequest, ["error": "malformed JSON: expected \(expected) (\(WebResponse.reason(error)))"]))
        }
    }

    @Sendable func stop(_ request: Request, context: WebRequestContext) async throws -> Response {
        guard let id = context.decodedParameter("conversationID") else { return Self.refused(.unknownConversation) }
        let body: StopBody
        switch try await Self.body(StopBody.self, request, expected: "{\"jobID\": string}") {
        case .success(let value): body = value
        case .failure(let response): return response
        }
        switch try await engine.stopJob(conversationID: id, jobID: body.jobID, by: Self.owner) {
        case .success(.stopped(let text)):
            logger.info(
                "[web] Reply stopped by the owner", metadata: ["conversation.id": "\(id)", "job.id": "\(body.jobID)"])
            return WebResponse.json(.ok, ["jobID": body.jobID, "outcome": "stopped", "text": text])
        case .success(.alreadyEnded(let status)):
            return WebResponse.json(.ok, ["jobID": body.jobID, "outcome": "ended", "status": status.rawValue])
        case .failure(let refusal):
            return Self.refused(refusal)
        }
    }

    @Sendable func regenerate(_ request: Request, context: WebRequestContext) async throws -> Response {
        guard let id = context.decodedParameter("conversationID") else { return Self.refused(.unknownConversation) }
        let body: RegenerateBody
        switch try await Self.body(
            RegenerateBody.self, request, expected: "{\"triggerSeq\": number, \"requestID\": string}")
        {
        case .success(let value): body = value
        case .failure(let response): return response
        }
        guard MessageIntake.validClientID(body.requestID) else {
            return WebResponse.json(.badRequest, ["error": "requestID must be 1…128 characters of A-Z a-z 0-9 - _ . :"])
        }
        switch try await engine.regenerate(conversationID: id, triggerSeq: body.triggerSeq, requestID: body.requestID)
        {
        case .success(let enqueued):
            return WebResponse.json(
                enqueued.duplicate ? .ok : .accepted,
                RegenerateAnswer(jobID: enqueued.jobID, duplicate: enqueued.duplicate))
        case .failure(let refusal):
            return Self.refused(refusal)
        }
    }

    struct RegenerateAnswer: Encodable {
        var jobID: String
        var duplicate: Bool
    }

    @Sendable func rename(_ request: Request, context: WebRequestContext) async throws -> Response {
        guard let id = context.decodedParameter("conversationID") else { return Self.refused(.unknownConversation) }
        let body: RenameBody
        switch try await Self.body(RenameBody.self, request, expected: "{\"title\": string}") {
        case .success(let value): body = value
        case .failure(let response): return response
        }
        switch try await engine.renameConversation(id, title: body.title, by: Self.owner) {
        case .success(let title): return WebResponse.json(.ok, ["conversationID": id, "title": title])
        case .failure(let refusal): return Self.refused(refusal)
        }
    }

    struct DeleteAnswer: Encodable {
        var conversationID: String
        var throughSeq: UInt64
    }

    @Sendable func delete(_ request: Request, context: WebRequestContext) async throws -> Response {
        guard let id = context.decodedParameter("conversationID") else { return Self.refused(.unknownConversation) }
        switch try await engine.deleteConversation(id, by: Self.owner) {
        case .success(.deleted(let through, let cancelled)):
            logger.info(
                "[web] Conversation deleted by the owner",
                metadata: ["conversation.id": "\(id)", "log.seq": "\(through)", "jobs.cancelled": "\(cancelled)"])
            return WebResponse.json(.ok, DeleteAnswer(conversationID: id, throughSeq: through))
        case .success(.alreadyDeleted(let deletion)):
            return WebResponse.json(.ok, DeleteAnswer(conversationID: id, throughSeq: deletion.throughSeq))
        case .failure(let refusal):
            return Self.refused(refusal)
        }
    }

    @Sendable func search(_ request: Request, context: WebRequestContext) async throws -> Response {
        let query = request.uri.queryParameters.get("q") ?? ""
        guard query.count <= ConversationSearch.maxQueryLength else {
            return WebResponse.json(
                .badRequest, ["error": "the query is longer than \(ConversationSearch.maxQueryLength) characters"])
        }
        let search = ConversationSearch(engine: engine)
        return WebResponse.json(.ok, try await offload { try search.search(query) })
    }
}
