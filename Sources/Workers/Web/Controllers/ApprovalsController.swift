import Foundation
import Hummingbird
import Logging
import Projections

/// Tool-call approvals from the chat's cards (the owner's, CSRF): `POST /api/approvals/<callID>` with JSON
/// `{"approve": true|false}` → 200 `{"callID", "status"}`; 409 when the call no longer awaits an answer, 404 for an
/// unknown call.
struct ApprovalsController: Sendable {
    let engine: Switchboard
    let gate: WebGate
    let logger: Logger

    func addRoutes(to group: RouterGroup<WebRequestContext>) {
        gate.owner(.api, on: group).post("api/approvals/:callID", use: answer)
    }

    struct ApprovalBody: Decodable {
        var approve: Bool
    }

    struct AnswerBody: Encodable {
        var callID: String
        /// `approved`, `rejected`, `expired` or `awaiting` (the card's states), when known.
        var status: String?
        var error: String?
    }

    /// The card's state of a tool call, when it has one.
    static func cardStatus(_ status: ToolCallStatus) -> String? {
        switch status {
        case .awaitingApproval: "awaiting"
        case .approved: "approved"
        case .rejected: "rejected"
        case .expired: "expired"
        case .called, .done, .failed: nil
        }
    }

    @Sendable func answer(_ request: Request, context: WebRequestContext) async throws -> Response {
        guard let callID = context.decodedParameter("callID"), !callID.isEmpty else {
            return WebResponse.json(.notFound, ["error": "no call id"])
        }
        var request = request
        let bytes = try await request.collectBody(upTo: CSRFMiddleware.maxBody)
        let body: ApprovalBody
        do {
            body = try JSONDecoder().decode(ApprovalBody.self, from: Data(bytes.readableBytesView))
        } catch {
            return WebResponse.json(
                .badRequest,
                ["error": "malformed JSON: expected {\"approve\": true|false} (\(WebResponse.reason(error)))"])
        }
        switch try await engine.answerApproval(callID: callID, approve: body.approve, by: "web:owner") {
        case .recorded(let status):
            logger.info(
                "[web] Tool call \(body.approve ? "approved" : "rejected") by the owner",
                metadata: ["tool.call": "\(callID)"])
            return WebResponse.json(.ok, AnswerBody(callID: callID, status: Self.cardStatus(status), error: nil))
        case .refused(.unknownCall):
            return WebResponse.json(.notFound, AnswerBody(callID: callID, status: nil, error: "no such tool call"))
        case .refused(.notAwaiting(let status)):
            return WebResponse.json(
                .conflict,
                AnswerBody(
                    callID: callID, status: Self.cardStatus(status),
                    error: "this call is not awaiting approval (it is \(status.rawValue))"))
        case .refused(.expired):
            return WebResponse.json(
                .conflict, AnswerBody(callID: callID, status: "expired", error: "the approval expired"))
        }
    }
}
