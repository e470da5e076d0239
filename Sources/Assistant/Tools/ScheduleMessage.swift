import Foundation
import SwitchboardJSON

/// `schedule_message`: sends the user a message later (a reminder the model sets when asked, "remind me at five to
/// call Sam"). A side effect: it runs only once the user approved it. The scheduling itself is the wiring's (`schedule`):
/// in the agent, a reminder job in the log, due by the log clock, fired once — the same as `/remind`.
public struct ScheduleMessageTool: Tool {
    /// Schedules `text` for `when` (`in 20m`, `at 17:00`, `tomorrow 9:00`), idempotent per `callID`; answers how it
    /// was understood, e.g. "at 17:00 today (Europe/Paris)".
    public typealias Schedule = @Sendable (_ when: String, _ text: String, _ callID: String) async throws -> String

    let schedule: Schedule

    public init(schedule: @escaping Schedule) { self.schedule = schedule }

    public var name: String { "schedule_message" }
    public var description: String {
        "Send the user a message later (a reminder). `when`: `in 20m`, `in 2 hours`, `at 17:00` (today, or tomorrow "
            + "once passed), or `tomorrow 9:00`, in the user's time zone. `text`: what to send."
    }
    public var parameters: JSONValue {
        .object([
            "type": .string("object"),
            "properties": .object([
                "when": .object([
                    "type": .string("string"), "description": .string("in 20m | at 17:00 | tomorrow 9:00"),
                ]),
                "text": .object(["type": .string("string"), "description": .string("the message to send then")]),
            ]),
            "required": .array([.string("when"), .string("text")]),
        ])
    }
    public var risk: ToolRisk { .sideEffect }

    public func run(_ arguments: JSONValue, context: ToolContext) async throws(ToolError) -> String {
        guard case .object(let fields) = arguments, case .string(let when)? = fields["when"],
            case .string(let text)? = fields["text"], !text.trimmingCharacters(in: .whitespaces).isEmpty
        else { throw ToolError(.invalidArguments, "expected {\"when\": string, \"text\": string}") }
        do {
            let at = try await schedule(when, text, context.callID)
            return "Scheduled \(at): \(text)"
        } catch let error as ToolError {
            throw error
        } catch {
            throw ToolError(.unavailable, "could not schedule it: \(error)")
        }
    }
}

extension ToolRegistry {
    /// This registry with `tool` added.
    public func adding(_ tool: any Tool) -> ToolRegistry { ToolRegistry(tools + [tool]) }
}
