import EventLog
import Foundation
import Projections
import SwitchboardEvents
import Testing

/// A job's turn (streamed reply, tool calls, approvals), decided inside the write transaction and fenced by the
/// job's claim token; on real LMDB files.
@Suite("Turn decider")
struct DeciderTurnTests {
    /// A fresh engine with one claimed reply job in conversation `conv-1`.
    private func withClaimedJob(
        _ body: (Switchboard, TestClock, JobClaim) async throws -> Void
    ) async throws {
        let clock = TestClock()
        try await withEngine(clock: clock) { engine in
            var message = InboundMessage(
                channel: "web", accountID: "default", externalID: "c-1", contactID: "owner", text: "hello")
            message.conversationID = "conv-1"
            let ingested = try await engine.ingest(message)
            guard case .accepted(_, let conversationID, let jobID?, _) = ingested else {
                Issue.record("no job: \(ingested)")
                return
            }
            #expect(conversationID == "conv-1")
            let claim = try #require(try await engine.claimJob())
            #expect(claim.job.jobID == jobID)
            try await body(engine, clock, claim)
        }
    }

    private func delta(_ claim: JobClaim, _ index: Int, _ text: String, token: UInt64? = nil) -> SwitchboardEvent {
        .assistantDelta(
            AssistantDelta(
                messageID: "reply:\(claim.job.jobID)", conversationID: claim.job.conversationID,
                jobID: claim.job.jobID, jobToken: token ?? claim.token, index: index, text: text))
    }

    private func call(_ claim: JobClaim, _ callID: String, tool: String = "todoist_create_task") -> SwitchboardEvent {
        .toolCall(
            ToolCall(
                callID: callID, jobID: claim.job.jobID, jobToken: claim.token,
                conversationID: claim.job.conversationID, toolName: tool, inputJSON: #"{"content":"milk"}"#,
                risk: "medium"))
    }

    private func request(_ claim: JobClaim, _ callID: String, expiresAt: LogTimestamp) -> SwitchboardEvent {
        .toolApproval(
            ToolApproval(
                callID: callID, jobID: claim.job.jobID, conversationID: claim.job.conversationID,
                decision: "requested", expiresAt: expiresAt))
    }

    private func result(_ claim: JobClaim, _ callID: String, output: String? = "{}", error: String? = nil)
        -> SwitchboardEvent
    {
        .toolResult(
            ToolResult(
                callID: callID, jobID: claim.job.jobID, jobToken: claim.token, outputJSON: output, error: error))
    }

    @Test func theCurrentClaimStreamsAndFinishesItsReply() async throws {
        try await withClaimedJob { engine, _, claim in
            let first = try await engine.recordTurn(
                jobID: claim.job.jobID, token: claim.token, [delta(claim, 0, "Hel"), delta(claim, 1, "lo")])
            guard case .accepted(let lastSeq) = first else {
                Issue.record("refused: \(first)")
                return
            }
            #expect(lastSeq == (try engine.log.lastSeq()))
            let final = SwitchboardEvent.assistantMessage(
                AssistantMessage(
                    messageID: "reply:\(claim.job.jobID)", conversationID: "conv-1", jobID: claim.job.jobID,
                    jobToken: claim.token, text: "Hello", modelUsed: "offline", final: true))
            #expect(
                try await engine.recordTurn(jobID: claim.job.jobID, token: claim.token, [final])
                    != .rejected(.invalidEvent))
            let history = try engine.history("conv-1")
            #expect(history.map(\.role) == ["user", "assistant"])
            #expect(history.last?.text == "Hello")
        }
    }

    @Test func aStaleTokenCannotAddToTheReplyNorCallATool() async throws {
        try await withClaimedJob { engine, clock, claim in
            // The claim lapses and another attempt takes the job.
            clock.advance(engine.settings.jobs.visibility + .seconds(1))
            let before = try engine.log.lastSeq()
            #expect(
                try await engine.recordTurn(jobID: claim.job.jobID, token: claim.token, [delta(claim, 0, "late")])
                    == .rejected(.claimExpired))
            // The next claim settles the lapsed one (a failed attempt, retried after its backoff).
            #expect(try await engine.claimJob() == nil)
            clock.advance(.seconds(40))
            let second = try #require(try await engine.claimJob())
            #expect(second.job.jobID == claim.job.jobID)
            #expect(second.token > claim.token)
            #expect(
                try await engine.recordTurn(jobID: claim.job.jobID, token: claim.token, [call(claim, "call-1")])
                    == .rejected(.staleToken))
            #expect(try engine.toolCall("call-1") == nil)
            // Only `command.rejected` records were added for the refused writes, besides the second claim's events.
            let added = try engine.log.records(from: before + 1, limit: 100).map(\.type)
            #expect(!added.contains("assistant.delta"))
            #expect(!added.contains("tool.call"))
            #expect(added.filter { $0 == "command.rejected" }.count == 2)
            // The new attempt restarts the message under its own token.
            #expect(
                try await engine.recordTurn(
                    jobID: second.job.jobID, token: second.token, [delta(second, 0, "again")])
                    != .rejected(.staleToken))
        }
    }

    @Test func eventsOfAnotherJobOrTokenAreRefusedWhole() async throws {
        try await withClaimedJob { engine, _, claim in
            let before = try engine.log.lastSeq()
            let mixed = [delta(claim, 0, "ok"), delta(claim, 1, "forged", token: claim.token + 1)]
            #expect(
                try await engine.recordTurn(jobID: claim.job.jobID, token: claim.token, mixed)
                    == .rejected(.invalidEvent))
            let added = try engine.log.records(from: before + 1, limit: 10).map(\.type)
            #expect(added == ["command.rejected"])
            let stray = SwitchboardEvent.workerStopped(
                WorkerStopped(role: "core", workerID: "x", instance: "y", reason: "test"))
            #expect(
                try await engine.recordTurn(jobID: claim.job.jobID, token: claim.token, [stray])
                    == .rejected(.invalidEvent))
        }
    }

    @Test func anApprovedCallRunsOnceAndItsResultIsRecorded() async throws {
        try await withClaimedJob { engine, clock, claim in
            let expiresAt = clock.now.advanced(by: .seconds(300))
            let asked = try await engine.recordTurn(
                jobID: claim.job.jobID, token: claim.token,
                [call(claim, "call-1"), request(claim, "call-1", expiresAt: expiresAt)])
            #expect(asked != .rejected(.invalidEvent))
            #expect(try engine.awaitingApprovals(conversationID: "conv-1").map(\.callID) == ["call-1"])
            #expect(try engine.awaitingApprovals(conversationID: "conv-2").isEmpty)
            // A result before the answer is refused: the tool may not run yet.
            #expect(
                try await engine.recordTurn(jobID: claim.job.jobID, token: claim.token, [result(claim, "call-1")])
                    == .rejected(.notApproved))
            #expect(
                try await engine.answerApproval(callID: "call-1", approve: true, by: "web:owner")
                    == .recorded(.approved))
            #expect(
                try await engine.answerApproval(callID: "call-1", approve: false, by: "web:owner")
                    == .refused(.notAwaiting(.approved)))
            #expect(try engine.awaitingApprovals().isEmpty)
            #expect(
                try await engine.recordTurn(jobID: claim.job.jobID, token: claim.token, [result(claim, "call-1")])
                    != .rejected(.notApproved))
            let stored = try #require(try engine.toolCall("call-1"))
            #expect(stored.status == .done)
            #expect(stored.decidedBy == "web:owner")
            // A second result for the same call is refused.
            #expect(
                try await engine.recordTurn(jobID: claim.job.jobID, token: claim.token, [result(claim, "call-1")])
                    == .rejected(.invalidEvent))
        }
    }

    @Test func anUnansweredApprovalExpiresIntoARecordedRejection() async throws {
        try await withClaimedJob { engine, clock, claim in
            // Shorter than the claim's visibility, so the claim is still current when the request expires.
            let expiresAt = clock.now.advanced(by: .seconds(30))
            _ = try await engine.recordTurn(
                jobID: claim.job.jobID, token: claim.token,
                [call(claim, "call-1"), request(claim, "call-1", expiresAt: expiresAt)])
            clock.advance(.seconds(29))
            #expect(try await engine.expireApprovals().isEmpty)
            clock.advance(.seconds(2))
            // An answer after the expiry records the expiry instead.
            #expect(
                try await engine.answerApproval(callID: "call-1", approve: true, by: "web:owner") == .refused(.expired))
            #expect(try engine.toolCall("call-1")?.status == .expired)
            #expect(try await engine.expireApprovals().isEmpty)
            // The model is told: an error result is accepted, an output is not (the tool never ran).
            #expect(
                try await engine.recordTurn(jobID: claim.job.jobID, token: claim.token, [result(claim, "call-1")])
                    == .rejected(.notApproved))
            #expect(
                try await engine.recordTurn(
                    jobID: claim.job.jobID, token: claim.token,
                    [result(claim, "call-1", output: nil, error: "approval expired")]) != .rejected(.notApproved))
            #expect(try engine.toolCall("call-1")?.status == .expired)
        }
    }

    @Test func expiryRecordsEachDueCallOnce() async throws {
        try await withClaimedJob { engine, clock, claim in
            let soon = clock.now.advanced(by: .seconds(10))
            let later = clock.now.advanced(by: .seconds(100))
            _ = try await engine.recordTurn(
                jobID: claim.job.jobID, token: claim.token,
                [
                    call(claim, "call-a"), request(claim, "call-a", expiresAt: soon), call(claim, "call-b"),
                    request(claim, "call-b", expiresAt: later),
                ])
            clock.advance(.seconds(11))
            #expect(try await engine.expireApprovals() == ["call-a"])
            #expect(try await engine.expireApprovals().isEmpty)
            #expect(try engine.awaitingApprovals().map(\.callID) == ["call-b"])
            #expect(
                try await engine.answerApproval(callID: "call-b", approve: false, by: "web:owner")
                    == .recorded(.rejected))
            #expect(
                try await engine.answerApproval(callID: "nope", approve: true, by: "web:owner")
                    == .refused(.unknownCall))
        }
    }

    @Test func anApprovalRequestMustNameACallOfTheJob() async throws {
        try await withClaimedJob { engine, clock, claim in
            let ghost = try await engine.recordTurn(
                jobID: claim.job.jobID, token: claim.token,
                [request(claim, "ghost", expiresAt: clock.now.advanced(by: .seconds(5)))])
            #expect(ghost == .rejected(.unknownCall))
            let twice = try await engine.recordTurn(
                jobID: claim.job.jobID, token: claim.token, [call(claim, "dup"), call(claim, "dup")])
            #expect(twice == .rejected(.invalidEvent))
        }
    }

    @Test func conversationsAreListedMostRecentlyActiveFirstAndSummariesKept() async throws {
        try await withClaimedJob { engine, _, claim in
            var other = InboundMessage(
                channel: "web", accountID: "default", externalID: "c-2", contactID: "owner", text: "second")
            other.conversationID = "conv-2"
            _ = try await engine.ingest(other)
            #expect(try engine.conversations().map(\.conversationID) == ["conv-2", "conv-1"])
            let summary = SwitchboardEvent.conversationSummarized(
                ConversationSummarized(
                    conversationID: "conv-1", jobID: claim.job.jobID, jobToken: claim.token, summary: "said hello",
                    throughSeq: claim.job.enqueueSeq))
            let final = SwitchboardEvent.assistantMessage(
                AssistantMessage(
                    messageID: "reply:\(claim.job.jobID)", conversationID: "conv-1", jobID: claim.job.jobID,
                    jobToken: claim.token, text: "Hi", final: true))
            _ = try await engine.recordTurn(jobID: claim.job.jobID, token: claim.token, [summary, final])
            #expect(try engine.conversations().map(\.conversationID) == ["conv-1", "conv-2"])
            #expect(try engine.conversations(limit: 1).count == 1)
            #expect(try engine.conversationSummary("conv-1")?.summary == "said hello")
            // The rebuilt state equals the live one (the new tables are derived from the log alone).
            let live = try engine.digest()
            let scratch = TemporaryDirectory()
            let rebuilt = try await Rebuild.digest(
                of: engine.log, scratchDirectory: scratch.sub("scratch"), logger: quietLogger)
            #expect(rebuilt == live)
        }
    }
}
