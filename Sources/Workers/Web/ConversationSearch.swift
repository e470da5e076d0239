import Foundation
import Projections

/// `GET /api/search?q=`: the owner's conversations whose title or text contains the query (case- and
/// diacritic-insensitive), newest first, each with a snippet of its first match. Deleted conversations have no
/// text left to match. Bounded: the 500 most recent conversations, at most ``limit`` results.
struct ConversationSearch: Sendable {
    let engine: Switchboard

    static let limit = 50
    static let maxQueryLength = 200

    struct Hit: Encodable, Equatable {
        var conversationID: String
        var channel: String
        var title: String
        /// Where the query matched: `title` or `text`.
        var field: String
        /// Up to 160 characters around the match (plain text).
        var snippet: String
        /// The matching message's seq (`0` for a title match).
        var seq: UInt64
    }

    func search(_ query: String) throws -> [Hit] {
        let q = query.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !q.isEmpty else { return [] }
        let options: String.CompareOptions = [.caseInsensitive, .diacriticInsensitive]
        var hits: [Hit] = []
        let recent = try engine.conversations(limit: 500)
        let entries = try engine.log.withSnapshot { try ChatViews.sidebar(recent, $0) }
        for (conversation, entry) in zip(recent, entries) {
            if let range = entry.title.range(of: q, options: options) {
                hits.append(
                    Hit(
                        conversationID: conversation.conversationID, channel: conversation.channel,
                        title: entry.title, field: "title", snippet: Self.snippet(entry.title, range), seq: 0))
            } else {
                let messages = try engine.history(conversation.conversationID, limit: .max)
                if let message = messages.last(where: { $0.text.range(of: q, options: options) != nil }),
                    let range = message.text.range(of: q, options: options)
                {
                    hits.append(
                        Hit(
                            conversationID: conversation.conversationID, channel: conversation.channel,
                            title: entry.title, field: "text", snippet: Self.snippet(message.text, range),
                            seq: message.seq))
                }
            }
            if hits.count >= Self.limit { break }
        }
        return hits
    }

    /// The text around `range`, on one line, at most about 160 characters, with "…" where it was cut.
    static func snippet(_ text: String, _ range: Range<String.Index>) -> String {
        let start = text.index(range.lowerBound, offsetBy: -60, limitedBy: text.startIndex) ?? text.startIndex
        let end = text.index(range.upperBound, offsetBy: 100, limitedBy: text.endIndex) ?? text.endIndex
        let line = text[start..<end].split(whereSeparator: \.isNewline).joined(separator: " ")
        return (start > text.startIndex ? "…" : "") + line + (end < text.endIndex ? "…" : "")
    }
}
