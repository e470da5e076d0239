import Foundation

/// The reply text a channel sends, from what the model wrote (§5.9 of the original, without the note tools).
public enum ReplyText {
    /// Sent when the model wrote nothing (only whitespace, or only tool calls that led nowhere).
    public static let emptyFallback = "Sorry, I could not generate a response right now. Please try again."

    /// The model's text trimmed, or ``emptyFallback`` when nothing is left.
    public static func final(_ text: String) -> String {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.isEmpty ? emptyFallback : trimmed
    }
}
