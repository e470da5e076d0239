import Assistant
import AsyncHTTPClient
import Foundation
import Testing

@Suite struct OfflineAssistantTests {
    static let now = ISO8601DateFormatter().date(from: "2026-12-02T14:05:00Z")!

    func assistant(todoist: TodoistClient? = nil) -> OfflineAssistant {
        OfflineAssistant(todoist: todoist, logger: quietLogger, deltaSize: 8, now: { Self.now })
    }

    func reply(_ assistant: OfflineAssistant, _ text: String) async throws -> (text: String, deltas: Int) {
        var deltas: [String] = []
        var events: [ChatStreamEvent] = []
        for try await event in assistant.stream(ChatRequest(messages: [.system("sys"), .user(text)])) {
            events.append(event)
            if case .textDelta(let delta) = event { deltas.append(delta) }
        }
        #expect(events.first == .model("offline"))
        #expect(events.last == .finish(.stop))
        return (deltas.joined(), deltas.count)
    }

    @Test func saysPlainlyItHasNoModelAndEchoesWhatItUnderstood() async throws {
        let (text, deltas) = try await reply(assistant(), "What's the weather in Porto?")
        #expect(text.contains("no language model configured"))
        #expect(text.contains("\"What's the weather in Porto?\""))
        #expect(deltas > 3)
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
        ("/todo add milk", "Todoist is not connected (TODOIST_API_TOKEN is not set), so I can't manage tasks."),
    ])
    func runsTheToolsOnCommands(command: String, expected: String) async throws {
        #expect(try await reply(assistant(), command).text == expected)
    }

    @Test func helpAndUnknownCommandsListTheCommands() async throws {
        #expect(try await reply(assistant(), "/help").text.contains("/calc 17*3"))
        let unknown = try await reply(assistant(), "/frobnicate now").text
        #expect(unknown.hasPrefix("I don't know the command /frobnicate."))
        #expect(unknown.contains("/time"))
    }

    @Test func managesTodoistTasksOnCommand() async throws {
        let server = try await FakeTodoistServer.start()
        let http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
        let client = TodoistClient(
            settings: TodoistSettings(baseURL: server.baseURL, token: Secret(FakeTodoistServer.token)),
            httpClient: http,
            logger: quietLogger)
        let offline = assistant(todoist: client)
        let result = await outcome {
            try await within(60, "the offline /todo commands") { () async throws -> Void in
                #expect(try await reply(offline, "/todo add Buy milk").text == "Created task t1: Buy milk")
                // The same message again at the same position (a retried job): the same request id, one task.
                #expect(try await reply(offline, "/todo add Buy milk").text == "Created task t1: Buy milk")
                #expect(try await reply(offline, "/todo list").text == "- [t1] Buy milk")
                #expect(try await reply(offline, "/todo done t1").text == "Completed task t1.")
                #expect(try await reply(offline, "/todo list").text == "No active tasks.")
                #expect(try await reply(offline, "/todo frob").text.hasPrefix("Usage: /todo add"))
            }
        }
        try await http.shutdown()
        await server.stop()
        try result.get()
        #expect(server.tasks.count == 1)
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
