import EventLog
import Foundation
import Projections
import SwitchboardEvents
import Testing
import Workers

/// The conversation controls over real HTTP on a real log (no core runs: jobs stay where the test puts them):
/// what each answers for every case, and what a deletion leaves readable.
@Suite("Web chat controls", .timeLimit(.minutes(3)))
struct WebControlsTests {
    private func post(_ h: WebHarness, _ login: WebLogin, _ conversation: String, _ id: String, _ text: String)
        async throws -> (seq: UInt64, jobID: String)
    {
        let answer = try await WebChatTests.post(h, login, conversation: conversation, clientID: id, text: text)
        let seq = try #require((answer.json["seq"] as? NSNumber)?.uint64Value)
        return (seq, try #require(answer.json["jobID"] as? String))
    }

    @Test func stopAndRegenerateAnswerEveryCase() async throws {
        try await WebHarness.with { h in
            let login = try await h.login()
            let (seq, jobID) = try await post(h, login, "web-s", "s-1", "Hello")
            // Another conversation's job, a malformed body, an unknown conversation.
            _ = try await post(h, login, "web-t", "t-1", "Other")
            #expect(
                try await h.postJSON("/api/conversations/web-t/stop", login, #"{"jobID":"\#(jobID)"}"#).status == 404)
            #expect(try await h.postJSON("/api/conversations/web-s/stop", login, #"{"job":1}"#).status == 400)
            #expect(try await h.postJSON("/api/conversations/web-zz/stop", login, #"{"jobID":"x"}"#).status == 404)
            // Without the CSRF token: refused before anything is decided.
            #expect(
                try await h.postJSON("/api/conversations/web-s/stop", login, #"{"jobID":"\#(jobID)"}"#, csrf: false)
                    .status == 403)
            // Regenerate while the reply is pending: busy.
            let busy = try await h.postJSON(
                "/api/conversations/web-s/regenerate", login, #"{"triggerSeq":\#(seq),"requestID":"r-1"}"#)
            #expect(busy.status == 409, "\(busy.body)")
            // Stop: the queued job ends with no text; stopping again says it had ended.
            let stopped = try await h.postJSON("/api/conversations/web-s/stop", login, #"{"jobID":"\#(jobID)"}"#)
            #expect(stopped.status == 200 && stopped.json["outcome"] as? String == "stopped", "\(stopped.body)")
            let again = try await h.postJSON("/api/conversations/web-s/stop", login, #"{"jobID":"\#(jobID)"}"#)
            #expect(again.json["outcome"] as? String == "ended" && again.json["status"] as? String == "cancelled")
            // Now Regenerate takes; the same request id answers the same job.
            let regenerated = try await h.postJSON(
                "/api/conversations/web-s/regenerate", login, #"{"triggerSeq":\#(seq),"requestID":"r-2"}"#)
            #expect(regenerated.status == 202, "\(regenerated.body)")
            let repeated = try await h.postJSON(
                "/api/conversations/web-s/regenerate", login, #"{"triggerSeq":\#(seq),"requestID":"r-2"}"#)
            #expect(repeated.status == 200 && repeated.json["jobID"] as? String == regenerated.json["jobID"] as? String)
            #expect(
                try await h.postJSON(
                    "/api/conversations/web-s/regenerate", login, #"{"triggerSeq":99999,"requestID":"r-3"}"#
                ).status == 404)
            // A message placed after a message of another conversation is refused, nothing written.
            let before = try h.engine.log.lastSeq()
            let misplaced = try await h.postJSON(
                "/api/conversations/web-t/messages", login, #"{"clientID":"t-2","text":"x","parentSeq":\#(seq)}"#)
            #expect(misplaced.status == 400, "\(misplaced.body)")
            #expect(try h.engine.log.lastSeq() == before)
        }
    }

    @Test func renameSearchAndTheSidebarFrames() async throws {
        try await WebHarness.with { h in
            let login = try await h.login()
            _ = try await post(h, login, "web-r", "r-1", "Packing list for the mountains")
            #expect(try await h.postJSON("/api/conversations/web-r/rename", login, #"{"title":"  "}"#).status == 400)
            let renamed = try await h.postJSON("/api/conversations/web-r/rename", login, #"{"title":"Alps trip"}"#)
            #expect(renamed.status == 200 && renamed.json["title"] as? String == "Alps trip")
            #expect(try await h.get("/c/web-r", login).body.contains("<h1>Alps trip</h1>"))
            let list = try await h.get("/api/conversations", login)
            #expect(list.body.contains(#""title":"Alps trip""#))
            // Search: title, and text whatever its case and accents.
            _ = try await post(h, login, "web-q", "q-1", "Dessert ideas")
            _ = try await post(h, login, "web-q", "q-2", "Où est la crème brûlée ?")
            let byTitle = try await h.get("/api/search?q=alps", login)
            #expect(byTitle.body.contains(#""field":"title""#) && byTitle.body.contains("web-r"))
            let byText = try await h.get("/api/search?q=CREME%20BRULEE", login)
            #expect(byText.body.contains(#""field":"text""#) && byText.body.contains("web-q"), "\(byText.body)")
            #expect(try await h.get("/api/search?q=" + String(repeating: "x", count: 201), login).status == 400)
            // The page's stream with ?sidebar=1 also carries the other conversations' activity (as they happen, and
            // replayed from where the stream starts).
            _ = try await post(h, login, "web-z", "z-1", "Elsewhere")
            let stream = try await h.events("web-r", login, query: "?sidebar=1") { events, _ in
                events.contains { $0.event == "conversation" && $0.data.contains("web-z") }
            }
            let plain = try await h.events("web-r", login) { events, _ in events.count >= 2 }
            #expect(!plain.events.contains { $0.event == "conversation" })
            let frame = try #require(stream.events.last { $0.event == "conversation" })
            #expect(frame.data.contains(#""conversationID":"web-z""#) && frame.data.contains(#""title":"Elsewhere""#))
        }
    }

    @Test func aDeletedConversationIsUnreadableEverywhereButItsDeletion() async throws {
        try await WebHarness.with { h in
            let login = try await h.login()
            let (_, jobID) = try await post(h, login, "web-d", "d-1", "My secret plan")
            _ = try await WebChatTests.delta(h, "web-d", jobID, token: 0, 0, "noted")
            let first = try await h.events("web-d", login) { events, _ in events.count >= 3 }
            let seen = try #require(first.events.last?.id)
            let deleted = try await h.postJSON("/api/conversations/web-d/delete", login, "{}")
            #expect(deleted.status == 200, "\(deleted.body)")
            let through = try #require((deleted.json["throughSeq"] as? NSNumber)?.uint64Value)
            // A tab that saw records before gets the deletion, and nothing it hides.
            let resumed = try await h.events("web-d", login, headers: [("Last-Event-ID", "\(seen)")]) { events, _ in
                !events.isEmpty
            }
            #expect(resumed.events.map(\.event) == ["conversation.deleted"])
            #expect(resumed.events.first?.id == through)
            let fresh = try await h.events("web-d", login) { _, comments in comments >= 1 }
            #expect(fresh.events.isEmpty)
            // The page, the list, search: only the deletion.
            let page = try await h.get("/c/web-d", login)
            #expect(page.body.contains("This conversation was deleted") && page.body.contains("by you"))
            #expect(!page.body.contains("secret"))
            #expect(!(try await h.get("/api/conversations", login).body.contains("web-d")))
            #expect(try await h.get("/api/search?q=secret", login).body == "[]")
            // It takes no more messages; a second delete changes nothing.
            let more = try await WebChatTests.post(h, login, conversation: "web-d", clientID: "d-2", text: "again")
            #expect(more.status == 409)
            #expect(try await h.postJSON("/api/conversations/web-d/delete", login, "{}").status == 200)
            #expect(try h.engine.log.lastSeq() == through)
        }
    }
}

extension WebControlsTests {
    // A WhatsApp reply the Cloud API refused for good (131047: the 24-hour window closed) says so in the web chat,
    // on the page and in the script's fold (the same text; the browser tests run the script).
    @Test func aReplyRefusedOutsideTheWhatsAppWindowSaysSo() async throws {
        try await WebHarness.with { h in
            let login = try await h.login()
            var message = InboundMessage(
                channel: "whatsapp", accountID: "default", externalID: "wamid.1", contactID: "16505551234", text: "hi")
            message.answersApprovalsInText = true
            guard case .accepted(_, let conversation, let jobID?, _) = try await h.engine.ingest(message) else {
                Issue.record("not accepted")
                return
            }
            let claim = try #require(try await h.engine.claimJob())
            #expect(claim.job.jobID == jobID)
            var delivery = NewDelivery(
                idempotencyKey: "reply:\(jobID)", channel: "whatsapp", accountID: "default", recipient: "16505551234",
                conversationID: conversation, text: "Hello again")
            delivery.jobID = jobID
            let enqueued = try await h.engine.enqueueDelivery(delivery)
            _ = try await h.engine.completeJob(jobID, token: claim.token)
            let failed = DeliveryFailed(
                deliveryID: enqueued.deliveryID, token: 0, attempt: 1, permanent: true, errorCode: "131047",
                message: "Re-engagement message")
            _ = try await h.engine.log.append([try PendingEvent(failed, correlationID: conversation)])
            let page = try await h.get(
                "/c/" + conversation.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!, login)
            #expect(
                page.body.contains("Not delivered: WhatsApp takes only template messages"), "\(page.body.suffix(2000))")
        }
    }
}
