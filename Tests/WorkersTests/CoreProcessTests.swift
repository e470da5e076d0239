@testable import EventLog
import Foundation
import Projections
import SwitchboardEvents
import TestSupport
import Testing

/// The core role as a process answering with a model (the fake OpenAI-compatible server): what a killed core
/// leaves behind (§10.10, orphaned typing), and that the next attempt replaces it.
extension WorkerProcessTests {
    @Suite("Core processes")
    struct CoreProcesses {
        static func core(_ fake: FakeProvider) -> [String: String] {
            [
                "AGENT_ROLE": "core", "AI_BASE_URL": fake.modelBaseURL, "AI_MODEL": "fake-model",
                "JOB_VISIBILITY_MS": "3000", "ENABLE_WHATSAPP": "false",
            ]
        }

        @Test func aCoreKilledMidStreamLeavesTypingThatTheNextAttemptReplaces() async throws {
            let dir = TemporaryDirectory()
            let fake = try await FakeProvider.start()
            defer { fake.stop() }
            let gate = Gate()
            defer { gate.close() }
            // The first attempt's stream stops after its first piece; the second attempt gets a whole answer.
            fake.script(
                .gated(
                    [ModelSSE.content("Partial "), ModelSSE.content("never sent"), ModelSSE.finish(), ModelSSE.done],
                    gate),
                .stream(ModelSSE.text("The whole ", "answer.")))
            let core1 = try AgentProcess("core-1", data: dir.path, Self.core(fake))
            try await core1.waitFor("[agent] Model: fake-model at \(fake.modelBaseURL)")
            try await core1.waitFor("[main] Agent is running (role: core)")
            let log = try TestLog(dir.path)
            defer { log.close() }
            var message = InboundMessage(
                channel: "web", accountID: "default", externalID: "client-1", contactID: "owner", text: "tell me")
            message.conversationID = "web-orphan"
            guard case .accepted(_, _, let jobID?, _) = try await log.engine.ingest(message) else {
                Issue.record("the message started no job")
                return
            }
            let typing = try await log.waitForEvent("the first attempt's first delta") { _, event in
                if case .assistantDelta(let delta) = event { return delta.jobID == jobID }
                return false
            }
            guard case .assistantDelta(let first) = typing.event else { return }
            core1.kill()
            let killedAt = try log.log.lastSeq()
            let core2 = try AgentProcess("core-2", data: dir.path, Self.core(fake))
            _ = try await log.waitForEvent(from: killedAt + 1, within: 30, "the job's completion") { _, event in
                if case .jobCompleted(let completed) = event { return completed.jobID == jobID }
                return false
            }
            #expect(await core2.stop() == 0)
            let events = try log.events().map(\.event)
            let deltas = events.compactMap { if case .assistantDelta(let e) = $0 { e } else { nil } }
            let messages = events.compactMap { if case .assistantMessage(let e) = $0 { e } else { nil } }
            let failed = events.compactMap { if case .jobFailed(let e) = $0 { e } else { nil } }
            let completed = events.compactMap { if case .jobCompleted(let e) = $0 { e } else { nil } }
            // The killed attempt wrote its typing and nothing more.
            #expect(deltas.filter { $0.jobToken == first.jobToken }.map(\.text) == ["Partial "])
            #expect(!messages.contains { $0.jobToken == first.jobToken })
            // Its claim expired by log time; the next attempt restarted the message from index 0.
            #expect(failed.map(\.reason) == ["claim_expired"])
            let retried = deltas.filter { $0.jobToken != first.jobToken }
            #expect(Set(retried.map(\.jobToken)).count == 1)
            #expect(retried.first.map { $0.jobToken > first.jobToken } == true)
            #expect(retried.map(\.index) == Array(0..<retried.count))
            #expect(retried.map(\.text).joined() == "The whole answer.")
            #expect(messages.count == 1)
            #expect(messages.first?.final == true && messages.first?.text == "The whole answer.")
            #expect(messages.first?.jobToken == retried.first?.jobToken)
            #expect(messages.allSatisfy { $0.messageID == "reply:\(jobID)" })
            #expect(completed.first?.modelUsed == "fake-model")
            #expect(fake.modelRequests.count == 2)
        }
    }
}
