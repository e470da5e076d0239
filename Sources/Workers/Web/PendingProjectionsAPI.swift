// TEMPORARY stand-ins for the Projections API of the issue-12 contract, until it lands on main (then this file is
// deleted). They let the web chat build and its auth, pages and event stream run before the merge.
import EventLog
import Projections

public enum ToolCallStatus: String, Codable, Sendable {
    case called, awaitingApproval = "awaiting_approval", approved, rejected, expired, done, failed
}

public struct ToolCallState: Codable, Sendable, Equatable {
    public var callID: String
}

public enum ApprovalRefusal: Sendable, Equatable {
    case unknownCall
    case notAwaiting(ToolCallStatus)
    case expired
}

public enum ApprovalAnswer: Sendable, Equatable {
    case recorded(ToolCallStatus)
    case refused(ApprovalRefusal)
}

extension InboundMessage {
    /// Stand-in: ignored until the real field lands.
    public var conversationID: String? {
        get { nil }
        set {}
    }
}

extension Switchboard {
    public func conversations(limit: Int = 100) throws -> [ConversationState] {
        Array(try reader.conversations().sorted { $0.lastSeq > $1.lastSeq }.prefix(limit))
    }

    public func awaitingApprovals(conversationID: String? = nil) throws -> [ToolCallState] { [] }

    public func answerApproval(callID: String, approve: Bool, by: String) async throws -> ApprovalAnswer {
        .refused(.unknownCall)
    }
}
