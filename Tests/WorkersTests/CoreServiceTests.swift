import Assistant
import EventLog
import Foundation
import Logging
import Projections
import ServiceLifecycle
import SwitchboardEvents
import TestSupport
import Testing
import Workers

/// The core loop in process, with a slow model: heartbeats keep the claim, the reply is fenced by the job
/// token, and a graceful shutdown waits for the job in flight.
@Suite("Core service")
struct CoreServiceTests {
    /// A model that thinks for `delay`, then echoes the newest user message.
    struct SlowProvider: ChatProvider {
        let delay: Duration
        var name: String { "slow" }

        func stream(_ request: ChatRequest) -> AsyncThrowingStream<ChatStreamEvent, any Error> {
            let text = request.messages.last { $0.role == .user }?.content ?? ""
            let delay = delay
            return AsyncThrowingStream { continuation in
                let task = Task {
                    do {
                        try await Task.sleep(for: delay)
                        for event in [ChatStreamEvent.model("slow"), .textDelta("echo: \(text)"), .finish(.stop)] {
                            continuation.yield(event)
                        }
                        continuation.finish()
                    } catch {
                        continuation.finish(throwing: error)
                    }
                }
                continuation.onTermination = { _ in task.cancel() }
            }
        }
    }

    static func slow(_ delay: Duration) -> CoreAssistant {
        CoreAssistant(provider: SlowProvider(delay: delay))
    }

    @Test func aSlowJobIsHeartbeatedCompletedAndItsReplyQueuedUnderItsToken() async throws {
        let dir = TemporaryDirectory()
        var settings = EngineSettings.defaults()
        // Heartbeats every 8 s: the claim lapses only if two in a row are 16 s late. In CI the suite shares two
        // cores and this process's two concurrency threads with every other suite: this 10 s test took 26 s there,
        // and heartbeats 3 s apart were once late by more than 6 s.
        settings.jobs.visibility = .milliseconds(24_000)
        let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        let engine = try Switchboard(
            EventLogConfiguration(directory: dir.path, writer: WriterIdentity(role: "core", workerID: "core-t")),
            settings: settings, logger: quiet)
        let core = CoreService(
            engine: engine, concurrency: 2, assistant: Self.slow(.milliseconds(25_000)), logger: quiet)
        let group = ServiceGroup(services: [core], logger: quiet)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let ingested = try await engine.ingest(
                InboundMessage(channel: "telegram", accountID: "default", externalID: "1:1", contactID: "1", text: "hi")
            )
            guard case .accepted(_, _, let jobID?, _) = ingested else {
                Issue.record("not accepted: \(ingested)")
                return
            }
            // Shut down while the job runs: the core finishes it first.
            try await within(60, "the job's first heartbeat") {
                for try await record in engine.log.tail(from: 1) where record.type == JobHeartbeat.eventType {
                    return
                }
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            let events = try engine.log.records(from: 1).compactMap { try $0.event() }
            let claimed = events.compactMap { if case .jobClaimed(let e) = $0 { e } else { nil } }
            let heartbeats = events.compactMap { if case .jobHeartbeat(let e) = $0 { e } else { nil } }
            let completed = events.compactMap { if case .jobCompleted(let e) = $0 { e } else { nil } }
            let replies = events.compactMap { if case .deliveryEnqueued(let e) = $0 { e } else { nil } }
            #expect(claimed.count == 1)
            // The answer took longer than the claim's visibility: only heartbeats kept the claim (completion is accepted
            // under the claim token below).
            #expect(heartbeats.count >= 2)
            #expect(heartbeats.allSatisfy { $0.token == claimed.first?.token })
            #expect(completed.map(\.jobID) == [jobID])
            #expect(completed.first?.modelUsed == "slow")
            #expect(replies.map(\.text) == ["echo: hi"])
            #expect(replies.first?.jobToken == claimed.first?.token)
            #expect(replies.first?.recipient == "1")
            #expect(replies.first?.channel == "telegram")
            #expect(!events.contains { if case .jobFailed = $0 { true } else { false } })
        }
        await engine.close()
    }

    /// A cancelled core (cancellation, not a graceful shutdown: e.g. another service of its group failed) ends:
    /// its waits return at once when cancelled, so a loop that ignored cancellation would spin on claims.
    @Test func aCancelledCoreEndsInsteadOfSpinning() async throws {
        let dir = TemporaryDirectory()
        let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        let engine = try Switchboard(
            EventLogConfiguration(directory: dir.path, writer: WriterIdentity(role: "core", workerID: "core-c")),
            logger: quiet)
        let core = CoreService(
            engine: engine, concurrency: 1, assistant: Self.slow(.milliseconds(10)), logger: quiet)
        let (ended, endedContinuation) = AsyncStream<Void>.makeStream()
        let task = Task {
            try? await core.run()
            endedContinuation.yield()
            endedContinuation.finish()
        }
        task.cancel()
        try await within(10, "the cancelled core to end") {
            for await _ in ended { return }
        }
        await engine.close()
    }
}
