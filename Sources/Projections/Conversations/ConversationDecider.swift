import EventLog
import Foundation
import SwitchboardEvents

/// Why a conversation control changed nothing (nothing is written; the web answers 404 or 409 with it).
public enum ControlRefusal: String, Sendable, Equatable, CaseIterable, Error {
    /// No such conversation.
    case unknownConversation = "unknown_conversation"
    /// The job or message named is not the conversation's.
    case unknownTarget = "unknown_target"
    /// Only the web chat's own conversations are answered from the web (WhatsApp and Telegram ones are read-only
    /// there).
    case readOnly = "read_only"
    /// The conversation was deleted.
    case deleted
    /// A reply to that message is still being written: stop it first.
    case busy
    /// The title is empty or longer than ``ConversationDecider/maxTitleLength``.
    case invalidTitle = "invalid_title"
}

/// What a Stop did.
public enum StopOutcome: Sendable, Equatable {
    /// The job was cancelled now; `text` is what it had streamed, kept as its final reply.
    case stopped(text: String)
    /// The job had already ended (completed, dead or stopped): nothing was written.
    case alreadyEnded(JobStatus)
}

/// What a deletion did.
public enum DeleteOutcome: Sendable, Equatable {
    /// Deleted now: records through `throughSeq` are redacted; `cancelledJobs` were stopped with it.
    case deleted(throughSeq: UInt64, cancelledJobs: Int)
    /// Already deleted, with nothing new since: nothing was written.
    case alreadyDeleted(ConversationDeletion)
}

/// The conversation controls' deciders (Stop, Regenerate, rename, delete): pure functions of the state they
/// read, the command and the next seq. ``ConversationShell`` loads the state inside the write transaction.
public enum ConversationDecider {
    /// The longest title (characters).
    public static let maxTitleLength = 200

    /// The message id of a job's reply (also its delivery's idempotency key stem).
    public static func replyMessageID(jobID: String) -> String { "reply:\(jobID)" }

    /// Refuses a control on a conversation that does not exist, is deleted, or (unless `anyChannel`) is not the
    /// web chat's.
    static func check(_ conversation: ConversationState?, anyChannel: Bool = false) -> ControlRefusal? {
        guard let conversation else { return .unknownConversation }
        if conversation.deletion != nil, conversation.messageCount == 0 { return .deleted }
        if !anyChannel, conversation.channel != "web" { return .readOnly }
        return nil
    }

    /// Stops `job`: a pending or running job is cancelled (`job.cancelled`, never retried), its streamed text
    /// kept as its final `assistant.message` (`finishReason: "stopped"`), and its calls awaiting approval
    /// expired — in that order, in one transaction. Every later write under its token is refused.
    /// - Parameters:
    ///   - streamed: the text the job streamed under its current token (`p.reply_deltas`).
    ///   - awaiting: the job's calls awaiting approval.
    public static func stop(
        conversation: ConversationState?, job: JobState?, streamed: String, awaiting: [ToolCallState], by: String
    ) -> Decision<Result<StopOutcome, ControlRefusal>> {
        if let refusal = check(conversation) { return Decision(.failure(refusal)) }
        guard let conversation, let job, job.conversationID == conversation.conversationID,
            job.kind != JobKind.subagent.rawValue
        else { return Decision(.failure(.unknownTarget)) }
        switch job.status {
        case .completed, .dead, .cancelled: return Decision(.success(.alreadyEnded(job.status)))
        case .pending, .running: break
        }
        let events = stopEvents(job, streamed: streamed, awaiting: awaiting, by: by, reason: "stopped")
        return Decision(
            .success(.stopped(text: streamed)), events: events,
            correlationIDs: Array(repeating: job.conversationID, count: events.count))
    }

    /// The events of a Stop of a pending or running `job`: the text it streamed as its final `assistant.message`
    /// (`finishReason: "stopped"`; none for a job that never ran and streamed nothing), then ``cancellation``.
    static func stopEvents(
        _ job: JobState, streamed: String, awaiting: [ToolCallState], by: String, reason: String
    ) -> [SwitchboardEvent] {
        var events = cancellation(job, streamed: streamed, awaiting: awaiting, by: by, reason: reason)
        if job.status == .running || !streamed.isEmpty {
            events.insert(
                .assistantMessage(
                    AssistantMessage(
                        messageID: replyMessageID(jobID: job.jobID), conversationID: job.conversationID,
                        jobID: job.jobID, jobToken: job.token, text: streamed, final: true, finishReason: "stopped")),
                at: 0)
        }
        return events
    }

    /// The events that end `job` without retry: its awaiting approvals expired, then `job.cancelled`.
    static func cancellation(
        _ job: JobState, streamed: String, awaiting: [ToolCallState], by: String, reason: String
    ) -> [SwitchboardEvent] {
        var events: [SwitchboardEvent] = awaiting.filter { $0.jobID == job.jobID && $0.status == .awaitingApproval }
            .map {
                .toolApproval(
                    ToolApproval(
                        callID: $0.callID, jobID: $0.jobID, conversationID: $0.conversationID,
                        decision: ApprovalStep.expired.rawValue))
            }
        events.append(.jobCancelled(JobCancelled(jobID: job.jobID, token: job.token, by: by, reason: reason)))
        return events
    }

    /// Allows another reply to user message `trigger` (Regenerate): refused while a reply to it is still pending
    /// or running. The shell then enqueues the job (`kind: regenerate`).
    /// - Parameter active: the conversation's pending and running jobs.
    public static func regenerate(
        conversation: ConversationState?, trigger: HistoryMessage?, active: [JobState]
    ) -> Result<Void, ControlRefusal> {
        if let refusal = check(conversation) { return .failure(refusal) }
        guard let trigger, trigger.role == "user" else { return .failure(.unknownTarget) }
        if active.contains(where: { $0.triggeringMessageSeq == trigger.seq }) { return .failure(.busy) }
        return .success(())
    }

    /// Renames a conversation (any channel's): the title trimmed, its line breaks made spaces.
    public static func rename(conversation: ConversationState?, title: String, by: String) -> Decision<
        Result<String, ControlRefusal>
    > {
        if let refusal = check(conversation, anyChannel: true) { return Decision(.failure(refusal)) }
        guard let conversation else { return Decision(.failure(.unknownConversation)) }
        let clean = title.split(whereSeparator: \.isNewline).joined(separator: " ")
            .trimmingCharacters(in: .whitespaces)
        guard !clean.isEmpty, clean.count <= maxTitleLength else { return Decision(.failure(.invalidTitle)) }
        return Decision(
            .success(clean),
            events: [
                .conversationRenamed(
                    ConversationRenamed(conversationID: conversation.conversationID, title: clean, by: by))
            ],
            correlationIDs: [conversation.conversationID])
    }

    /// Deletes a conversation (any channel's): its pending and running jobs are cancelled, then
    /// `conversation.deleted` redacts every record of it through its own seq.
    public static func delete(
        conversation: ConversationState?, active: [JobState], awaiting: [ToolCallState], by: String, nextSeq: UInt64
    ) -> Decision<Result<DeleteOutcome, ControlRefusal>> {
        guard let conversation else { return Decision(.failure(.unknownConversation)) }
        if let deletion = conversation.deletion, conversation.messageCount == 0 {
            return Decision(.success(.alreadyDeleted(deletion)))
        }
        var events: [SwitchboardEvent] = []
        for job in active where job.conversationID == conversation.conversationID {
            events += cancellation(job, streamed: "", awaiting: awaiting, by: by, reason: "conversation_deleted")
        }
        let cancelled = active.count
        let throughSeq = nextSeq + UInt64(events.count)
        events.append(
            .conversationDeleted(
                ConversationDeleted(conversationID: conversation.conversationID, throughSeq: throughSeq, by: by)))
        return Decision(
            .success(.deleted(throughSeq: throughSeq, cancelledJobs: cancelled)), events: events,
            correlationIDs: Array(repeating: conversation.conversationID, count: events.count))
    }
}
