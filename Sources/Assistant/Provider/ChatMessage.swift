/// Who wrote a message of the prompt.
import SwitchboardJSON
public enum ChatRole: String, Sendable, Hashable, Codable {
    case system
    case user
    case assistant
    case tool
}

/// A tool call the model asked for: its id (to pair the result with), the tool's name and the arguments as JSON
/// text exactly as the model wrote them (validate before use; models do not always write valid JSON).
public struct ToolCallRequest: Sendable, Hashable, Codable {
    public var id: String
    public var name: String
    public var arguments: String

    public init(id: String, name: String, arguments: String) {
        self.id = id
        self.name = name
        self.arguments = arguments
    }
}

/// One message of the prompt sent to a model.
public struct ChatMessage: Sendable, Hashable, Codable {
    public var role: ChatRole
    public var content: String
    /// The tool calls an assistant message made (empty otherwise).
    public var toolCalls: [ToolCallRequest]
    /// For a `tool` message: the id of the call it answers.
    public var toolCallID: String?

    public init(role: ChatRole, content: String, toolCalls: [ToolCallRequest] = [], toolCallID: String? = nil) {
        self.role = role
        self.content = content
        self.toolCalls = toolCalls
        self.toolCallID = toolCallID
    }

    public static func system(_ content: String) -> ChatMessage { ChatMessage(role: .system, content: content) }
    public static func user(_ content: String) -> ChatMessage { ChatMessage(role: .user, content: content) }
    public static func assistant(_ content: String, toolCalls: [ToolCallRequest] = []) -> ChatMessage {
        ChatMessage(role: .assistant, content: content, toolCalls: toolCalls)
    }
    public static func tool(callID: String, _ content: String) -> ChatMessage {
        ChatMessage(role: .tool, content: content, toolCallID: callID)
    }
}

/// A tool as offered to the model: name, description and a JSON-schema of its parameters.
public struct ToolDefinition: Sendable, Hashable {
    public var name: String
    public var description: String
    public var parameters: JSONValue

    public init(name: String, description: String, parameters: JSONValue) {
        self.name = name
        self.description = description
        self.parameters = parameters
    }
}

/// Which model tier a request wants (§5.4 of the original: lite for simple chat turns, standard otherwise).
public enum ModelTier: String, Sendable, Hashable, Codable {
    case lite
    case standard
}

/// One request to a chat provider.
public struct ChatRequest: Sendable, Hashable {
    public var messages: [ChatMessage]
    public var tools: [ToolDefinition]
    public var tier: ModelTier
    /// Upper bound on the reply's tokens, when the caller wants one.
    public var maxTokens: Int?
    public var temperature: Double?

    public init(
        messages: [ChatMessage], tools: [ToolDefinition] = [], tier: ModelTier = .standard, maxTokens: Int? = nil,
        temperature: Double? = nil
    ) {
        self.messages = messages
        self.tools = tools
        self.tier = tier
        self.maxTokens = maxTokens
        self.temperature = temperature
    }
}
