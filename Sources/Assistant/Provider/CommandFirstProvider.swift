/// A model with the offline assistant's explicit commands in front of it: a turn whose user message starts with
/// `/` (`/time`, `/calc …`, `/todo …`, `/help`) is answered by the ``OfflineAssistant`` — which turns the command
/// into a tool call and answers from its result — and every other turn by the model.
///
/// So a small local model that is not offered tools (it degenerates with them) still runs the tools on the user's
/// explicit request; a model that is offered tools gets them on its own turns.
public struct CommandFirstProvider: ChatProvider {
    public let model: any ChatProvider
    public let commands: OfflineAssistant
    /// Whether the model's requests keep their tools (`AI_TOOLS`); commands always get them.
    public let offerToolsToModel: Bool

    public init(model: any ChatProvider, commands: OfflineAssistant, offerToolsToModel: Bool) {
        self.model = model
        self.commands = commands
        self.offerToolsToModel = offerToolsToModel
    }

    public var name: String { model.name }

    /// Whether `request` is a command turn: its newest user message starts with `/`.
    public static func isCommand(_ request: ChatRequest) -> Bool {
        guard let user = request.messages.last(where: { $0.role == .user }) else { return false }
        return user.content.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix("/")
    }

    public func stream(_ request: ChatRequest) -> AsyncThrowingStream<ChatStreamEvent, any Error> {
        if Self.isCommand(request) { return commands.stream(request) }
        guard !offerToolsToModel else { return model.stream(request) }
        var plain = request
        plain.tools = []
        return model.stream(plain)
    }
}
