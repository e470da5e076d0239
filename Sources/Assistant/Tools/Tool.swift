import Foundation
import Logging
import SwitchboardJSON

/// What running a tool can do to the world.
public enum ToolRisk: String, Sendable, Hashable, Codable {
    /// Reads only (the time, arithmetic, listing tasks): runs without asking.
    case read
    /// Changes something outside the assistant (creates or completes a task): runs only once the user approved.
    case sideEffect = "side_effect"

    /// Whether a call needs the user's approval before it runs.
    public var requiresApproval: Bool { self == .sideEffect }
}

/// What a tool's run knows about its call.
public struct ToolContext: Sendable {
    /// The logical call's id, stable across retries of the same call (the wiring derives it from the job and the
    /// model's tool-call id): side-effecting tools send it as their idempotency key, so a retry never acts twice.
    public var callID: String
    /// The time the call is made at (tools read no clock of their own).
    public var now: Date
    public var logger: Logger

    public init(callID: String, now: Date = Date(), logger: Logger) {
        self.callID = callID
        self.now = now
        self.logger = logger
    }
}

/// A tool failed: bad arguments, a missing setting, or the service it calls.
public struct ToolError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable, Codable {
        /// The arguments are missing, not JSON, or out of range.
        case invalidArguments = "invalid_arguments"
        /// No tool has this name.
        case unknownTool = "unknown_tool"
        /// A side-effecting tool was called without approval.
        case notApproved = "not_approved"
        /// The tool needs a setting that is not there (a Todoist token).
        case notConfigured = "not_configured"
        /// The service said no (auth, not found, a rejected request).
        case rejected
        /// The service failed or could not be reached (after retries).
        case unavailable
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

/// A tool the assistant can call.
public protocol Tool: Sendable {
    /// The name the model calls it by (`[a-z_]+`).
    var name: String { get }
    /// What it does, for the model.
    var description: String { get }
    /// A JSON schema of its arguments object.
    var parameters: JSONValue { get }
    var risk: ToolRisk { get }

    /// Runs the tool with its arguments (a JSON object) and returns the text the model reads.
    /// - Throws: ``ToolError``.
    func run(_ arguments: JSONValue, context: ToolContext) async throws(ToolError) -> String
}

extension Tool {
    /// The tool as offered to a model.
    public var definition: ToolDefinition {
        ToolDefinition(name: name, description: description, parameters: parameters)
    }
}

/// What came of one tool call: the text for the model (an error's message when it failed) and whether it failed.
public struct ToolOutcome: Sendable, Hashable {
    public var callID: String
    public var name: String
    public var content: String
    public var error: ToolError?

    public init(callID: String, name: String, content: String, error: ToolError? = nil) {
        self.callID = callID
        self.name = name
        self.content = content
        self.error = error
    }
}

/// The tools on offer, by name.
public struct ToolRegistry: Sendable {
    public let tools: [any Tool]

    public init(_ tools: [any Tool]) {
        var seen = Set<String>()
        self.tools = tools.filter { seen.insert($0.name).inserted }
    }

    public func tool(named name: String) -> (any Tool)? {
        tools.first { $0.name == name }
    }

    /// The definitions to send with a request.
    public var definitions: [ToolDefinition] { tools.map(\.definition) }

    /// Whether a call of `name` needs approval (an unknown tool does not run at all).
    public func requiresApproval(_ name: String) -> Bool {
        tool(named: name)?.risk.requiresApproval ?? false
    }

    /// Runs a model's tool call: parses its arguments, refuses a side-effecting tool that was not approved, and turns
    /// every failure into an outcome the model can read (it is never thrown).
    public func run(_ call: ToolCallRequest, context: ToolContext, approved: Bool) async -> ToolOutcome {
        func failed(_ error: ToolError) -> ToolOutcome {
            ToolOutcome(callID: call.id, name: call.name, content: "Error: \(error.message)", error: error)
        }
        guard let tool = tool(named: call.name) else {
            return failed(ToolError(.unknownTool, "there is no tool named '\(call.name)'"))
        }
        if tool.risk.requiresApproval && !approved {
            return failed(ToolError(.notApproved, "'\(call.name)' changes something and needs the user's approval"))
        }
        let text = call.arguments.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let arguments = JSONValue(parsing: text.isEmpty ? "{}" : text), case .object = arguments else {
            return failed(ToolError(.invalidArguments, "the arguments are not a JSON object: \(text.prefix(200))"))
        }
        do {
            let content = try await tool.run(arguments, context: context)
            context.logger.debug("assistant tool ran", metadata: ["tool.name": "\(call.name)"])
            return ToolOutcome(callID: call.id, name: call.name, content: content)
        } catch {
            context.logger.debug(
                "assistant tool failed", metadata: ["tool.name": "\(call.name)", "tool.error.code": "\(error.code)"])
            return failed(error)
        }
    }
}

/// Reads the arguments object of a tool.
struct Arguments {
    let value: JSONValue

    func string(_ key: String) throws(ToolError) -> String {
        guard let text = optionalString(key) else {
            throw ToolError(.invalidArguments, "'\(key)' is required (a string)")
        }
        return text
    }

    func optionalString(_ key: String) -> String? {
        guard let text = value[key]?.stringValue?.trimmingCharacters(in: .whitespacesAndNewlines), !text.isEmpty
        else { return nil }
        return text
    }

    func optionalInt(_ key: String) throws(ToolError) -> Int? {
        guard let member = value[key], member != .null else { return nil }
        guard let number = member.intValue else {
            throw ToolError(.invalidArguments, "'\(key)' must be a whole number")
        }
        return number
    }
}
