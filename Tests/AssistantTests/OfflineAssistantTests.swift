import Assistant
import AsyncHTTPClient
import Foundation
import Testing

@Suite struct OfflineAssistantTests {
    static let now = ISO8601DateFormatter().date(from: "2026-12-02T14:05:00Z")!

    /// One turn of the offline assistant with the standard tools, every call approved unless `decide` says
    /// otherwise; returns the reply, the number of deltas and the host's reports.
    func reply(
        _ text: String, todoist: TodoistClient? = nil, key: String = "job-1",
        decide: @escaping @Sendable (TurnToolCall) -> ToolCallDecision = { _ in .run }
    ) async throws -> (text: String, deltas: Int, host: RecordingHost) {
        let turn = AssistantTurn(
            provider: OfflineAssistant(deltaSize: 8), tools: ToolRegistry.standard(todoist: todoist),
            logger: quietLogger, now: { Self.now })
        let host = RecordingHost(decide: decide)
        let result = try await turn.run(TurnInput(system: "sys", history: [.user(text)], key: key), host: host)
        #expect(result.modelUsed == "offline")
        return (result.text, host.deltas.count, host)
    }

    func events(_ request: ChatRequest) async throws -> [ChatStreamEvent] {
        var events: [ChatStreamEvent] = []
        for try await event in OfflineAssistant(deltaSize: 8).stream(request) { events.append(event) }
        return events
    }

    @Test func saysPlainlyItHasNoModelAndEchoesWhatItUnderstood() async throws {
        let (text, deltas, host) = try await reply("What's the weather in Porto?")
        #expect(text.hasPrefix("No language model is configured"))
        #expect(text.contains("\"What's the weather in Porto?\""))
        #expect(deltas > 3)
        #expect(host.calls.isEmpty)
    }

    @Test func aCommandIsAToolCallCompletionLikeAModels() async throws {
        let tools = ToolRegistry.standard(todoist: nil).definitions
        let events = try await events(ChatRequest(messages: [.system("sys"), .user("/calc 17*3")], tools: tools))
        #expect(
            events == [
                .model("offline"),
                .toolCall(.init(id: "call_offline_1", name: "calculate", arguments: #"{"expression":"17*3"}"#)),
                .finish(.toolCalls),
            ])
        // Tool results since the last call are answered with.
        let answered = try await self.events(
            ChatRequest(
                messages: [
                    .user("/calc 1/0"), .assistant("", toolCalls: [.init(id: "c", name: "calculate", arguments: "{}")]),
                    .tool(callID: "c", "Error: division by zero"),
                ], tools: tools))
        #expect(answered.first == .model("offline"))
        #expect(answered.last == .finish(.stop))
        let text = answered.compactMap { if case .textDelta(let delta) = $0 { delta } else { nil } }.joined()
        #expect(text == "That didn't work: division by zero")
    }

    @Test(arguments: [
        ("/calc 17*3", "17*3 = 51"),
        ("/calc (1 + 2) * -3", "(1 + 2) * -3 = -9"),
        ("/calc 1/0", "That didn't work: division by zero"),
        ("/time", "2026-12-02T14:05:00Z (Wednesday, 2 December 2026, 14:05, UTC)"),
        ("/time Asia/Tokyo", "2026-12-02T23:05:00+09:00 (Wednesday, 2 December 2026, 23:05, Asia/Tokyo)"),
        ("/date 2026-01-31 + 1 months", "2026-02-28 (Saturday)"),
        ("/date today - 1 weeks", "2026-11-25 (Wednesday)"),
        ("/days 2026-12-02 2026-12-25", "23 days from 2026-12-02 to 2026-12-25"),
        ("/todo add milk", OfflineAssistantTests.todoistOff),
        ("/calc", "Usage: /calc 17*3"),
    ])
    func runsTheToolsOnCommandsThroughTheTurn(command: String, expected: String) async throws {
        let (text, _, host) = try await reply(command)
        #expect(text == expected)
        // Every tool ran as a call of the turn, none needing approval.
        #expect(host.calls.allSatisfy { !$0.needsApproval })
        #expect(host.calls.count == (expected.hasPrefix("Usage") || expected == Self.todoistOff ? 0 : 1))
    }

    static let todoistOff =
        "Todoist is not connected (set TODOIST_API_TOKEN, or connect Todoist on the web settings page), so I can't "
        + "manage tasks."

    @Test func helpAndUnknownCommandsListTheCommands() async throws {
        let help = try await reply("/help").text
        #expect(help.contains("/calc 17*3"))
        #expect(help.contains("/todo - Todoist tasks (needs TODOIST_API_TOKEN"))
        let unknown = try await reply("/frobnicate now").text
        #expect(unknown.hasPrefix("I don't know the command /frobnicate."))
        #expect(unknown.contains("/time"))
    }

    @Test func theSummaryOfASummaryRequestIsTheUsersLines() async throws {
        let request = PromptBuilder.summaryRequest(
            previous: "Likes tea.", messages: [.user("buy milk"), .assistant("noted"), .user("and bread")])
        let text = try await events(request).compactMap { if case .textDelta(let d) = $0 { d } else { nil } }.joined()
        #expect(text == "Likes tea. The user wrote: buy milk; and bread.")
    }

    @Test func managesTodoistTasksOnCommandAskingBeforeEachChange() async throws {
        let server = try await FakeTodoistServer.start()
        let http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
        let client = TodoistClient(
            settings: TodoistSettings(baseURL: server.baseURL, token: Secret(FakeTodoistServer.token)),
            httpClient: http,
            logger: quietLogger)
        let result = await outcome {
            try await within(60, "the offline /todo commands") { () async throws -> Void in
                let added = try await reply("/todo add Buy milk", todoist: client)
                #expect(added.text == "Created task t1: Buy milk")
                #expect(added.host.calls.map(\.request.name) == ["todoist_create_task"])
                #expect(added.host.calls.first?.needsApproval == true)
                // The same job again (a retry: the same key): the same request id, still one task.
                #expect(try await reply("/todo add Buy milk", todoist: client).text == "Created task t1: Buy milk")
                // Rejected: nothing is created, and the user is told.
                let rejected = try await reply("/todo add Buy eggs", todoist: client, key: "job-2") { _ in
                    .refused("rejected by the user")
                }
                #expect(rejected.text == "That didn't work: rejected by the user")
                let listed = try await reply("/todo list", todoist: client)
                #expect(listed.text == "- [t1] Buy milk")
                #expect(listed.host.calls.first?.needsApproval == false)
                #expect(try await reply("/todo done t1", todoist: client).text == "Completed task t1.")
                #expect(try await reply("/todo list", todoist: client).text == "No active tasks.")
                #expect(try await reply("/todo frob", todoist: client).text.hasPrefix("Usage: /todo add"))
                #expect(try await reply("/help", todoist: client).text.contains("/todo add <text>, /todo list"))
            }
        }
        try await http.shutdown()
        await server.stop()
        try result.get()
        #expect(server.tasks.map(\.content) == ["Buy milk"])
        #expect(server.requestIDs.count == 2)
        #expect(Set(server.requestIDs).count == 1)
    }
}

@Suite struct PromptBuilderTests {
    static func message(_ index: Int, tokens: Int) -> ChatMessage {
        // (tokens - 4) * 4 characters estimate to exactly `tokens`.
        ChatMessage(role: index % 2 == 0 ? .user : .assistant, content: String(repeating: "x", count: (tokens - 4) * 4))
    }

    @Test func estimatesAQuarterOfTheCharactersPlusFourPerMessage() {
        #expect(TokenEstimator.estimate(.user("")) == 4)
        #expect(TokenEstimator.estimate(.user("abcd")) == 5)
        #expect(TokenEstimator.estimate(.user("abcde")) == 6)
        #expect(TokenEstimator.estimate([.user("abcd"), .assistant("ab")]) == 10)
    }

    @Test func aConversationThatFitsIsSentWholeWithoutASummary() {
        let history = (0..<10).map { Self.message($0, tokens: 50) }
        let plan = PromptBuilder.build(
            system: "sys", summary: nil, history: history, budget: ContextBudget(window: 1_000))
        #expect(!plan.summaryNeeded)
        #expect(plan.toSummarize.isEmpty)
        #expect(plan.messages == [.system("sys")] + history)
        #expect(plan.estimatedTokens == 5 + 500)
    }

    @Test func overTheThresholdTheNewestStayAndTheRestIsToSummarize() {
        // 20 messages of 50 tokens = 1 000 > 70 % of 1 000; keep the newest within 30 % (300 - 5 for the system).
        let history = (0..<20).map { Self.message($0, tokens: 50) }
        let plan = PromptBuilder.build(
            system: "sys", summary: "earlier facts", history: history, budget: ContextBudget(window: 1_000))
        #expect(plan.summaryNeeded)
        let head = [ChatMessage.system("sys"), .system("[Conversation Summary] earlier facts")]
        let headTokens = TokenEstimator.estimate(head)
        let kept = (300 - headTokens) / 50
        #expect(plan.messages == head + history.suffix(kept))
        #expect(plan.toSummarize == Array(history.prefix(20 - kept)))
        #expect(plan.estimatedTokens <= 300)
        #expect(!plan.overWindow)
    }

    @Test func theKeptPartNeverStartsWithAnOrphanToolResult() {
        var history = (0..<12).map { Self.message($0, tokens: 50) }
        history[8] = .assistant(
            String(repeating: "z", count: 100), toolCalls: [.init(id: "c1", name: "calculate", arguments: "{}")])
        history[9] = .tool(callID: "c1", String(repeating: "y", count: 184))
        // Budget 30 % of 600 = 180 - 5: fits messages 9…11 (150 tokens) but not the call (33 more): 9 would be a
        // tool result whose call is cut, so the prompt starts at 10.
        let plan = PromptBuilder.build(
            system: "sys", summary: nil, history: history, budget: ContextBudget(window: 600))
        #expect(plan.summaryNeeded)
        #expect(plan.messages.dropFirst().first == history[10])
        #expect(plan.toSummarize.count == 10)
    }

    @Test func oneHugeMessageIsReportedOverTheWindow() {
        let plan = PromptBuilder.build(
            system: "sys", summary: nil, history: [Self.message(0, tokens: 50), Self.message(1, tokens: 5_000)],
            budget: ContextBudget(window: 1_000))
        #expect(plan.overWindow)
        #expect(plan.summaryNeeded)
        #expect(plan.messages.count == 2)
    }

    @Test func theSummaryRequestCarriesThePreviousSummaryAndTheTranscript() {
        let request = PromptBuilder.summaryRequest(previous: "likes tea", messages: [.user("hi"), .assistant("hello")])
        #expect(request.messages.count == 2)
        #expect(request.messages[1].content == "Earlier summary: likes tea\n\nuser: hi\nassistant: hello\n")
    }
}
