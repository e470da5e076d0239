import EventLog
import Foundation
import SwitchboardEvents

/// What answering one accepted message takes, decided with it in the inbound transaction (web and channels
/// alike): a command's effect and answer, or the reply plan's events (``ReplyPlanner``) and whether a new reply
/// job is to be enqueued.
public struct InboundReplyDecision: Sendable, Equatable {
    /// The events before any new job, all correlated to the conversation.
    public var events: [SwitchboardEvent] = []
    /// Enqueue a new reply job, claimable at `runAt` (`nil`: at once).
    public var newJob: Bool = false
    public var runAt: LogTimestamp?
    /// The pending job that answers the message too, when it was collected.
    public var collectedInto: String?
    /// A command's answer, to be sent on channels that deliver replies.
    public var answer: String?
    /// The command, when the message was one.
    public var command: ChatCommand?
    /// A reminder to schedule (`/remind`): a job of kind `scheduled` due then.
    public var reminder: ReminderTime?
}

/// The state a message's answer is decided against.
public struct InboundReplyState: Sendable {
    public var rules: ConversationRules
    /// The conversation's pending and running jobs.
    public var active: [JobState]
    /// The text each running job has streamed, by job id.
    public var streamed: [String: String]
    /// Their calls awaiting approval.
    public var awaiting: [ToolCallState]
    /// The owner's time zone (`/remind at 17:00`).
    public var timeZone: TimeZone

    public init(
        rules: ConversationRules, active: [JobState], streamed: [String: String] = [:], awaiting: [ToolCallState] = [],
        timeZone: TimeZone = TimeZone(identifier: "UTC")!
    ) {
        self.rules = rules
        self.active = active
        self.streamed = streamed
        self.awaiting = awaiting
        self.timeZone = timeZone
    }
}

public enum InboundReply {
    /// The longest stopped reply sent as one message on a channel (Telegram's limit is 4 096 characters, WhatsApp's
    /// 4 096 for text): a longer one is cut there, with "…".
    public static let stoppedTextLimit = 4_000

    /// Decides how the accepted `message` (recorded as `messageSeq` in `conversationID`) is answered.
    public static func decide(
        _ message: InboundMessage, conversationID: String, messageSeq: UInt64, state: InboundReplyState,
        now: LogTimestamp
    ) -> InboundReplyDecision {
        var decision = InboundReplyDecision()
        if message.media == nil, let typed = TypedCommand(message.text) {
            let command = typed.command
            decision.command = command
            let answer: String
            switch command {
            case .remind:
                if let reminder = ReminderTime.parse(typed.argument, now: now, timeZone: state.timeZone) {
                    decision.reminder = reminder
                    answer =
                        "I will remind you \(Reminders.when(reminder.due, now: now, timeZone: state.timeZone)): "
                        + reminder.text
                } else {
                    answer = Reminders.usage
                }
            case .reminders:
                let (events, text) = Reminders.listOrCancel(
                    typed.argument, active: state.active, by: message.contactID, now: now, timeZone: state.timeZone)
                decision.events += events
                answer = text
            case .new:
                answer = "Starting afresh: I will not use the earlier messages (they stay in the log)."
            case .help:
                answer = ChatCommand.helpText
            case .status:
                answer = status(state.active)
            case .stop:
                var stopped = 0
                for job in state.active where ReplyPlanner.isReply(job) {
                    let text = state.streamed[job.jobID] ?? ""
                    let outcome = ConversationDecider.stopEvents(
                        job, streamed: text, awaiting: state.awaiting, by: message.contactID, reason: "stopped")
                    decision.events += outcome
                    stopped += 1
                }
                answer = stopped == 0 ? "Nothing is running." : "Stopped."
            }
            decision.answer = answer
            decision.events.append(
                .commandHandled(
                    CommandHandled(
                        conversationID: conversationID, messageSeq: messageSeq, command: command.rawValue,
                        answer: answer)))
            return decision
        }
        switch ReplyPlanner.plan(rules: state.rules, isText: message.media == nil, active: state.active, now: now) {
        case .newJob(let runAt):
            decision.newJob = true
            decision.runAt = runAt
        case .collect(let jobID, let notBefore, let reason, let collected):
            decision.collectedInto = jobID
            decision.events.append(
                .jobRetriggered(
                    JobRetriggered(
                        jobID: jobID, messageSeq: messageSeq, replyToExternalID: message.externalID,
                        notBefore: notBefore, reason: reason, collected: collected)))
        case .replace(let jobID, let reason):
            if let job = state.active.first(where: { $0.jobID == jobID }) {
                decision.events += ConversationDecider.cancellation(
                    job, streamed: "", awaiting: state.awaiting, by: "inbound", reason: reason)
            }
            decision.newJob = true
        }
        return decision
    }

    /// `/status`'s answer.
    static func status(_ active: [JobState]) -> String {
        let replies = active.filter(ReplyPlanner.isReply)
        let running = replies.filter { $0.status == .running }.count
        let waiting = replies.filter { $0.status == .pending }.reduce(0) { $0 + ReplyPlanner.collected($1) }
        var parts: [String] = [running > 0 ? "A reply is being written." : "Nothing is running."]
        if waiting > 0 {
            parts.append(
                "\(waiting) message\(waiting == 1 ? "" : "s") wait\(waiting == 1 ? "s" : "") for the next reply.")
        }
        return parts.joined(separator: " ")
    }
}
