import EventLog
import SwitchboardEvents

/// Where a tool call stands (`p.tool_calls`; the raw value is what is stored).
public enum ToolCallStatus: String, Codable, Sendable, CaseIterable {
    /// Recorded; runs without approval, or its approval was not asked for yet.
    case called
    /// Waiting for the user's answer until its `expiresAt`.
    case awaitingApproval = "awaiting_approval"
    /// The user approved it; the tool may run.
    case approved
    /// The user rejected it; it must not run.
    case rejected
    /// Nobody answered before `expiresAt`: a recorded rejection.
    case expired
    /// It ran and succeeded.
    case done
    /// It ran and failed.
    case failed
}

/// A tool call as the projection holds it, with its approval and result.
public struct ToolCallState: Codable, Sendable, Equatable {
    public var callID: String
    public var jobID: String
    /// The job claim token the call was made under.
    public var jobToken: UInt64
    public var conversationID: String
    public var toolName: String
    public var inputJSON: String
    /// `low`, `medium` or `high`.
    public var risk: String
    public var status: ToolCallStatus
    public var calledAt: LogTimestamp
    /// When an unanswered approval request expires.
    public var expiresAt: LogTimestamp?
    /// Who approved or rejected it.
    public var decidedBy: String?
    public var outputJSON: String?
    public var error: String?
    /// The seq of its `tool.call`.
    public var seq: UInt64
}

/// The newest summary of a conversation's older messages (`p.summaries`).
public struct ConversationSummaryState: Codable, Sendable, Equatable {
    public var summary: String
    /// The last message seq folded into ``summary``.
    public var throughSeq: UInt64
    /// The seq of its `conversation.summarized`.
    public var seq: UInt64
}

/// Why a job's turn events were refused (recorded as the `reason` of a `command.rejected` `job.turn`).
public enum TurnRefusal: String, Sendable, Equatable, CaseIterable {
    /// No such job.
    case unknownJob = "unknown_job"
    /// The job is not running (completed, dead, or waiting for a claim).
    case notRunning = "not_running"
    /// The token is not the job's current claim token: another attempt owns the job.
    case staleToken = "stale_token"
    /// The claim's visibility ran out (log time) without a heartbeat; the next claim will settle it.
    case claimExpired = "claim_expired"
    /// A tool result or approval request names a call this job never made.
    case unknownCall = "unknown_call"
    /// A tool result for a call still waiting for its approval.
    case notApproved = "not_approved"
    /// An event that is not a turn event, names another job or token, repeats a call id or a result.
    case invalidEvent = "invalid_event"
}

/// The outcome of ``Switchboard/recordTurn(jobID:token:_:)``.
public enum TurnWriteResult: Sendable, Equatable {
    /// Appended; `lastSeq` is the seq of the last event.
    case accepted(lastSeq: UInt64)
    /// Nothing was appended but a `command.rejected`.
    case rejected(TurnRefusal)
}

/// Why an approval answer changed nothing.
public enum ApprovalRefusal: Sendable, Equatable {
    /// No such call.
    case unknownCall
    /// The call is not waiting for an answer (it never needed one, or it was answered or expired).
    case notAwaiting(ToolCallStatus)
    /// The answer came after the request expired; the expiry is recorded instead.
    case expired
}

/// The outcome of ``Switchboard/answerApproval(callID:approve:by:)``.
public enum ApprovalAnswer: Sendable, Equatable {
    /// Recorded: `approved` or `rejected`.
    case recorded(ToolCallStatus)
    case refused(ApprovalRefusal)
}

/// The approval step names of `tool.approval` (its stored `decision`).
public enum ApprovalStep: String, Sendable, CaseIterable {
    case requested, approved, rejected, expired
}

/// The deciders of a job's turn (its streamed reply, tool calls and their approvals): pure functions of the job,
/// the calls they name, the command and the log time.
public enum TurnDecider {
    /// The `p.approvals_due` key of a call: its expiry as an order key, a 0 byte, the call id.
    static func dueKey(_ expiresAt: LogTimestamp, _ callID: String) -> [UInt8] {
        var bytes = withUnsafeBytes(of: orderKey(expiresAt).bigEndian) { Array($0) }
        bytes.append(0)
        bytes.append(contentsOf: callID.utf8)
        return bytes
    }

    /// Decides whether `events` may be appended for `jobID` under `token`: all or none, only while `token` is the
    /// running job's current claim and the claim is visible at `now`. `calls` holds the stored calls the events
    /// name (by call id).
    public static func record(
        _ events: [SwitchboardEvent], job: JobState?, jobID: String, token: UInt64, owner: Owner,
        calls: [String: ToolCallState], now: LogTimestamp, nextSeq: UInt64
    ) -> Decision<TurnWriteResult> {
        func refuse(_ reason: TurnRefusal) -> Decision<TurnWriteResult> {
            Decision(
                .rejected(reason),
                events: [
                    .commandRejected(
                        CommandRejected(
                            command: "job.turn", subject: jobID, reason: reason.rawValue, presentedToken: token,
                            currentToken: job?.token, workerID: owner.workerID, instance: owner.instance))
                ],
                correlationIDs: [job?.conversationID])
        }
        guard let job else { return refuse(.unknownJob) }
        guard job.token == token else { return refuse(.staleToken) }
        guard job.status == .running else { return refuse(.notRunning) }
        if let deadline = job.visibleUntil, now > deadline { return refuse(.claimExpired) }
        guard !events.isEmpty else { return refuse(.invalidEvent) }
        var statuses = calls.mapValues(\.status)
        func owned(_ eventJobID: String, _ eventToken: UInt64) -> Bool { eventJobID == jobID && eventToken == token }
        for event in events {
            switch event {
            case .assistantDelta(let e):
                guard owned(e.jobID, e.jobToken), e.conversationID == job.conversationID else {
                    return refuse(.invalidEvent)
                }
            case .assistantMessage(let e):
                guard owned(e.jobID, e.jobToken), e.conversationID == job.conversationID else {
                    return refuse(.invalidEvent)
                }
            case .conversationSummarized(let e):
                guard owned(e.jobID, e.jobToken), e.conversationID == job.conversationID else {
                    return refuse(.invalidEvent)
                }
            case .toolCall(let e):
                guard owned(e.jobID, e.jobToken), e.conversationID == job.conversationID, !e.callID.isEmpty,
                    statuses[e.callID] == nil
                else { return refuse(.invalidEvent) }
                statuses[e.callID] = .called
            case .toolApproval(let e):
                guard e.decision == ApprovalStep.requested.rawValue, e.jobID == jobID, e.expiresAt != nil else {
                    return refuse(.invalidEvent)
                }
                guard let status = statuses[e.callID], calls[e.callID].map({ $0.jobID == jobID }) ?? true else {
                    return refuse(.unknownCall)
                }
                guard status == .called else { return refuse(.invalidEvent) }
                statuses[e.callID] = .awaitingApproval
            case .toolResult(let e):
                guard owned(e.jobID, e.jobToken) else { return refuse(.invalidEvent) }
                guard let status = statuses[e.callID], calls[e.callID].map({ $0.jobID == jobID }) ?? true else {
                    return refuse(.unknownCall)
                }
                switch status {
                case .awaitingApproval: return refuse(.notApproved)
                case .called, .approved: statuses[e.callID] = e.error == nil ? .done : .failed
                case .rejected, .expired:
                    // The refusal is reported to the model as an error result; the tool never ran.
                    guard e.outputJSON == nil else { return refuse(.notApproved) }
                    statuses[e.callID] = .failed
                case .done, .failed: return refuse(.invalidEvent)
                }
            default:
                return refuse(.invalidEvent)
            }
        }
        return Decision(
            .accepted(lastSeq: nextSeq + UInt64(events.count) - 1), events: events,
            correlationIDs: Array(repeating: job.conversationID, count: events.count))
    }

    /// Decides a user's answer to one specific call: recorded while it awaits approval and has not expired at
    /// `now`; an answer after the expiry records the expiry instead.
    public static func answer(
        _ call: ToolCallState?, callID: String, approve: Bool, by: String, now: LogTimestamp
    ) -> Decision<ApprovalAnswer> {
        guard let call else { return Decision(.refused(.unknownCall)) }
        guard call.status == .awaitingApproval else { return Decision(.refused(.notAwaiting(call.status))) }
        if let expiresAt = call.expiresAt, now > expiresAt {
            return Decision(
                .refused(.expired), events: [approval(call, .expired, by: nil)], correlationIDs: [call.conversationID])
        }
        let step: ApprovalStep = approve ? .approved : .rejected
        return Decision(
            .recorded(approve ? .approved : .rejected), events: [approval(call, step, by: by)],
            correlationIDs: [call.conversationID])
    }

    /// Decides the expiry of the awaiting calls `due` (those whose `expiresAt` is before `now`).
    public static func expire(_ due: [ToolCallState], now: LogTimestamp) -> Decision<[String]> {
        let expired = due.filter { call in
            call.status == .awaitingApproval && call.expiresAt.map { now > $0 } ?? false
        }
        return Decision(
            expired.map(\.callID), events: expired.map { approval($0, .expired, by: nil) },
            correlationIDs: expired.map(\.conversationID))
    }

    private static func approval(_ call: ToolCallState, _ step: ApprovalStep, by: String?) -> SwitchboardEvent {
        .toolApproval(
            ToolApproval(
                callID: call.callID, jobID: call.jobID, conversationID: call.conversationID, decision: step.rawValue,
                decidedBy: by))
    }
}

extension Switchboard {
    /// Appends a job's turn events (`assistant.delta`, `assistant.message`, `tool.call`, `tool.result`,
    /// `conversation.summarized`, and `tool.approval` `requested`), all or none, only while `token` is the running
    /// job's current claim, visible at the transaction's log time. A refusal appends a `command.rejected` only.
    public func recordTurn(jobID: String, token: UInt64, _ events: [SwitchboardEvent], as owner: Owner? = nil)
        async throws -> TurnWriteResult
    {
        let owner = owner ?? self.owner
        return try await decide { try TurnShell.record(events, jobID: jobID, token: token, owner: owner, &$0) }
    }

    /// A user's answer to one specific call (see ``TurnDecider/answer(_:callID:approve:by:now:)``).
    public func answerApproval(callID: String, approve: Bool, by: String) async throws -> ApprovalAnswer {
        try await decide { try TurnShell.answer(callID: callID, approve: approve, by: by, &$0) }
    }

    /// Records `expired` for every call awaiting approval whose `expiresAt` is before the log time; returns their
    /// call ids.
    public func expireApprovals() async throws -> [String] {
        try await decide { try TurnShell.expire(&$0) }
    }

    public func toolCall(_ callID: String) throws -> ToolCallState? { try reader.toolCall(callID) }

    /// Calls awaiting approval (of one conversation, or all), by expiry, earliest first.
    public func awaitingApprovals(conversationID: String? = nil) throws -> [ToolCallState] {
        try reader.awaitingApprovals(conversationID: conversationID)
    }

    public func conversationSummary(_ conversationID: String) throws -> ConversationSummaryState? {
        try reader.conversationSummary(conversationID)
    }

    /// Conversations, most recently active first.
    public func conversations(limit: Int = 100) throws -> [ConversationState] {
        try reader.recentConversations(limit: limit)
    }
}

extension StateReader {
    public func toolCall(_ callID: String) throws -> ToolCallState? {
        try log.withSnapshot { try $0.load(ToolCallState.self, table(ProjectionTables.toolCalls), Key(callID)) }
    }

    /// Calls awaiting approval (of one conversation, or all), by expiry, earliest first.
    public func awaitingApprovals(conversationID: String? = nil) throws -> [ToolCallState] {
        try log.withSnapshot { snapshot in
            var callIDs: [String] = []
            try snapshot.scan(table(ProjectionTables.approvalsDue)) { key, _ in
                if key.count > 9 { callIDs.append(String(decoding: key[9...], as: UTF8.self)) }
                return true
            }
            return try callIDs.compactMap { callID in
                try snapshot.load(ToolCallState.self, table(ProjectionTables.toolCalls), Key(callID))
            }.filter { call in
                call.status == .awaitingApproval && (conversationID.map { $0 == call.conversationID } ?? true)
            }
        }
    }

    public func conversationSummary(_ conversationID: String) throws -> ConversationSummaryState? {
        try log.withSnapshot {
            try $0.load(ConversationSummaryState.self, table(ProjectionTables.summaries), Key(conversationID))
        }
    }

    /// Conversations, most recently active first (`p.conversation_activity`).
    public func recentConversations(limit: Int = 100) throws -> [ConversationState] {
        try log.withSnapshot { snapshot in
            var ids: [String] = []
            try snapshot.scan(table(ProjectionTables.conversationActivity)) { key, _ in
                guard key.count > 9 else { return true }
                ids.append(String(decoding: key[9...], as: UTF8.self))
                return ids.count < limit
            }
            return try ids.compactMap {
                try snapshot.load(ConversationState.self, table(ProjectionTables.conversations), Key($0))
            }
        }
    }
}

/// The `p.conversation_activity` key of a conversation last active at `lastSeq`: newest first in key order.
func activityKey(_ lastSeq: UInt64, _ conversationID: String) -> [UInt8] {
    var bytes = withUnsafeBytes(of: (UInt64.max - lastSeq).bigEndian) { Array($0) }
    bytes.append(0)
    bytes.append(contentsOf: conversationID.utf8)
    return bytes
}
