import EventLog
import Foundation
import SwitchboardEvents

/// Reminders (`/remind`, `/reminders`): each one a job of kind `scheduled`, due at its `runAt` by the log clock, that
/// the core fires once — after any restart or failover too (a claim is fenced like any other), marked "(late)" when
/// it fires more than `REMINDER_LATE_AFTER_SECONDS` after it was due (the agent was down).
public enum Reminders {
    /// The payload key holding a reminder's text.
    public static let payloadKey = "reminder"

    public static let usage =
        "I could not read when. Try: /remind in 20m call back, /remind at 17:00 leave, /remind tomorrow 9:00 "
        + "send the report."

    /// The conversation's reminders still to fire, soonest first.
    static func pending(_ active: [JobState]) -> [JobState] {
        active.filter {
            $0.kind == JobKind.scheduled.rawValue && $0.payload[payloadKey] != nil && $0.status == .pending
        }
        .sorted { ($0.notBefore, $0.enqueueSeq) < ($1.notBefore, $1.enqueueSeq) }
    }

    /// `/reminders` (a list) or `/reminders cancel <n>` (the `job.cancelled` of the n-th, and what to answer).
    static func listOrCancel(
        _ argument: String, active: [JobState], by: String, now: LogTimestamp, timeZone: TimeZone
    ) -> (events: [SwitchboardEvent], answer: String) {
        let reminders = pending(active)
        let words = argument.split(whereSeparator: \.isWhitespace).map { $0.lowercased() }
        if words.first == "cancel" {
            guard words.count == 2, let n = Int(words[1]), (1...max(1, reminders.count)).contains(n),
                n <= reminders.count
            else {
                return (
                    [], reminders.isEmpty ? "No reminder is set." : "Which one? /reminders cancel 1…\(reminders.count)"
                )
            }
            let job = reminders[n - 1]
            return (
                [.jobCancelled(JobCancelled(jobID: job.jobID, token: job.token, by: by, reason: "reminder_cancelled"))],
                "Cancelled: \(job.payload[payloadKey] ?? "")"
            )
        }
        guard !reminders.isEmpty else { return ([], "No reminder is set.") }
        let lines = reminders.enumerated().map { index, job in
            "\(index + 1). \(when(job.notBefore, now: now, timeZone: timeZone)): \(job.payload[payloadKey] ?? "")"
        }
        return ([], lines.joined(separator: "\n"))
    }

    /// "at 17:00 today", "at 09:00 tomorrow", "at 09:00 on 8 Dec" in `timeZone`.
    public static func when(_ due: LogTimestamp, now: LogTimestamp, timeZone: TimeZone) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let parts = calendar.dateComponents([.hour, .minute, .day, .month], from: due.date)
        let clock = String(format: "%02d:%02d", parts.hour ?? 0, parts.minute ?? 0)
        let days = calendar.dateComponents([.day], from: calendar.startOfDay(for: now.date), to: due.date).day ?? 0
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        let day: String
        switch days {
        case 0: day = "today"
        case 1: day = "tomorrow"
        default: day = "on \(parts.day ?? 0) \(months[max(0, min(11, (parts.month ?? 1) - 1))])"
        }
        return "at \(clock) \(day) (\(timeZone.identifier))"
    }

    /// The job of a reminder set by `message` (recorded as `messageSeq`): kind `scheduled`, due at `reminder.due`,
    /// idempotent per message.
    public static func job(
        _ reminder: ReminderTime, message: InboundMessage, conversationID: String, messageSeq: UInt64
    ) -> NewJob {
        var job = NewJob(
            idempotencyKey: "reminder:\(message.channel):\(message.accountID):\(message.externalID)",
            conversationID: conversationID)
        job.kind = JobKind.scheduled.rawValue
        job.runAt = reminder.due
        job.triggeringMessageSeq = messageSeq
        job.payload = [payloadKey: reminder.text, "due": "\(reminder.due.microseconds)"]
        return job
    }
}
