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
    /// `/remind <when> <text>`: a reminder (``ReminderTime``).
    case remind
    /// `/reminders`: the reminders set; `/reminders cancel <n>` cancels one.
    case reminders

    /// Whether the command takes words after it (the others are commands only when alone).
    var takesArgument: Bool { self == .remind || self == .reminders }

    /// The `/help` answer.
    public static let helpText =
        "Commands: /new starts afresh (earlier messages stay in the log), /stop stops the reply being written, "
        + "/status says what is running and waiting, /remind in 20m|at 17:00|tomorrow 9:00 <text> sets a reminder, "
        + "/reminders lists them (/reminders cancel 2 cancels one), /help shows this."
}

/// A command and the words after it.
public struct TypedCommand: Sendable, Equatable {
    public var command: ChatCommand
    public var argument: String

    public init(_ command: ChatCommand, _ argument: String = "") {
        self.command = command
        self.argument = argument
    }

    /// The command `text` is, or `nil`: `/stop`, `/stop@BotName` (Telegram's form in groups), any case; words
    /// after it only for `/remind` and `/reminders`.
    public init?(_ text: String) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.hasPrefix("/") else { return nil }
        let head = trimmed.prefix { !$0.isWhitespace }
        let rest = trimmed.dropFirst(head.count).trimmingCharacters(in: .whitespacesAndNewlines)
        var word = head.dropFirst()
        if let at = word.firstIndex(of: "@") { word = word[..<at] }
        guard let command = ChatCommand(rawValue: word.lowercased()) else { return nil }
        guard rest.isEmpty || command.takesArgument else { return nil }
        self.init(command, rest)
    }
}
