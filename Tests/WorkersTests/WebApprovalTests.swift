import EventLog
import Foundation
import Projections
import SwitchboardEvents
import Testing
import Workers

/// Tool approvals from the web chat: a real call awaiting approval (made through the engine), answered over HTTP.
@Suite("Web approvals", .timeLimit(.minutes(2)))
struct WebApprovalTests {
    /// A running job of `conversation` that asked approval for `callID` (risk high, expiring in 5 minutes).
    static func awaitingCall(_ h: WebHarness, _ login: WebLogin, conversation: String, callID: String) async throws
        -> String
    {
        let posted = try await WebChatTests.post(
            h, login, conversation: conversation, clientID: "m-\(callID)", text: "add milk to my list")
        let jobID = try #require(posted.json["jobID"] as? String)
        let claim = try #require(try await h.engine.claimJob())
        #expect(claim.job.jobID == jobID)
        let expiresAt = try h.engine.logNow().advanced(by: .seconds(300))
        let result = try await h.engine.recordTurn(
            jobID: jobID, token: claim.token,
            [
                .toolCall(
                    ToolCall(
                        callID: callID, jobID: jobID, jobToken: claim.token, conversationID: conversation,
                        toolName: "todoist_add_task", inputJSON: #"{"content":"milk <b>now</b>"}"#, risk: "high")),
                .toolApproval(
                    ToolApproval(
                        callID: callID, jobID: jobID, conversationID: conversation, decision: "requested",
                        expiresAt: expiresAt)),
            ])
        guard case .accepted = result else { throw TestTimeout(what: "the turn to be accepted, got \(result)") }
        #expect(try h.engine.toolCall(callID)?.status == .awaitingApproval)
        return jobID
    }

    @Test func anAwaitingCallIsApprovedOnceAndASecondAnswerIs409() async throws {
        try await WebHarness.with { h in
            let login = try await h.login()
            _ = try await Self.awaitingCall(h, login, conversation: "web-ap", callID: "call-1")

            // The page shows the card, escaped, with its buttons; the reply says it waits.
            let page = try await h.get("/c/web-ap", login)
            #expect(page.body.contains(#"<div class="approval" data-call-id="call-1" data-status="awaiting""#))
            #expect(page.body.contains(#"<button type="button" data-action="approve">Approve</button>"#))
            #expect(page.body.contains(#"<button type="button" data-action="reject">Reject</button>"#))
            #expect(page.body.contains("high risk"))
            #expect(page.body.contains("milk &lt;b&gt;now&lt;/b&gt;"))
            #expect(page.body.contains(#"<span class="status">waiting for your approval</span>"#))
            // The event stream carries the call and the request.
            let stream = try await h.events("web-ap", login) { events, _ in
                events.contains { $0.event == "tool.approval" }
            }
            #expect(stream.events.map(\.event).suffix(3) == ["job.claimed", "tool.call", "tool.approval"])

            let missingCSRF = try await h.postJSON("/api/approvals/call-1", login, #"{"approve": true}"#, csrf: false)
            #expect(missingCSRF.status == 403)
            let malformed = try await h.postJSON("/api/approvals/call-1", login, #"{"approve": "yes"}"#)
            #expect(malformed.status == 400)
            #expect(try h.engine.toolCall("call-1")?.status == .awaitingApproval)

            let approved = try await h.postJSON("/api/approvals/call-1", login, #"{"approve": true}"#)
            #expect(approved.status == 200)
            #expect(approved.json["status"] as? String == "approved")
            let call = try #require(try h.engine.toolCall("call-1"))
            #expect(call.status == .approved)
            #expect(call.decidedBy == "web:owner")

            let again = try await h.postJSON("/api/approvals/call-1", login, #"{"approve": false}"#)
            #expect(again.status == 409)
            #expect(again.json["status"] as? String == "approved")
            #expect((again.json["error"] as? String)?.contains("not awaiting") == true)
            #expect(try h.engine.toolCall("call-1")?.status == .approved)

            let unknown = try await h.postJSON("/api/approvals/call-nope", login, #"{"approve": true}"#)
            #expect(unknown.status == 404)

            let decided = try await h.get("/c/web-ap", login)
            #expect(decided.body.contains(#"data-call-id="call-1" data-status="approved""#))
            // Issue 24, bug 4: who decided, as a person reads it; the card above the reply it controls.
            #expect(decided.body.contains("Approved by you"))
            #expect(!decided.body.contains("web:owner"))
            let card = try #require(decided.body.range(of: #"data-call-id="call-1""#))
            let reply = try #require(decided.body.range(of: #"data-message-id="reply:"#))
            #expect(card.lowerBound < reply.lowerBound, "the approval card comes before the reply it controls")
        }
    }

    @Test func aRejectionIsRecordedForThatCallOnly() async throws {
        try await WebHarness.with { h in
            let login = try await h.login()
            _ = try await Self.awaitingCall(h, login, conversation: "web-rj", callID: "call-r")
            let rejected = try await h.postJSON("/api/approvals/call-r", login, #"{"approve": false}"#)
            #expect(rejected.status == 200)
            #expect(rejected.json["status"] as? String == "rejected")
            #expect(try h.engine.toolCall("call-r")?.status == .rejected)
            let approvals = try h.log.events().compactMap { entry -> ToolApproval? in
                if case .toolApproval(let a) = entry.event { return a }
                return nil
            }
            #expect(approvals.map(\.decision) == ["requested", "rejected"])
            #expect(approvals.last?.decidedBy == "web:owner")
        }
    }
}
