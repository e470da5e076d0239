import EventLog
import Foundation
import SwitchboardEvents
import SwitchboardJSON

/// What conversations' deletions hide from every reader of records (`replay export`, `tail`, `timeline`): a
/// record correlated to a deleted conversation, up to its deletion's `throughSeq`, shows only that it was
/// deleted, when and by whom. The `conversation.deleted` record itself stays readable (it holds no text).
///
/// The bytes stay in the log file (an append-only log is not rewritten; docs/architecture.md, "Deleting a
/// conversation"): every reader of this build honours the deletion.
public struct Redactions: Sendable {
    /// The deleted conversations, by id.
    public private(set) var deleted: [String: ConversationDeletion]

    public init(_ deleted: [String: ConversationDeletion] = [:]) { self.deleted = deleted }

    /// The deletions of `log`: from its projection when it is this build's, else from the log's
    /// `conversation.deleted` records (an older projection does not have them).
    public static func of(_ log: EventLog) throws -> Redactions {
        if log.projections == .current { return Redactions(try StateReader(log: log).redactions()) }
        var found = Redactions()
        try log.withSnapshot { snapshot in
            try snapshot.forEach(from: 1) { record in
                try found.note(record)
                return true
            }
        }
        return found
    }

    /// Takes in a `conversation.deleted` record (a reader following the log calls it for every record).
    /// - Throws: when a deletion record does not decode: the reader must stop rather than show what it hides.
    public mutating func note(_ record: Record) throws {
        guard record.type == ConversationDeleted.eventType,
            case .conversationDeleted(let e)? = try record.event()
        else { return }
        deleted[e.conversationID] = ConversationDeletion(throughSeq: e.throughSeq, by: e.by, at: record.timestamp)
    }

    /// The deletion that hides `record`, or `nil` when it is readable.
    public func hiding(_ record: Record) -> ConversationDeletion? {
        guard let id = record.correlationID, let deletion = deleted[id], record.seq <= deletion.throughSeq,
            record.type != ConversationDeleted.eventType
        else { return nil }
        return deletion
    }

    /// The payload shown instead of a hidden record's.
    static func placeholder(_ deletion: ConversationDeletion, conversationID: String) -> JSONValue {
        .object([
            "redacted": .bool(true), "conversationID": .string(conversationID),
            "deletedAt": .string(deletion.at.description), "deletedBy": .string(deletion.by),
        ])
    }
}
