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
    }

    struct UserMessage {
        var clientID: String
        var text: String
        var seq: UInt64
        var time: LogTimestamp
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
    private var calls: [String: ToolCall] = [:]
    /// The last seq folded.
    private(set) var lastSeq: UInt64 = 0
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
            users[e.externalID] = UserMessage(clientID: e.externalID, text: e.text, seq: seq, time: time)
        case .jobEnqueued(let e):
            guard e.kind != "subagent" else { return }
            update(e.jobID) { $0.status = "queued" }
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
        case .deliveryEnqueued(let e):
            guard let jobID = e.jobID else { return }
            update(jobID) { reply in
                reply.parts[e.part] = e.text
                if reply.state == .final, reply.text.isEmpty || reply.textFromParts {
                    reply.text = reply.joinedParts
                    reply.textFromParts = true
                }
            }
        case .contactUpdated, .commandRejected, .jobHeartbeat, .deliveryClaimed, .deliveryAttempted, .deliverySent,
            .deliveryFailed, .deliveryUncertain, .leaseAcquired, .leaseRenewed, .leaseReleased, .leaseExpired,
            .leaseDenied, .channelConnected, .channelDisconnected, .inboundIgnored, .webhookRejected,
            .deliveryStatusReported, .sessionEntrySet, .sessionEntryRemoved,
            .workerStarted, .workerStopped, .conversationSummarized:
            break
        }
    }

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

// MARK: - Rendering (the same markup chat.js builds)

extension ThreadFold {
    /// The thread's items as HTML.
    func html(now: Date) -> String {
        var out = ""
        for item in items {
            switch item {
            case .user(let id):
                guard let message = users[id] else { continue }
                out += Self.userHTML(message, now: now)
            case .reply(let id):
                guard let reply = replies[id] else { continue }
                out += Self.replyHTML(reply, now: now)
            case .approval(let id):
                guard let approval = approvals[id] else { continue }
                out += Self.approvalHTML(approval)
            }
        }
        return out
    }

    static func userHTML(_ message: UserMessage, now: Date) -> String {
        let date = message.time.date
        return """
            <div class="msg" data-role="user" data-client-id="\(HTML.escape(message.clientID))" \
            data-seq="\(message.seq)"><div class="meta"><span class="who">You</span> \
            \(timeHTML(date, now: now))</div>\
            <div class="body">\(HTML.escape(message.text))</div></div>
            """
    }

    /// A message's time: relative, the absolute one on hover (the script rewrites both in the reader's zone).
    static func timeHTML(_ date: Date, now: Date) -> String {
        "<time datetime=\"\(HTML.isoTime(date))\" title=\"\(HTML.absoluteTime(date))\">"
            + "\(HTML.relativeTime(date, now: now))</time>"
    }

    /// The note under a reply cut at the length limit, with its Continue button (the script writes the same).
    static let cutHTML =
        "<p class=\"cut\">The reply was cut at the model’s length limit. "
        + "<button type=\"button\" data-action=\"continue\">Continue</button></p>"

    static func replyHTML(_ reply: Reply, now: Date) -> String {
        let body: String
        switch reply.state {
        case .failed:
            body =
                (reply.text.isEmpty ? "" : Markdown.render(reply.text))
                + "<p class=\"failure\">\(HTML.escape(reply.failure ?? "The reply failed."))</p>"
        case .final:
            body =
                (reply.text.isEmpty ? "<p class=\"empty\">(no text)</p>" : Markdown.render(reply.text))
                + (reply.cut ? cutHTML : "")
        case .streaming:
            body = Markdown.render(reply.text)
        }
        let model = reply.model.map { " · \(HTML.escape($0))" } ?? ""
        return """
            <div class="msg" data-role="assistant" data-state="\(reply.state.rawValue)"\(reply.cut ? " data-cut" : "") \
            data-message-id="\(HTML.escape(reply.messageID))" data-job-id="\(HTML.escape(reply.jobID))" \
            aria-busy="\(reply.state == .streaming)"><div class="meta"><span class="who">Assistant</span>\
            <span class="model">\(model)</span> \(reply.time.map { timeHTML($0.date, now: now) + " " } ?? "")\
            <span class="status">\(HTML.escape(reply.status))</span></div>\
            <div class="body">\(body)</div><div class="actions"><button type="button" class="copy" \
            data-action="copy">Copy</button></div></div>
            """
    }

    static func approvalHTML(_ approval: Approval) -> String {
        let pretty = JSONIndent.indent(approval.inputJSON)
        let expires = approval.expiresAt.map { " data-expires-at=\"\($0.microseconds / 1000)\"" } ?? ""
        let awaiting = approval.status == .awaiting
        let disabled = awaiting ? "" : " disabled"
        let decided: String
        switch approval.status {
        case .awaiting: decided = "Waiting for your answer"
        case .approved: decided = "Approved" + HTML.escape(Self.decidedBy(approval.decidedBy))
        case .rejected: decided = "Rejected" + HTML.escape(Self.decidedBy(approval.decidedBy))
        case .expired: decided = "Expired unanswered"
        }
        let risk = HTML.escape(approval.risk)
        return """
            <div class="approval" data-call-id="\(HTML.escape(approval.callID))" \
            data-status="\(approval.status.rawValue)"\(expires) role="group" \
            aria-label="Approval for \(HTML.escape(approval.toolName))"><div class="approval-head">\
            <span class="tool">\(HTML.escape(approval.toolName))</span> \
            <span class="risk risk-\(risk)">\(risk) risk</span></div>\
            <pre class="args">\(HTML.escape(pretty))</pre><div class="approval-foot">\
            <span class="approval-state">\(decided)</span> <span class="countdown"></span> \
            <button type="button" data-action="approve"\(disabled)>Approve</button> \
            <button type="button" data-action="reject"\(disabled)>Reject</button></div></div>
            """
    }

    /// Who decided an approval, as a person reads it (the web chat's owner is "you"), as the script says it.
    static func decidedBy(_ by: String?) -> String {
        guard let by, !by.isEmpty else { return "" }
        return by == "web:owner" ? " by you" : " by \(by)"
    }

    /// What the script needs to continue replies still in progress: their raw text, token and next index.
    struct ScriptState: Codable {
        var conversationID: String
        var after: UInt64
        var writable: Bool
        /// The longest message the server accepts, in characters (grapheme clusters, as Swift counts them).
        var maxText = MessageIntake.maxTextLength
        /// Replies still streaming, by job id.
        var replies: [String: ScriptReply]
    }

    struct ScriptReply: Codable {
        var token: UInt64
        var nextIndex: Int
        var text: String
    }

    func scriptState(conversationID: String, after: UInt64, writable: Bool) -> ScriptState {
        ScriptState(
            conversationID: conversationID, after: after, writable: writable,
            replies: replies.filter { $0.value.state == .streaming }.mapValues {
                ScriptReply(token: $0.token, nextIndex: $0.nextIndex, text: $0.text)
            })
    }
}
