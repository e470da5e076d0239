import EventLog
import Foundation
import Projections
import SwitchboardEvents
import Testing

/// Stop, Regenerate, edits (branches), rename and delete: each decided in the write transaction against the state
/// of the moment, on real LMDB files; and the conversation tree a reply's history is read from.
@Suite("Conversation controls")
struct ConversationControlTests {
    private func send(
        _ engine: Switchboard, _ id: String, _ text: String, parent: UInt64? = nil, after: String? = nil,
        conversation: String = "web-1"
    ) async throws -> (seq: UInt64, jobID: String) {
        var message = InboundMessage(
            channel: "web", accountID: "default", externalID: id, contactID: "owner", text: text)
        message.conversationID = conversation
        message.parentSeq = parent
        message.afterJobID = after
        guard case .accepted(let seq, _, let jobID?, _) = try await engine.ingest(message) else {
            throw ProjectionError(.invalidArgument, "not accepted")
        }
        return (seq, jobID)
    }

    private func delta(_ claim: JobClaim, _ index: Int, _ text: String) -> SwitchboardEvent {
        .assistantDelta(
            AssistantDelta(
                messageID: "reply:\(claim.job.jobID)", conversationID: claim.job.conversationID,
                jobID: claim.job.jobID, jobToken: claim.token, index: index, text: text))
    }

    private func reply(_ engine: Switchboard, _ claim: JobClaim, _ text: String) async throws {
        _ = try await engine.recordTurn(
            jobID: claim.job.jobID, token: claim.token,
            [
                .assistantMessage(
                    AssistantMessage(
                        messageID: "reply:\(claim.job.jobID)", conversationID: claim.job.conversationID,
                        jobID: claim.job.jobID, jobToken: claim.token, text: text, final: true))
            ])
        #expect(try await engine.completeJob(claim.job.jobID, token: claim.token) == .accepted)
    }

    @Test("Stop keeps the streamed text as the final reply, ends the job without retry, and fences its writer")
    func stopKeepsTheTextAndFencesTheWriter() async throws {
        try await withEngine { engine in
            let (_, jobID) = try await send(engine, "m1", "tell me a story")
            let claim = try #require(try await engine.claimJob())
            #expect(claim.job.jobID == jobID)
            _ = try await engine.recordTurn(jobID: jobID, token: claim.token, [delta(claim, 0, "Once upon")])
            _ = try await engine.recordTurn(jobID: jobID, token: claim.token, [delta(claim, 1, " a time")])

            let outcome = try await engine.stopJob(conversationID: "web-1", jobID: jobID, by: "web:owner")
            #expect(outcome == .success(.stopped(text: "Once upon a time")))
            #expect(try engine.job(jobID)?.status == .cancelled)
            let history = try engine.history("web-1")
            #expect(history.last?.text == "Once upon a time")
            #expect(history.last?.finishReason == "stopped")
            // The worker's next writes are refused: its token no longer runs.
            #expect(
                try await engine.recordTurn(jobID: jobID, token: claim.token, [delta(claim, 2, " there")])
                    == .rejected(.notRunning))
            #expect(try await engine.heartbeatJob(jobID, token: claim.token) != .accepted)
            #expect(try await engine.completeJob(jobID, token: claim.token) != .accepted)
            // Nothing retries it, and a second Stop changes nothing.
            #expect(try await engine.claimJob() == nil)
            #expect(
                try await engine.stopJob(conversationID: "web-1", jobID: jobID, by: "web:owner")
                    == .success(.alreadyEnded(.cancelled)))
            // The log says who stopped it.
            let records = try engine.log.records(from: 1, limit: 1000)
            let cancelled = records.compactMap { record -> JobCancelled? in
                if case .jobCancelled(let e)? = try? record.event() { return e }
                return nil
            }
            #expect(cancelled == [JobCancelled(jobID: jobID, token: claim.token, by: "web:owner", reason: "stopped")])
        }
    }

    @Test("Stop of a job still queued ends it before it runs; another conversation's job cannot be stopped")
    func stopAQueuedJobAndRefuseOthers() async throws {
        try await withEngine { engine in
            let (_, jobID) = try await send(engine, "m1", "hi")
            #expect(
                try await engine.stopJob(conversationID: "web-2", jobID: jobID, by: "web:owner")
                    == .failure(.unknownConversation))
            _ = try await send(engine, "m2", "other", conversation: "web-2")
            #expect(
                try await engine.stopJob(conversationID: "web-2", jobID: jobID, by: "web:owner")
                    == .failure(.unknownTarget))
            #expect(
                try await engine.stopJob(conversationID: "web-1", jobID: jobID, by: "web:owner")
                    == .success(.stopped(text: "")))
            // web-2's job is the only one left to claim.
            let claim = try #require(try await engine.claimJob())
            #expect(claim.job.conversationID == "web-2")
        }
    }

    @Test("Regenerate adds a version beside the first; refused while a reply to that message is being written")
    func regenerateAddsAVersion() async throws {
        try await withEngine { engine in
            let (seq, first) = try await send(engine, "m1", "a joke please")
            #expect(
                try await engine.regenerate(conversationID: "web-1", triggerSeq: seq, requestID: "r1")
                    == .failure(.busy))
            try await reply(engine, try #require(try await engine.claimJob()), "joke one")
            let again = try await engine.regenerate(conversationID: "web-1", triggerSeq: seq, requestID: "r2")
            guard case .success(let enqueued) = again else {
                Issue.record("refused: \(again)")
                return
            }
            #expect(!enqueued.duplicate)
            // The same request again answers the same job.
            #expect(
                try await engine.regenerate(conversationID: "web-1", triggerSeq: seq, requestID: "r2")
                    == .success(enqueued.asDuplicate))
            let claim = try #require(try await engine.claimJob())
            #expect(claim.job.jobID == enqueued.jobID)
            #expect(claim.job.kind == "regenerate")
            #expect(claim.job.triggeringMessageSeq == seq)
            try await reply(engine, claim, "joke two")
            let tree = ConversationTree(try engine.history("web-1"))
            #expect(tree.versions(of: seq).map(\.jobID) == [first, enqueued.jobID])
            #expect(tree.versions(of: seq).map(\.text) == ["joke one", "joke two"])
            // Not a message of this conversation, or not a user message: refused.
            #expect(
                try await engine.regenerate(conversationID: "web-1", triggerSeq: 9999, requestID: "r3")
                    == .failure(.unknownTarget))
        }
    }

    @Test("The history of a reply follows its branch and the version that was shown")
    func historyFollowsTheBranchAndTheShownVersion() async throws {
        try await withEngine { engine in
            let (s1, j1) = try await send(engine, "m1", "first")
            try await reply(engine, try #require(try await engine.claimJob()), "answer A")
            guard
                case .success(let v2) = try await engine.regenerate(
                    conversationID: "web-1", triggerSeq: s1, requestID: "r")
            else { throw ProjectionError(.invalidArgument, "refused") }
            try await reply(engine, try #require(try await engine.claimJob()), "answer B")
            // The owner paged back to version 1 and wrote next to it.
            let (s2, _) = try await send(engine, "m2", "second", parent: s1, after: j1)
            try await reply(engine, try #require(try await engine.claimJob()), "answer C")
            let messages = try engine.history("web-1", limit: 100)
            let tree = ConversationTree(messages)
            #expect(tree.history(answering: s2).map(\.text) == ["first", "answer A", "second"])
            // An edit of "second" is its sibling: the same parent and shown version.
            let (s3, _) = try await send(engine, "m3", "second, edited", parent: s1, after: j1)
            let edited = ConversationTree(try engine.history("web-1", limit: 100))
            #expect(edited.history(answering: s3).map(\.text) == ["first", "answer A", "second, edited"])
            #expect(edited.children(of: s1).map(\.seq) == [s2, s3])
            // Without a named version, the newest before the message.
            let (s4, _) = try await send(engine, "m4", "a new first", parent: 0)
            let (s5, _) = try await send(engine, "m5", "next", parent: s1)
            let full = ConversationTree(try engine.history("web-1", limit: 100))
            #expect(full.history(answering: s4).map(\.text) == ["a new first"])
            #expect(full.history(answering: s5).map(\.text) == ["first", "answer B", "next"])
            _ = v2
        }
    }

    @Test("A parent or shown version that is not the conversation's is refused, nothing written")
    func badPlacesAreRefused() async throws {
        try await withEngine { engine in
            let (s1, j1) = try await send(engine, "m1", "first")
            let before = try engine.log.lastSeq()
            await #expect(throws: ProjectionError.self) { _ = try await send(engine, "x1", "t", parent: 9999) }
            await #expect(throws: ProjectionError.self) {
                _ = try await send(engine, "x2", "t", parent: s1, after: "nope")
            }
            await #expect(throws: ProjectionError.self) { _ = try await send(engine, "x3", "t", after: j1) }
            #expect(try engine.log.lastSeq() == before)
        }
    }

    @Test("A linear chat's history is every message in order, as before branches existed")
    func aLinearChatIsUnchanged() async throws {
        try await withEngine { engine in
            var seqs: [UInt64] = []
            for n in 1...3 {
                let (seq, _) = try await send(engine, "m\(n)", "q\(n)")
                seqs.append(seq)
                try await reply(engine, try #require(try await engine.claimJob()), "a\(n)")
            }
            let tree = ConversationTree(try engine.history("web-1", limit: 100))
            #expect(tree.history(answering: seqs[2]).map(\.text) == ["q1", "a1", "q2", "a2", "q3"])
        }
    }

    @Test("/new starts the history afresh even under an explicit parent; other commands are not history")
    func newStartsTheHistoryAfresh() async throws {
        try await withEngine { engine in
            let (_, _) = try await send(engine, "m1", "old topic")
            try await reply(engine, try #require(try await engine.claimJob()), "old answer")
            var command = InboundMessage(
                channel: "web", accountID: "default", externalID: "c1", contactID: "owner", text: "/new")
            command.conversationID = "web-1"
            guard case .accepted(let newSeq, _, nil, _) = try await engine.ingest(command) else {
                throw ProjectionError(.invalidArgument, "a command starts no job")
            }
            command.externalID = "c2"
            command.text = "/status"
            guard case .accepted(let statusSeq, _, _, _) = try await engine.ingest(command) else {
                throw ProjectionError(.invalidArgument, "not accepted")
            }
            // The page names the last message it shows as the parent: the /status after the /new.
            let (s3, _) = try await send(engine, "m3", "new topic", parent: statusSeq)
            let tree = ConversationTree(try engine.history("web-1", limit: 100))
            #expect(tree.history(answering: s3).map(\.text) == ["new topic"])
            _ = newSeq
        }
    }

    @Test("Rename sets the title; a bad title is refused")
    func rename() async throws {
        try await withEngine { engine in
            _ = try await send(engine, "m1", "hello")
            #expect(
                try await engine.renameConversation("web-1", title: "  Trip\nplans ", by: "web:owner")
                    == .success("Trip plans"))
            #expect(try engine.conversation("web-1")?.title == "Trip plans")
            #expect(
                try await engine.renameConversation("web-1", title: "  ", by: "web:owner") == .failure(.invalidTitle))
            #expect(
                try await engine.renameConversation("web-1", title: String(repeating: "x", count: 201), by: "o")
                    == .failure(.invalidTitle))
            #expect(try await engine.renameConversation("nope", title: "x", by: "o") == .failure(.unknownConversation))
        }
    }

    @Test("Delete cancels the running reply, drops the history and records who deleted it; the web takes no more")
    func deleteRedacts() async throws {
        try await withEngine { engine in
            _ = try await send(engine, "m1", "secret plans")
            let claim = try #require(try await engine.claimJob())
            _ = try await engine.recordTurn(
                jobID: claim.job.jobID, token: claim.token, [delta(claim, 0, "the plan is")])
            let outcome = try await engine.deleteConversation("web-1", by: "web:owner")
            guard case .success(.deleted(let through, let cancelled)) = outcome else {
                Issue.record("not deleted: \(outcome)")
                return
            }
            #expect(cancelled == 1)
            #expect(through == (try engine.log.lastSeq()))
            #expect(try engine.history("web-1").isEmpty)
            #expect(try engine.job(claim.job.jobID)?.status == .cancelled)
            let state = try #require(try engine.conversation("web-1"))
            #expect(state.deletion?.by == "web:owner")
            #expect(try engine.redactions()["web-1"]?.throughSeq == through)
            #expect(try engine.conversations().contains { $0.conversationID == "web-1" } == false)
            // Its writer is fenced; a web message into it is refused.
            #expect(
                try await engine.recordTurn(jobID: claim.job.jobID, token: claim.token, [delta(claim, 1, " x")])
                    == .rejected(.notRunning))
            await #expect(throws: ProjectionError.self) { _ = try await send(engine, "m2", "more") }
            // Deleting again changes nothing.
            let again = try await engine.deleteConversation("web-1", by: "web:owner")
            #expect(again == .success(.alreadyDeleted(try #require(state.deletion))))
        }
    }

    @Test("A deleted channel conversation starts afresh with the contact's next message")
    func aChannelConversationStartsAfresh() async throws {
        try await withEngine { engine in
            var message = InboundMessage(
                channel: "telegram", accountID: "bot", externalID: "1:1", contactID: "42", text: "old text")
            _ = try await engine.ingest(message, enqueueJob: false)
            let id = conversationID(channel: "telegram", accountID: "bot", contactID: "42")
            guard case .success(.deleted(let through, _)) = try await engine.deleteConversation(id, by: "web:owner")
            else { throw ProjectionError(.invalidArgument, "not deleted") }
            message.externalID = "1:2"
            message.text = "new text"
            guard case .accepted(let seq, _, _, _) = try await engine.ingest(message, enqueueJob: false) else {
                throw ProjectionError(.invalidArgument, "not accepted")
            }
            #expect(try engine.history(id).map(\.text) == ["new text"])
            let state = try #require(try engine.conversation(id))
            #expect(state.firstSeq == seq)
            #expect(state.firstSeq > through)
            #expect(state.messageCount == 1)
        }
    }
}

extension JobEnqueue {
    /// The same job, as a repeated request answers it.
    fileprivate var asDuplicate: JobEnqueue {
        var copy = self
        copy.duplicate = true
        return copy
    }
}
