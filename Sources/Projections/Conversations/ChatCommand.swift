import Foundation

/// A command typed as a message on any channel. Anything else starting with `/` is ordinary text.
public enum ChatCommand: String, Sendable, Equatable, CaseIterable {
    /// A fresh context from here on (the history stays in the log).
    case new
    /// Cancels the running reply (its partial text is kept and sent as it is) and what waits.
    case stop
    /// What runs and waits in this conversation.
    case status
    /// The commands.
    case help

    /// The command `text` is, or `nil`: `/stop`, `/stop@BotName` (Telegram's form in groups), any case, with
    /// nothing after it but spaces.
    public init?(_ text: String) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.hasPrefix("/"), !trimmed.contains(where: \.isWhitespace) else { return nil }
        var word = trimmed.dropFirst()
        if let at = word.firstIndex(of: "@") { word = word[..<at] }
        guard let command = ChatCommand(rawValue: word.lowercased()) else { return nil }
        self = command
    }

    /// The `/help` answer.
    public static let helpText =
        "Commands: /new starts afresh (earlier messages stay in the log), /stop stops the reply being written, "
        + "/status says what is running and waiting, /help shows this."
}
