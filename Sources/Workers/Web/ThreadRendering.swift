import EventLog
import Foundation
import SwitchboardEvents

// MARK: - Rendering (the same markup chat.js builds)

extension ThreadFold {
    /// The thread's items as HTML.
    func html(now: Date) -> String {
        let layout = layout
        var out = ""
        for item in items {
            switch item {
            case .user(let id):
                guard let message = users[id] else { continue }
                out += Self.userHTML(
                    message, now: now, hidden: layout.hiddenUsers.contains(id), pager: layout.userPagers[id])
            case .reply(let id):
                guard let reply = replies[id] else { continue }
                out += Self.replyHTML(
                    reply, now: now, hidden: layout.hiddenReplies.contains(id), pager: layout.replyPagers[id],
                    last: layout.lastReply == id)
            case .approval(let id):
                guard let approval = approvals[id] else { continue }
                out += Self.approvalHTML(approval, hidden: layout.hiddenReplies.contains(approval.jobID))
            case .note(let seq):
                guard let note = notes[seq] else { continue }
                out += Self.noteHTML(note)
            }
        }
        return out
    }

    static func userHTML(
        _ message: UserMessage, now: Date, hidden: Bool = false, pager: ThreadLayout.Pager? = nil
    ) -> String {
        let date = message.time.date
        let after = message.afterJobID.map { " data-after-job=\"\(HTML.escape($0))\"" } ?? ""
        return """
            <div class="msg" data-role="user" data-client-id="\(HTML.escape(message.clientID))" \
            data-seq="\(message.seq)" data-parent="\(message.parentSeq)"\(after)\(hidden ? " hidden" : "")>\
            <div class="meta"><span class="who">You</span> \(timeHTML(date, now: now)) \
            \(pagerHTML(pager, noun: "edit"))</div>\
            <div class="body">\(HTML.escape(message.text))</div><div class="actions">\
            <button type="button" data-action="edit">Edit</button></div></div>
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

    /// A command's answer (the script writes the same).
    static func noteHTML(_ note: CommandHandled) -> String {
        "<p class=\"command-note\" data-command=\"\(HTML.escape(note.command))\" data-seq=\"\(note.messageSeq)\">"
            + "\(HTML.escape(note.answer))</p>"
    }

    /// The note under a stopped reply (the script writes the same).
    static let stoppedHTML = "<p class=\"stopped\">Stopped.</p>"

    static func replyHTML(
        _ reply: Reply, now: Date, hidden: Bool = false, pager: ThreadLayout.Pager? = nil, last: Bool = false
    ) -> String {
        let body: String
        switch reply.state {
        case .failed:
            body =
                (reply.text.isEmpty ? "" : Markdown.render(reply.text))
                + "<p class=\"failure\">\(HTML.escape(reply.failure ?? "The reply failed."))</p>"
        case .final:
            body =
                (reply.text.isEmpty ? "<p class=\"empty\">(no text)</p>" : Markdown.render(reply.text))
                + (reply.stopped ? stoppedHTML : reply.cut ? cutHTML : "")
                + (reply.undelivered.map { "<p class=\"failure undelivered\">\(HTML.escape($0))</p>" } ?? "")
        case .streaming:
            body = Markdown.render(reply.text)
        }
        let model = reply.model.map { " · \(HTML.escape($0))" } ?? ""
        let flags =
            (reply.cut ? " data-cut" : "") + (reply.stopped ? " data-stopped" : "") + (last ? " data-last" : "")
            + (hidden ? " hidden" : "")
        return """
            <div class="msg" data-role="assistant" data-state="\(reply.state.rawValue)" \
            data-message-id="\(HTML.escape(reply.messageID))" data-job-id="\(HTML.escape(reply.jobID))"\(flags) \
            data-trigger="\(reply.triggerSeq ?? 0)" data-enqueue-seq="\(reply.enqueueSeq)" \
            aria-busy="\(reply.state == .streaming)"><div class="meta"><span class="who">Assistant</span>\
            <span class="model">\(model)</span> \(reply.time.map { timeHTML($0.date, now: now) + " " } ?? "")\
            <span class="status">\(HTML.escape(reply.status))</span> \(pagerHTML(pager, noun: "version"))</div>\
            <div class="body">\(body)</div><div class="actions"><button type="button" class="copy" \
            data-action="copy">Copy</button> <button type="button" data-action="regenerate">Regenerate</button>\
            </div></div>
            """
    }

    static func approvalHTML(_ approval: Approval, hidden: Bool = false) -> String {
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
            data-status="\(approval.status.rawValue)"\(expires) data-job-id="\(HTML.escape(approval.jobID))"\
            \(hidden ? " hidden" : "") role="group" \
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
