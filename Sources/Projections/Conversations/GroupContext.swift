/// What a reply in a group chat is built from (`GROUP_CONTEXT_MESSAGES`): every message addressed to the assistant
/// and every reply, and of the group's other lines (recorded `not_addressed` under `GROUP_POLICY=mention`) only the
/// newest `limit`, so a busy group costs a bounded prompt. Each group line carries its writer's name.
public enum GroupContext {
    /// The default number of unaddressed group lines a reply sees.
    public static let defaultLimit = 20

    /// `history` (oldest first) with all but the newest `limit` unaddressed lines dropped.
    public static func bounded(_ history: [HistoryMessage], limit: Int) -> [HistoryMessage] {
        var room = max(0, limit)
        var kept: [HistoryMessage] = []
        for message in history.reversed() {
            if message.role == "user", message.unanswered != nil {
                guard room > 0 else { continue }
                room -= 1
            }
            kept.append(message)
        }
        return kept.reversed()
    }

    /// The text the model reads for a user message: `Name: text` for a group line, the text alone in a direct chat.
    public static func promptText(_ message: HistoryMessage) -> String {
        guard message.role == "user", let sender = message.sender, !sender.isEmpty else { return message.text }
        return "\(sender): \(message.text)"
    }
}
