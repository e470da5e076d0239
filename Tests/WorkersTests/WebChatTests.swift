import EventLog
import Foundation
import Projections
import SwitchboardEvents
import Testing
import Workers

/// The web chat's messages, event stream and pages over real HTTP on a real log.
@Suite("Web chat", .timeLimit(.minutes(3)))
struct WebChatTests {
    /// Posts a message and returns the answer's JSON.
    static func post(
        _ h: WebHarness, _ login: WebLogin, conversation: String, clientID: String, text: String
    ) async throws -> (status: Int, json: [String: Any]) {
        let body = try String(
            decoding: JSONSerialization.data(withJSONObject: ["clientID": clientID, "text": text]), as: UTF8.self)
        let answer = try await h.postJSON("/api/conversations/\(conversation)/messages", login, body)
        return (answer.status, answer.json)
    }

    @Test func aPostedMessageIsRecordedWithAReplyJobAndARetryIsADuplicate() async throws {
        try await WebHarness.with { h in
            let login = try await h.login()
            let created = try await h.postJSON("/api/conversations", login, "{}")
            #expect(created.status == 201)
            let conversation = try #require(created.json["conversationID"] as? String)
            #expect(conversation.hasPrefix("web-"))

            let first = try await Self.post(h, login, conversation: conversation, clientID: "client-1", text: "Hello")
            #expect(first.status == 202)
            let seq = try #require(first.json["seq"] as? Int)
            let jobID = try #require(first.json["jobID"] as? String)
            #expect(first.json["conversationID"] as? String == conversation)
            #expect(first.json["duplicate"] as? Bool == false)

            let events = try h.log.events()
            let received = events.compactMap { entry -> (Record, MessageReceived)? in
                if case .messageReceived(let m) = entry.event { return (entry.record, m) }
                return nil
            }
            #expect(received.count == 1)
            let (record, message) = try #require(received.first)
            #expect(record.seq == UInt64(seq))
            #expect(message.channel == "web")
            #expect(message.accountID == "default")
            #expect(message.contactID == "owner")
            #expect(message.externalID == "client-1")
            #expect(message.text == "Hello")
            #expect(message.conversationID == conversation)
            let jobs = events.compactMap { entry -> JobEnqueued? in
                if case .jobEnqueued(let j) = entry.event { return j }
                return nil
            }
            #expect(jobs.map(\.jobID) == [jobID])
            #expect(jobs.first?.conversationID == conversation)
            #expect(jobs.first?.triggeringMessageSeq == UInt64(seq))

            // The same clientID again (a retried POST): 200, the first record, no second job.
            let again = try await Self.post(h, login, conversation: conversation, clientID: "client-1", text: "Hello")
            #expect(again.status == 200)
            #expect(again.json["duplicate"] as? Bool == true)
            #expect(again.json["seq"] as? Int == seq)
            #expect(again.json["jobID"] as? String == jobID)
            let after = try h.log.events()
            #expect(after.filter { $0.record.type == "job.enqueued" }.count == 1)
            #expect(after.filter { $0.record.type == "message.received" }.count == 1)
        }
    }

    @Test func badMessagesAreRefusedWithAClearErrorAndNothingIsWritten() async throws {
        try await WebHarness.with { h in
            let login = try await h.login()
            let before = try h.log.log.lastSeq()
            let path = "/api/conversations/web-bad/messages"
            let malformed = try await h.postJSON(path, login, #"{"clientID": "x", "text": "#)
            #expect(malformed.status == 400)
            #expect((malformed.json["error"] as? String)?.hasPrefix("malformed JSON") == true)
            let missing = try await h.postJSON(path, login, #"{"text": "hi"}"#)
            #expect(missing.status == 400)
            #expect((missing.json["error"] as? String)?.contains("clientID") == true)
            let empty = try await Self.post(h, login, conversation: "web-bad", clientID: "c", text: "  \n ")
            #expect(empty.status == 400)
            let long = try await Self.post(
                h, login, conversation: "web-bad", clientID: "c", text: String(repeating: "a", count: 16_001))
            #expect(long.status == 400)
            #expect((long.json["error"] as? String)?.contains("16000") == true)
            let badID = try await Self.post(h, login, conversation: "web-bad", clientID: "has space", text: "hi")
            #expect(badID.status == 400)
            let huge = try await h.postJSON(path, login, String(repeating: "x", count: 300 * 1024))
            #expect(huge.status == 413)
            #expect(try h.log.log.lastSeq() == before)
        }
    }

    @Test func aWhatsAppConversationIsReadOnlyHere() async throws {
        try await WebHarness.with { h in
            let login = try await h.login()
            let ingested = try await h.engine.ingest(
                InboundMessage(
                    channel: "whatsapp", accountID: "default", externalID: "wamid.1", contactID: "1555", text: "hi"))
            guard case .accepted(_, let conversation, _, _) = ingested else {
                Issue.record("not accepted: \(ingested)")
                return
            }
            let encoded = try #require(conversation.addingPercentEncoding(withAllowedCharacters: .alphanumerics))
            let post = try await Self.post(h, login, conversation: encoded, clientID: "c-ro", text: "hello")
            #expect(post.status == 409)
            let page = try await h.get("/c/\(encoded)", login)
            #expect(page.status == 200)
            #expect(page.body.contains(#"<textarea id="composer" name="text" rows="1""#))
            #expect(page.body.contains("read-only here"))
            #expect(page.body.contains(#"aria-describedby="composer-reason" disabled></textarea>"#))
            // The sidebar lists it with its channel.
            #expect(page.body.contains(#"<span class="channel">whatsapp</span>"#))
        }
    }

    /// Appends a delta of `jobID`'s reply directly (the core's writes, simulated).
    static func delta(
        _ h: WebHarness, _ conversation: String, _ jobID: String, token: UInt64, _ index: Int, _ text: String
    )
        async throws -> UInt64
    {
        try await h.log.log.append(
            AssistantDelta(
                messageID: "reply:\(jobID)", conversationID: conversation, jobID: jobID, jobToken: token, index: index,
                text: text))
    }

    @Test func theEventStreamCarriesOneConversationWithSeqIdsAndResumesWithoutGapOrDuplicate() async throws {
        try await WebHarness.with { h in
            let login = try await h.login()
            let a = try await Self.post(h, login, conversation: "web-a", clientID: "a-1", text: "first A")
            let jobA = try #require(a.json["jobID"] as? String)
            let b = try await Self.post(h, login, conversation: "web-b", clientID: "b-1", text: "first B")
            let jobB = try #require(b.json["jobID"] as? String)
            _ = try await Self.delta(h, "web-b", jobB, token: 1, 0, "B says")
            _ = try await Self.delta(h, "web-a", jobA, token: 1, 0, "Hel")

            // The replay: A's records only, ids = seqs, event names = record types.
            let first = try await h.events("web-a", login) { events, _ in
                events.contains { $0.event == "assistant.delta" }
            }
            let expectedA = try h.log.events().filter { entry in
                switch entry.event {
                case .messageReceived(let m): m.conversationID == "web-a"
                case .jobEnqueued(let j): j.conversationID == "web-a"
                case .assistantDelta(let d): d.conversationID == "web-a"
                default: false
                }
            }
            #expect(first.events.map(\.id) == expectedA.map { $0.record.seq })
            #expect(first.events.map(\.event) == ["message.received", "job.enqueued", "assistant.delta"])
            #expect(!first.events.contains { $0.data.contains("B says") || $0.data.contains("first B") })
            let payload = try #require(first.events.first?.data)
            let message = try JSONSerialization.jsonObject(with: Data(payload.utf8)) as? [String: Any]
            #expect(message?["externalID"] as? String == "a-1")
            let lastSeen = try #require(first.events.last?.id)

            // While disconnected: more of A (job records carry only the job id), and more of B.
            let claim = try #require(try await h.engine.claimJob())
            #expect(claim.job.jobID == jobA)
            _ = try await Self.delta(h, "web-a", jobA, token: claim.token, 0, "Hello")
            _ = try await Self.delta(h, "web-b", jobB, token: 1, 1, " more")
            _ = try await Self.delta(h, "web-a", jobA, token: claim.token, 1, ", world")
            _ = try await h.engine.completeJob(jobA, token: claim.token)

            // Resume with Last-Event-ID: exactly the records after it, then the live tail.
            let resumed = try await h.events("web-a", login, headers: [("Last-Event-ID", "\(lastSeen)")]) { events, _ in
                events.contains { $0.event == "job.completed" }
            }
            #expect(
                resumed.events.map(\.event) == ["job.claimed", "assistant.delta", "assistant.delta", "job.completed"])
            #expect(resumed.events.allSatisfy { ($0.id ?? 0) > lastSeen })
            let all = first.events + resumed.events
            let ids = all.compactMap(\.id)
            #expect(ids == ids.sorted() && Set(ids).count == ids.count)
            let expectedAll = try h.log.events().filter { entry in
                switch entry.event {
                case .messageReceived(let m): m.conversationID == "web-a"
                case .jobEnqueued(let j): j.conversationID == "web-a"
                case .assistantDelta(let d): d.conversationID == "web-a"
                case .jobClaimed(let c): c.jobID == jobA
                case .jobCompleted(let c): c.jobID == jobA
                default: false
                }
            }
            #expect(ids == expectedAll.map { $0.record.seq })
            // `?after=` does the same as Last-Event-ID.
            let viaQuery = try await h.events("web-a", login, query: "?after=\(lastSeen)") { events, _ in
                events.contains { $0.event == "job.completed" }
            }
            #expect(viaQuery.events.map(\.id) == resumed.events.map(\.id))
            // Last-Event-ID wins over a stale ?after= (a browser reconnecting keeps the first URL).
            let lastID = try #require(resumed.events.last?.id)
            let later = try await Self.delta(h, "web-a", jobA, token: claim.token, 2, "!")
            let both = try await h.events(
                "web-a", login, headers: [("Last-Event-ID", "\(lastID)")], query: "?after=\(lastSeen)"
            ) { events, _ in !events.isEmpty }
            #expect(both.events.map(\.id) == [later])
            #expect(try await h.get("/api/conversations/web-a/events?after=x", login).status == 400)
        }
    }

    @Test func aNewConversationsStreamWaitsForItsFirstMessageAndIdleStreamsGetHeartbeats() async throws {
        try await WebHarness.with(heartbeat: .milliseconds(200)) { h in
            let login = try await h.login()
            let listener = Task {
                try await h.events("web-new", login) { events, _ in events.contains { $0.event == "job.enqueued" } }
            }
            // Heartbeats arrive on an idle stream; the message posted later is delivered live.
            let idle = try await h.events("web-idle", login) { _, comments in comments >= 2 }
            #expect(idle.events.isEmpty)
            _ = try await Self.post(h, login, conversation: "web-new", clientID: "n-1", text: "new here")
            let got = try await listener.value
            #expect(got.events.map(\.event) == ["message.received", "job.enqueued"])
        }
    }

    @Test func aStreamEndsCleanlyAtShutdown() async throws {
        try await WebHarness.with { h in
            let login = try await h.login()
            _ = try await Self.post(h, login, conversation: "web-s", clientID: "s-1", text: "hi")
            let (ready, signal) = AsyncStream<Void>.makeStream()
            let stream = Task {
                try await h.events("web-s", login) { events, _ in
                    if events.count == 2 { signal.yield() }
                    return false
                }
            }
            // The replay arrived (the stream is open), then the web chat shuts down.
            try await within(20, "the replay of web-s") {
                var iterator = ready.makeAsyncIterator()
                _ = await iterator.next()
            }
            h.chat.shutdown.fire()
            let ended = try await stream.value
            #expect(ended.ended)
            #expect(ended.events.count == 2)
        }
    }

    @Test func aRetriedReplySaysSoAndADeadOneShowsWhy() async throws {
        try await WebHarness.with { h in
            let login = try await h.login()
            // First a reply that fails for good (the only job, so the claim is its own)...
            let second = try await Self.post(h, login, conversation: "web-g", clientID: "g-1", text: "two")
            let dead = try #require(second.json["jobID"] as? String)
            let claimed = try #require(try await h.engine.claimJob())
            #expect(claimed.job.jobID == dead)
            _ = try await h.engine.failJob(
                dead, token: claimed.token, reason: "permanent", message: "model <unknown>", retryable: false)
            var page = try await h.get("/c/web-g", login)
            #expect(page.body.contains(#"data-state="failed" data-message-id="reply:\#(dead)""#))
            #expect(
                page.body.contains(
                    #"<p class="failure">The reply failed: the request was refused — model &lt;unknown&gt;</p>"#))
            // The event stream carries the failure for the script.
            let stream = try await h.events("web-g", login) { events, _ in events.contains { $0.event == "job.dead" } }
            #expect(
                stream.events.map(\.event) == [
                    "message.received", "job.enqueued", "job.claimed", "job.failed", "job.dead",
                ])

            // ...then one that is retried.
            let first = try await Self.post(h, login, conversation: "web-f", clientID: "f-1", text: "one")
            let retried = try #require(first.json["jobID"] as? String)
            let claim = try #require(try await h.engine.claimJob())
            #expect(claim.job.jobID == retried)
            let outcome = try await h.engine.failJob(
                retried, token: claim.token, reason: "rate_limit", message: "429 from the model", retryable: true)
            guard case .retried = outcome else {
                Issue.record("expected a retry, got \(outcome)")
                return
            }
            page = try await h.get("/c/web-f", login)
            #expect(page.body.contains(#"data-state="streaming" data-message-id="reply:\#(retried)""#))
            #expect(page.body.contains(#"<span class="status">retrying (attempt 2) after rate_limit</span>"#))
        }
    }
}
