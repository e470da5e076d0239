import EventLog
import Foundation
import SwitchboardEvents

/// The thread of one conversation as the chat shows it, folded from the conversation's records in log order.
/// `chat.js` folds the SSE events the same way (same states, same status texts), so a page rendered here and
/// continued by the script agree.
struct ThreadFold {
    /// An assistant reply's `data-state`.
    enum ReplyState: String, Codable {
        case streaming, final, failed
    }

    /// An approval card's `data-status`.
    enum ApprovalStatus: String, Codable {
        case awaiting, approved, rejected, expired
    }

    enum Item: Hashable {
        case user(String)
        case reply(String)
        case approval(String)
        /// A command's answer (`command.handled`), by the command message's seq.
        case note(UInt64)
    }

    struct UserMessage {
        var clientID: String
        var text: String
        var seq: UInt64
        var time: LogTimestamp
        /// The user message it follows (`0`: none), as the projection resolves it.
        var parentSeq: UInt64 = 0
        /// The reply version shown when it was written, when named.
        var afterJobID: String?
    }

    struct Reply {
        var jobID: String
        var state = ReplyState.streaming
        var status = "queued"
        /// The claim token of the deltas shown (a higher one restarts the text).
        var token: UInt64 = 0
        /// The index the next delta must have.
        var nextIndex = 0
        var text = ""
        var failure: String?
        var model: String?
        /// Reply parts queued as deliveries (WhatsApp/Telegram), by part number: the text when no
        /// `assistant.message` is final.
        var parts: [Int: String] = [:]
        /// Whether ``text`` was joined from ``parts``.
        var textFromParts = false
        /// When the reply was asked for, then when it was finished.
        var time: LogTimestamp?
        /// Finished at the model's length limit (`finishReason: length`): the page offers Continue.
        var cut = false
        /// Stopped by a person (`job.cancelled`): the text streamed until then is its final text.
        var stopped = false
        /// Why the reply could not be delivered to the contact (WhatsApp, Telegram), once its send failed for good.
        var undelivered: String?
        /// The user message it answers (its versions share it); `nil` for a job that answers none.
        var triggerSeq: UInt64?
        /// The seq of its `job.enqueued` (its place among the conversation's nodes).
        var enqueueSeq: UInt64 = 0

        var messageID: String { "reply:\(jobID)" }

        var joinedParts: String { parts.sorted { $0.key < $1.key }.map(\.value).joined(separator: "\n") }
    }

    struct Approval {
        var callID: String
        var jobID: String
        var toolName: String
        var inputJSON: String
        var risk: String
        var status = ApprovalStatus.awaiting
        var expiresAt: LogTimestamp?
        var decidedBy: String?
    }

    private(set) var items: [Item] = []
    private(set) var users: [String: UserMessage] = [:]
    private(set) var replies: [String: Reply] = [:]
    private(set) var approvals: [String: Approval] = [:]
    /// Commands' answers by their message's seq.
    private(set) var notes: [UInt64: CommandHandled] = [:]
    /// The job of each reply delivery (a failed send names only its delivery).
    private var deliveryJobs: [String: String] = [:]
    private var calls: [String: ToolCall] = [:]
    /// The last seq folded.
    private(set) var lastSeq: UInt64 = 0
    /// The newest user message: the parent of a message that names none.
    private var lastUserSeq: UInt64 = 0
    /// The owner's title (`conversation.renamed`).
    private(set) var title: String?
    /// Who deleted the conversation and when, once a `conversation.deleted` was folded (everything before it
    /// is dropped).
    private(set) var deletion: (by: String, time: LogTimestamp)?
    /// The log time of the record being folded.
    private var folding: LogTimestamp?

    private mutating func reply(_ jobID: String) -> Reply {
        if let reply = replies[jobID] { return reply }
        items.append(.reply(jobID))
        var reply = Reply(jobID: jobID)
        reply.time = folding
        replies[jobID] = reply
        return reply
    }

    private mutating func update(_ jobID: String, _ change: (inout Reply) -> Void) {
        var current = reply(jobID)
        change(&current)
        replies[jobID] = current
    }

    mutating func apply(seq: UInt64, time: LogTimestamp, _ event: SwitchboardEvent) {
        lastSeq = max(lastSeq, seq)
        folding = time
        switch event {
        case .messageReceived(let e):
            if users[e.externalID] == nil { items.append(.user(e.externalID)) }
            users[e.externalID] = UserMessage(
                clientID: e.externalID, text: e.text, seq: seq, time: time, parentSeq: e.parentSeq ?? lastUserSeq,
                afterJobID: e.afterJobID)
            lastUserSeq = seq
        case .jobEnqueued(let e):
            // A sub-agent's job has no reply of its own; a reminder's appears when it fires.
            guard e.kind != "subagent", e.kind != "scheduled" else { return }
            update(e.jobID) {
                $0.status = "queued"
                $0.triggerSeq = e.triggeringMessageSeq
                $0.enqueueSeq = seq
            }
        case .jobCancelled(let e):
            guard replies[e.jobID] != nil else { return }
            update(e.jobID) { reply in
                reply.stopped = true
                guard reply.state != .final else { return }
                reply.state = .final
                reply.status = ""
                reply.failure = nil
                reply.time = time
            }
        case .jobRetriggered(let e):
            guard replies[e.jobID] != nil else { return }
            update(e.jobID) { $0.triggerSeq = e.messageSeq }
        case .commandHandled(let e):
            if notes[e.messageSeq] == nil { items.append(.note(e.messageSeq)) }
            notes[e.messageSeq] = e
        case .conversationRenamed(let e):
            title = e.title
        case .conversationDeleted(let e):
            self = ThreadFold()
            lastSeq = seq
            deletion = (e.by, time)
        case .jobClaimed(let e):
            guard replies[e.jobID] != nil else { return }
            update(e.jobID) { reply in
                guard reply.state == .streaming else { return }
                reply.status = e.attempt > 1 ? "thinking (attempt \(e.attempt))" : "thinking"
            }
        case .assistantDelta(let e):
            update(e.jobID) { reply in
                guard reply.state == .streaming, e.jobToken >= reply.token else { return }
                if e.jobToken > reply.token {
                    reply.token = e.jobToken
                    reply.text = ""
                    reply.nextIndex = 0
                }
                guard e.index >= reply.nextIndex else { return }  // a duplicate
                reply.text += e.text
                reply.nextIndex = e.index + 1
                reply.status = "writing"
            }
        case .assistantMessage(let e):
            update(e.jobID) { reply in
                if e.final {
                    reply.state = .final
                    reply.time = time
                    reply.cut = e.finishReason == "length"
                    reply.stopped = e.finishReason == "stopped"
                    reply.text = e.text
                    reply.model = e.modelUsed
                    reply.status = ""
                    reply.failure = nil
                } else if reply.state == .streaming, e.jobToken >= reply.token {
                    reply.token = e.jobToken
                    reply.text = e.text
                }
            }
        case .toolCall(let e):
            calls[e.callID] = e
            update(e.jobID) { reply in
                if reply.state == .streaming { reply.status = "using \(e.toolName)" }
            }
        case .toolApproval(let e):
            applyApproval(e)
        case .toolResult(let e):
            guard replies[e.jobID] != nil else { return }
            update(e.jobID) { reply in
                if reply.state == .streaming { reply.status = "thinking" }
            }
        case .jobFailed(let e):
            guard replies[e.jobID] != nil else { return }
            update(e.jobID) { reply in
                if reply.state == .streaming { reply.status = "attempt \(e.attempt) failed (\(e.reason))" }
            }
        case .jobRetried(let e):
            guard replies[e.jobID] != nil else { return }
            update(e.jobID) { reply in
                if reply.state == .streaming { reply.status = "retrying (attempt \(e.attempt)) after \(e.reason)" }
            }
        case .jobDead(let e):
            guard replies[e.jobID] != nil else { return }
            update(e.jobID) { reply in
                guard reply.state != .final else { return }
                reply.state = .failed
                reply.status = "failed"
                reply.failure = Self.failureText(reason: e.lastReason, message: e.lastMessage)
            }
        case .jobRequeued(let e):
            guard replies[e.jobID] != nil else { return }
            update(e.jobID) { reply in
                guard reply.state != .final else { return }
                reply.state = .streaming
                reply.status = "queued"
                reply.failure = nil
            }
        case .jobCompleted(let e):
            guard replies[e.jobID] != nil else { return }
            update(e.jobID) { reply in
                guard reply.state != .final else { return }
                reply.state = .final
                reply.status = ""
                if reply.text.isEmpty, !reply.parts.isEmpty {
                    reply.text = reply.joinedParts
                    reply.textFromParts = true
                }
                if reply.model == nil { reply.model = e.modelUsed }
            }
        case .deliveryFailed(let e):
            guard e.permanent, let jobID = deliveryJobs[e.deliveryID], replies[jobID] != nil else { return }
            update(jobID) { $0.undelivered = Self.undeliveredText(code: e.errorCode, message: e.message) }
        case .deliveryEnqueued(let e):
            guard let jobID = e.jobID else { return }
            deliveryJobs[e.deliveryID] = jobID
            update(jobID) { reply in
                reply.parts[e.part] = e.text
                if reply.state == .final, reply.text.isEmpty || reply.textFromParts {
                    reply.text = reply.joinedParts
                    reply.textFromParts = true
                }
            }
        case .contactUpdated, .commandRejected, .jobHeartbeat, .deliveryClaimed, .deliveryAttempted, .deliverySent,
            .deliveryUncertain, .leaseAcquired, .leaseRenewed, .leaseReleased, .leaseExpired,
            .leaseDenied, .channelConnected, .channelDisconnected, .inboundIgnored, .webhookRejected,
            .deliveryStatusReported, .sessionEntrySet, .sessionEntryRemoved,
            .workerStarted, .workerStopped, .conversationSummarized:
            break
        }
    }

    /// The stored replies of the fold (for the layout).
    var replyList: [Reply] { Array(replies.values) }
    /// The confirmed user messages of the fold (for the layout).
    var userList: [UserMessage] { Array(users.values) }

    private mutating func applyApproval(_ e: ToolApproval) {
        let status: ApprovalStatus
        switch e.decision {
        case "requested": status = .awaiting
        case "approved": status = .approved
        case "rejected": status = .rejected
        case "expired": status = .expired
        default: return  // a newer build's step
        }
        let call = calls[e.callID]
        if approvals[e.callID] == nil {
            // Above the reply it controls (the reply's text follows from the approved call), as the script does.
            if let index = items.firstIndex(of: .reply(e.jobID)) {
                items.insert(.approval(e.callID), at: index)
            } else {
                items.append(.approval(e.callID))
            }
            approvals[e.callID] = Approval(
                callID: e.callID, jobID: e.jobID, toolName: call?.toolName ?? "tool",
                inputJSON: call?.inputJSON ?? "{}",
                risk: call?.risk ?? "unknown")
        }
        approvals[e.callID]?.status = status
        if let expiresAt = e.expiresAt { approvals[e.callID]?.expiresAt = expiresAt }
        if let by = e.decidedBy { approvals[e.callID]?.decidedBy = by }
        guard replies[e.jobID] != nil else { return }
        update(e.jobID) { reply in
            guard reply.state == .streaming else { return }
            reply.status = status == .awaiting ? "waiting for your approval" : "thinking"
        }
    }

    /// Why a reply never reached the contact, as the script says it.
    static func undeliveredText(code: String?, message: String) -> String {
        if code == "131047" {
            return "Not delivered: WhatsApp takes only template messages more than 24 hours after the contact last "
                + "wrote."
        }
        return "Not delivered: \(message)" + (code.map { " (\($0))" } ?? "")
    }

    static func failureText(reason: String, message: String) -> String {
        let why: String
        switch reason {
        case "rate_limit": why = "the model is rate limited"
        case "timeout": why = "the model did not answer in time"
        case "server_error": why = "the model's server failed"
        case "network": why = "the model could not be reached"
        case "claim_expired": why = "the worker stopped answering"
        case "permanent": why = "the request was refused"
        default: why = reason
        }
        return message.isEmpty ? "The reply failed: \(why)." : "The reply failed: \(why) — \(message)"
    }
}
