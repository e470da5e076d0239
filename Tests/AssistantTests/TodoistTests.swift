import Assistant
import AsyncHTTPClient
import Foundation
import Testing

/// The Todoist client and tools against a fake Todoist API v1 on 127.0.0.1.
@Suite struct TodoistTests {
    func withTodoist(
        token: String = FakeTodoistServer.token,
        _ body: @escaping @Sendable (FakeTodoistServer, TodoistClient, SleepRecorder) async throws -> Void
    ) async throws {
        let server = try await FakeTodoistServer.start()
        let http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
        let sleeps = SleepRecorder()
        let client = TodoistClient(
            settings: TodoistSettings(baseURL: server.baseURL, token: Secret(token)), httpClient: http,
            logger: quietLogger, sleep: sleeps.sleep)
        let result = await outcome {
            try await within(60, "the Todoist test") { try await body(server, client, sleeps) }
        }
        try await http.shutdown()
        await server.stop()
        try result.get()
    }

    @Test func createsListsAndCompletesTasks() async throws {
        try await withTodoist { server, client, _ in
            let milk = try await client.createTask(content: "Buy milk", dueString: "tomorrow", requestID: "r1")
            #expect(milk.content == "Buy milk")
            #expect(milk.due?.string == "tomorrow")
            for (number, name) in ["Call mum", "Book flights"].enumerated() {
                _ = try await client.createTask(content: name, requestID: "r\(number + 2)")
            }
            // Three tasks over pages of two: the client follows next_cursor.
            #expect(try await client.listTasks().map(\.content) == ["Buy milk", "Call mum", "Book flights"])
            #expect(try await client.listTasks(limit: 2).count == 2)
            try await client.closeTask(id: milk.id, requestID: "r4")
            #expect(try await client.listTasks().map(\.content) == ["Call mum", "Book flights"])
            #expect(server.requestIDs == ["r1", "r2", "r3"])
        }
    }

    @Test func aRetriedCreateWithTheSameRequestIDMakesOneTask() async throws {
        try await withTodoist { server, client, sleeps in
            // Todoist applies the create but the answer is lost (500): the client retries with the same id.
            server.failNextCreateAfterApplying()
            let task = try await client.createTask(content: "Pay rent", requestID: "call-42")
            #expect(task.content == "Pay rent")
            #expect(server.tasks.map(\.content) == ["Pay rent"])
            #expect(server.requestIDs == ["call-42", "call-42"])
            #expect(sleeps.all.count == 1)
            // The same logical call again (a retried job) is still one task.
            _ = try await client.createTask(content: "Pay rent", requestID: "call-42")
            #expect(server.tasks.count == 1)
        }
    }

    @Test func theToolsSendAStableRequestIDPerLogicalCall() async throws {
        try await withTodoist { server, client, _ in
            let registry = ToolRegistry(TodoistTools.all(client: client))
            #expect(registry.requiresApproval("todoist_create_task"))
            #expect(registry.requiresApproval("todoist_complete_task"))
            #expect(!registry.requiresApproval("todoist_list_tasks"))
            let context = ToolContext(callID: "job-7/call_1", logger: quietLogger)
            let call = ToolCallRequest(
                id: "call_1", name: "todoist_create_task", arguments: #"{"content":"Water plants"}"#)
            let first = await registry.run(call, context: context, approved: true)
            let again = await registry.run(call, context: context, approved: true)
            #expect(first.content == "Created task t1: Water plants")
            #expect(again.content == first.content)
            #expect(server.tasks.count == 1)
            #expect(server.requestIDs == [stableRequestID(for: "job-7/call_1"), stableRequestID(for: "job-7/call_1")])
            let list = await registry.run(
                ToolCallRequest(id: "call_2", name: "todoist_list_tasks", arguments: "{}"), context: context,
                approved: false)
            #expect(list.content == "- [t1] Water plants")
            let done = await registry.run(
                ToolCallRequest(id: "call_3", name: "todoist_complete_task", arguments: #"{"id":"t1"}"#),
                context: ToolContext(callID: "job-7/call_3", logger: quietLogger), approved: true)
            #expect(done.content == "Completed task t1.")
            #expect(server.closed == ["t1"])
            let missing = await registry.run(
                ToolCallRequest(id: "call_4", name: "todoist_complete_task", arguments: #"{"id":"t99"}"#),
                context: ToolContext(callID: "job-7/call_4", logger: quietLogger), approved: true)
            #expect(missing.error?.code == .rejected)
        }
    }

    @Test func aBadTokenIsRejectedWithoutRetries() async throws {
        try await withTodoist(token: "wrong") { _, client, sleeps in
            let error = await #expect(throws: TodoistError.self) { try await client.listTasks() }
            #expect(error?.code == .auth)
            #expect(sleeps.all.isEmpty)
        }
    }

    @Test func requestIDsAreStableAndUUIDShaped() {
        let id = stableRequestID(for: "job-1/call_1")
        #expect(id == stableRequestID(for: "job-1/call_1"))
        #expect(id != stableRequestID(for: "job-1/call_2"))
        #expect(id.count == 36)
        #expect(id.split(separator: "-").map(\.count) == [8, 4, 4, 4, 12])
    }
}
