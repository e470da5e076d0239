import EventLog
import Foundation
import Logging
import Projections

/// What the chat pages and the conversation API show, read from the log: the sidebar and a conversation's thread,
/// each assembled inside one LMDB snapshot (a consistent view as of the log's end), and the rules for
/// conversation ids.
struct ChatViews: Sendable {
    let engine: Switchboard
    let settings: WebSettings
    let logger: Logger

    /// Whether `id` can name a conversation in a URL: 1…200 bytes, no control characters, no `/`.
    static func validConversationID(_ id: String) -> Bool {
        (1...200).contains(id.utf8.count) && !id.contains("/")
            && !id.unicodeScalars.contains { $0.properties.generalCategory == .control }
    }

    /// A new web conversation id.
    static func newConversationID() -> String { "web-" + UUID().uuidString.lowercased() }

    /// Why the owner cannot write in `conversation` (another channel's), or `nil` when they can.
    static func readOnlyReason(_ conversation: ConversationState?) -> String? {
        guard let conversation else { return nil }
        if conversation.deletion != nil, conversation.messageCount == 0 { return "This conversation was deleted." }
        guard Channel(stored: conversation.channel) != .web else { return nil }
        return "This \(conversation.channel) conversation is read-only here: the contact writes on "
            + "\(conversation.channel), and the assistant answers there."
    }

    /// The sidebar and the thread of conversation `id` as of the log's current end.
    func chat(_ id: String) throws -> WebPages.Chat {
        let conversation = try engine.conversation(id)
        let recent = try engine.conversations(limit: 100)
        let logger = logger
        let (fold, after, entries) = try engine.log.withSnapshot {
            snapshot -> (ThreadFold, UInt64, [WebPages.SidebarEntry]) in
            let after = try snapshot.lastSeq
            var fold = ThreadFold()
            if let conversation {
                // Every job of the conversation is enqueued after its first record: no lookup is needed.
                var filter = ConversationRecordFilter(conversationID: id) { _ in nil }
                try snapshot.forEach(from: conversation.firstSeq) { record in
                    guard record.seq <= after else { return false }
                    if let event = filter.event(of: record, logger: logger) {
                        fold.apply(seq: record.seq, time: record.timestamp, event)
                    }
                    return true
                }
            }
            let entries = try Self.sidebar(recent, snapshot)
            return (fold, after, entries)
        }
        let title = entries.first { $0.conversationID == id }?.title ?? fold.title ?? conversation?.title ?? "New chat"
        return WebPages.Chat(
            conversationID: id, title: title, entries: entries, thread: fold, after: after,
            readOnlyReason: Self.readOnlyReason(conversation), formClientID: "form-" + UUID().uuidString.lowercased(),
            model: WebPages.modelLine(settings.model),
            deletion: conversation.flatMap { c in
                c.messageCount == 0 ? c.deletion.map { ($0.by, $0.at.date) } : nil
            },
            now: Date())
    }

    /// One conversation of `GET /api/conversations` (and of the sidebar's event stream).
    struct ConversationSummary: Encodable {
        var conversationID: String
        var channel: String
        var title: String
        var lastSeq: UInt64
        var messageCount: Int
        /// The last activity's log time (ISO 8601).
        var lastActive: String?
        /// Deleted (the sidebar drops it).
        var deleted = false
    }

    /// The summary of one conversation as of now (`nil` when it does not exist).
    func summary(of id: String) throws -> ConversationSummary? {
        guard let c = try engine.conversation(id) else { return nil }
        if c.deletion != nil, c.messageCount == 0 {
            return ConversationSummary(
                conversationID: id, channel: c.channel, title: "", lastSeq: c.lastSeq, messageCount: 0, deleted: true)
        }
        let entry = try engine.log.withSnapshot { try Self.sidebar([c], $0) }.first
        return ConversationSummary(
            conversationID: id, channel: c.channel, title: entry?.title ?? id, lastSeq: c.lastSeq,
            messageCount: c.messageCount, lastActive: entry?.lastActive.map(HTML.isoTime))
    }

    /// The sidebar as `GET /api/conversations` answers it: the 100 most recent conversations, newest first.
    func summaries() throws -> [ConversationSummary] {
        let recent = try engine.conversations(limit: 100)
        let entries = try engine.log.withSnapshot { try Self.sidebar(recent, $0) }
        return zip(recent, entries).map { c, entry in
            ConversationSummary(
                conversationID: c.conversationID, channel: c.channel, title: entry.title, lastSeq: c.lastSeq,
                messageCount: c.messageCount, lastActive: entry.lastActive.map(HTML.isoTime))
        }
    }

    /// The sidebar entries of `conversations`: each titled by its first message, with its last activity.
    static func sidebar(_ conversations: [ConversationState], _ snapshot: borrowing Snapshot) throws
        -> [WebPages.SidebarEntry]
    {
        var entries: [WebPages.SidebarEntry] = []
        for c in conversations {
            var title = c.title ?? c.conversationID
            if c.title == nil, let first = try snapshot.record(at: c.firstSeq),
                case .messageReceived(let m)? = try? first.event()
            {
                title = Self.title(m.text, fallback: c.conversationID)
            }
            entries.append(
                WebPages.SidebarEntry(
                    conversationID: c.conversationID, channel: c.channel, title: title,
                    lastActive: try snapshot.record(at: c.lastSeq)?.timestamp.date))
        }
        return entries
    }

    /// A conversation's title: the first line of its first message, at most 60 characters.
    static func title(_ text: String, fallback: String) -> String {
        let line =
            text.split(whereSeparator: \.isNewline).first.map(String.init)?
            .trimmingCharacters(in: .whitespaces) ?? ""
        guard !line.isEmpty else { return fallback }
        return line.count > 60 ? String(line.prefix(59)) + "…" : line
    }
}
