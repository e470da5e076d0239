import Foundation
import Logging

/// The assistant with no model: a ``ChatProvider`` that says plainly it has none, runs the tools on explicit
/// commands, and streams each reply in several deltas as a model would.
///
/// Commands (the newest user message): `/help`, `/time [Area/City]`, `/calc <expression>`,
/// `/date <YYYY-MM-DD|today> +|- <n> days|weeks|months|years`, `/days <date> <date>`, `/todo add <text>`,
/// `/todo list`, `/todo done <id>`. Anything else is answered honestly, echoing what was understood. A `/todo`
/// command is the user's own explicit request, so it runs without a separate approval; its `X-Request-Id` is
/// derived from the message's position and text, so a retried job never creates the task twice.
public struct OfflineAssistant: ChatProvider {
    private let calculator = CalculatorTool()
    private let time: CurrentTimeTool
    private let dates = DateMathTool()
    private let todoist: TodoistClient?
    private let logger: Logger
    private let now: @Sendable () -> Date
    /// Characters per streamed delta (about a few words).
    private let deltaSize: Int

    public var name: String { "offline" }

    public init(
        todoist: TodoistClient? = nil, timeZone: TimeZone = TimeZone(identifier: "UTC")!, logger: Logger,
        deltaSize: Int = 16, now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.todoist = todoist
        self.time = CurrentTimeTool(defaultTimeZone: timeZone)
        self.logger = logger
        self.deltaSize = max(deltaSize, 1)
        self.now = now
    }

    public func stream(_ request: ChatRequest) -> AsyncThrowingStream<ChatStreamEvent, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                let reply = await self.reply(to: request)
                continuation.yield(.model(name))
                for delta in Self.split(reply, size: deltaSize) {
                    if Task.isCancelled { break }
                    continuation.yield(.textDelta(delta))
                }
                continuation.yield(.finish(.stop))
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// The reply to the newest user message of `request`.
    public func reply(to request: ChatRequest) async -> String {
        guard let position = request.messages.lastIndex(where: { $0.role == .user }) else {
            return "I have no language model configured, and there is no message to answer."
        }
        let text = request.messages[position].content.trimmingCharacters(in: .whitespacesAndNewlines)
        let context = ToolContext(
            callID: "offline|\(position)|\(text)", now: now(), logger: logger)
        guard text.hasPrefix("/") else { return Self.noModel(text) }
        let (command, rest) = Self.command(text)
        switch command {
        case "/help", "/start":
            return Self.help(todoist: todoist != nil)
        case "/time":
            return await run(time, rest.isEmpty ? [:] : ["time_zone": .string(rest)], context)
        case "/calc":
            return await run(calculator, ["expression": .string(rest)], context)
        case "/days":
            let dates = rest.split(separator: " ").map(String.init)
            guard dates.count == 2 else { return "Usage: /days 2026-01-01 2026-03-01" }
            return await run(
                self.dates, ["operation": "difference", "date": .string(dates[0]), "to": .string(dates[1])], context)
        case "/date":
            return await date(rest, context)
        case "/todo":
            return await todo(rest, context)
        default:
            return "I don't know the command \(command). " + Self.help(todoist: todoist != nil)
        }
    }

    private func date(_ rest: String, _ context: ToolContext) async -> String {
        let words = rest.split(separator: " ").map(String.init)
        guard words.count == 4, words[1] == "+" || words[1] == "-", let amount = Int(words[2]) else {
            return "Usage: /date 2026-01-31 + 1 months (or - 2 weeks; the date may be today)"
        }
        return await run(
            dates,
            [
                "operation": .string(words[1] == "+" ? "add" : "subtract"), "date": .string(words[0]),
                "amount": .number(Double(amount)), "unit": .string(words[3]),
            ], context)
    }

    private func todo(_ rest: String, _ context: ToolContext) async -> String {
        guard let todoist else {
            return "Todoist is not connected (TODOIST_API_TOKEN is not set), so I can't manage tasks."
        }
        let (action, argument) = Self.command(rest)
        switch action {
        case "add":
            guard !argument.isEmpty else { return "Usage: /todo add buy milk" }
            return await run(TodoistTools.CreateTask(client: todoist), ["content": .string(argument)], context)
        case "list":
            return await run(TodoistTools.ListTasks(client: todoist), [:], context)
        case "done":
            guard !argument.isEmpty else { return "Usage: /todo done <task id> (see /todo list)" }
            return await run(TodoistTools.CompleteTask(client: todoist), ["id": .string(argument)], context)
        default:
            return "Usage: /todo add <text>, /todo list, /todo done <id>"
        }
    }

    private func run(_ tool: some Tool, _ arguments: JSONValue, _ context: ToolContext) async -> String {
        do {
            return try await tool.run(arguments, context: context)
        } catch {
            return "That didn't work: \(error.message)"
        }
    }

    static func command(_ text: String) -> (command: String, rest: String) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let space = trimmed.firstIndex(where: \.isWhitespace) else { return (trimmed.lowercased(), "") }
        return (
            trimmed[..<space].lowercased(), trimmed[space...].trimmingCharacters(in: .whitespacesAndNewlines)
        )
    }

    static func noModel(_ text: String) -> String {
        let shown = text.count > 200 ? String(text.prefix(200)) + "…" : text
        return "I have no language model configured (AI_BASE_URL is not set), so I can't answer that. "
            + "I understood your message as: \"\(shown)\". Send /help to see what I can do without a model."
    }

    static func help(todoist: Bool) -> String {
        var lines = [
            "I have no language model configured; these commands work without one:",
            "/time [Area/City] - the current time",
            "/calc 17*3 - arithmetic",
            "/date 2026-01-31 + 1 months - date arithmetic",
            "/days 2026-01-01 2026-03-01 - days between dates",
        ]
        if todoist {
            lines += ["/todo add <text>, /todo list, /todo done <id> - Todoist tasks"]
        } else {
            lines += ["/todo - Todoist tasks (needs TODOIST_API_TOKEN)"]
        }
        return lines.joined(separator: "\n")
    }

    /// Splits `text` into deltas of about `size` characters, at spaces where it can.
    static func split(_ text: String, size: Int) -> [String] {
        var deltas: [String] = []
        var current = ""
        for character in text {
            current.append(character)
            if current.count >= size, character == " " || character == "\n" {
                deltas.append(current)
                current = ""
            } else if current.count >= size * 2 {
                deltas.append(current)
                current = ""
            }
        }
        if !current.isEmpty { deltas.append(current) }
        return deltas
    }
}
