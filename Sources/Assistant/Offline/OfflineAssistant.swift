import Foundation
import SwitchboardJSON

/// The assistant with no model: a ``ChatProvider`` shaped like a model, so the whole pipeline (deltas, tool
/// calls, approvals, tool results) runs on a machine without one.
///
/// - An explicit command in the newest user message — `/time [Area/City]`, `/calc <expression>`,
///   `/date <YYYY-MM-DD|today> +|- <n> days|weeks|months|years`, `/days <date> <date>`, `/todo add <text>`,
///   `/todo list`, `/todo done <id>` — is answered with a `tool_calls` completion calling the tool, as a model
///   would; the offline assistant runs nothing itself. A tool the request does not offer (Todoist without a
///   token) gets an explanation instead.
/// - When the newest messages are `tool` results, it answers with them.
/// - `/help` lists the commands; anything else gets the honest "no language model is configured" answer.
/// - A summary request (``PromptBuilder/summaryInstruction``) gets an extractive summary: the user's lines.
///
/// Text streams in several deltas of about `deltaSize` characters.
public struct OfflineAssistant: ChatProvider {
    /// Characters per streamed delta (about a few words).
    private let deltaSize: Int

    public var name: String { "offline" }

    public init(deltaSize: Int = 16) {
        self.deltaSize = max(deltaSize, 1)
    }

    /// What the offline assistant answers to a request: text, or tool calls.
    public enum Answer: Sendable, Hashable {
        case text(String)
        case toolCalls([ToolCallRequest])
    }

    public func stream(_ request: ChatRequest) -> AsyncThrowingStream<ChatStreamEvent, any Error> {
        let answer = Self.answer(to: request)
        let deltaSize = deltaSize
        return AsyncThrowingStream { continuation in
            let task = Task {
                continuation.yield(.model("offline"))
                switch answer {
                case .text(let text):
                    for delta in Self.split(text, size: deltaSize) {
                        if Task.isCancelled { break }
                        continuation.yield(.textDelta(delta))
                        // Let a consumer see each delta on its own, as from a server.
                        await Task.yield()
                    }
                    continuation.yield(.finish(.stop))
                case .toolCalls(let calls):
                    for call in calls { continuation.yield(.toolCall(call)) }
                    continuation.yield(.finish(.toolCalls))
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// The answer to `request` (pure: the same request always gets the same answer).
    public static func answer(to request: ChatRequest) -> Answer {
        let messages = request.messages
        if messages.first?.role == .system, messages.first?.content == PromptBuilder.summaryInstruction {
            return .text(summary(of: messages.last?.content ?? ""))
        }
        // Tool results since the last model message: answer with them.
        var results: [String] = []
        for message in messages.reversed() {
            guard message.role == .tool else { break }
            results.insert(resultLine(message.content), at: 0)
        }
        if !results.isEmpty { return .text(results.joined(separator: "\n")) }
        guard let position = messages.lastIndex(where: { $0.role == .user }) else {
            return .text("I have no language model configured, and there is no message to answer.")
        }
        let text = messages[position].content.trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.hasPrefix("/") else { return .text(noModel(text)) }
        let offered = Set(request.tools.map(\.name))
        func call(_ tool: String, _ arguments: JSONValue) -> Answer {
            guard offered.contains(tool) else {
                if tool.hasPrefix("todoist_") { return .text(todoistOff) }
                return .text("I can't use \(tool) right now.")
            }
            return .toolCalls([
                ToolCallRequest(id: "call_offline_\(position)", name: tool, arguments: arguments.jsonText)
            ])
        }
        let (command, rest) = self.command(text)
        switch command {
        case "/help", "/start":
            return .text(help(todoist: offered.contains("todoist_create_task")))
        case "/time":
            return call("get_current_time", rest.isEmpty ? [:] : ["time_zone": .string(rest)])
        case "/calc":
            guard !rest.isEmpty else { return .text("Usage: /calc 17*3") }
            return call("calculate", ["expression": .string(rest)])
        case "/days":
            let dates = rest.split(separator: " ").map(String.init)
            guard dates.count == 2 else { return .text("Usage: /days 2026-01-01 2026-03-01") }
            return call("date_calc", ["operation": "difference", "date": .string(dates[0]), "to": .string(dates[1])])
        case "/date":
            let words = rest.split(separator: " ").map(String.init)
            guard words.count == 4, words[1] == "+" || words[1] == "-", let amount = Int(words[2]) else {
                return .text("Usage: /date 2026-01-31 + 1 months (or - 2 weeks; the date may be today)")
            }
            return call(
                "date_calc",
                [
                    "operation": .string(words[1] == "+" ? "add" : "subtract"), "date": .string(words[0]),
                    "amount": .number(Double(amount)), "unit": .string(words[3]),
                ])
        case "/todo":
            let (action, argument) = self.command(rest)
            switch action {
            case "add":
                guard !argument.isEmpty else { return .text("Usage: /todo add buy milk") }
                return call("todoist_create_task", ["content": .string(argument)])
            case "list":
                return call("todoist_list_tasks", [:])
            case "done":
                guard !argument.isEmpty else { return .text("Usage: /todo done <task id> (see /todo list)") }
                return call("todoist_complete_task", ["id": .string(argument)])
            default:
                return .text("Usage: /todo add <text>, /todo list, /todo done <id>")
            }
        default:
            return .text(
                "I don't know the command \(command). " + help(todoist: offered.contains("todoist_create_task")))
        }
    }

    static let todoistOff =
        "Todoist is not connected (set TODOIST_API_TOKEN, or connect Todoist on the web settings page), so I can't "
        + "manage tasks."

    /// A tool result as the user reads it: the result, or what went wrong.
    static func resultLine(_ content: String) -> String {
        guard content.hasPrefix("Error: ") else { return content }
        return "That didn't work: " + content.dropFirst("Error: ".count)
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
        return "No language model is configured for this assistant (AI_BASE_URL is not set), so I can't answer "
            + "that. I understood your message as: \"\(shown)\". Send /help to see what I can do without a model."
    }

    static func help(todoist: Bool) -> String {
        var lines = [
            "No language model is configured; these commands work without one:",
            "/time [Area/City] - the current time",
            "/calc 17*3 - arithmetic",
            "/date 2026-01-31 + 1 months - date arithmetic",
            "/days 2026-01-01 2026-03-01 - days between dates",
        ]
        if todoist {
            lines += ["/todo add <text>, /todo list, /todo done <id> - Todoist tasks (adding and completing ask first)"]
        } else {
            lines += ["/todo - Todoist tasks (needs TODOIST_API_TOKEN or Todoist connected on the web)"]
        }
        return lines.joined(separator: "\n")
    }

    /// An extractive summary of a summary request's transcript: the previous summary and the user's lines.
    static func summary(of transcript: String) -> String {
        var previous: String?
        var said: [String] = []
        for line in transcript.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix(PromptBuilder.previousSummaryPrefix) {
                previous = String(line.dropFirst(PromptBuilder.previousSummaryPrefix.count))
            } else if line.hasPrefix("user: ") {
                let text = line.dropFirst("user: ".count)
                said.append(text.count > 80 ? String(text.prefix(80)) + "…" : String(text))
            }
        }
        var parts: [String] = []
        if let previous { parts.append(previous) }
        if !said.isEmpty { parts.append("The user wrote: " + said.suffix(10).joined(separator: "; ") + ".") }
        return parts.isEmpty ? "Nothing to summarize." : parts.joined(separator: " ")
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
