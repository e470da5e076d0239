import Assistant
import EventLog
import Foundation
import Projections
import SwitchboardEvents

extension CoreService {
    /// The `schedule_message` tool for `job`'s turn: a reminder job in `conversation`, due when the model said, as
    /// `/remind` sets one (its idempotency key is the call's, so a retried call schedules once).
    func scheduleTool(_ job: JobState, conversation: ConversationState) -> ScheduleMessageTool {
        let engine = engine
        return ScheduleMessageTool { when, text, callID in
            let now = try engine.logNow()
            let zone = engine.settings.jobs.timeZone
            guard let reminder = ReminderTime.parse(when + " " + text, now: now, timeZone: zone) else {
                throw ToolError(
                    .invalidArguments, "could not read when '\(when)': use in 20m, at 17:00 or tomorrow 9:00")
            }
            var scheduled = NewJob(idempotencyKey: "reminder:tool:\(callID)", conversationID: job.conversationID)
            scheduled.kind = JobKind.scheduled.rawValue
            scheduled.runAt = reminder.due
            scheduled.triggeringMessageSeq = job.triggeringMessageSeq
            scheduled.replyToExternalID = job.replyToExternalID
            scheduled.payload = [Reminders.payloadKey: reminder.text, "due": "\(reminder.due.microseconds)"]
            _ = try await engine.enqueueJob(scheduled)
            return Reminders.when(reminder.due, now: now, timeZone: zone)
        }
    }

    /// Fires a reminder (a `scheduled` job set by `/remind`): "⏰ <text>", with "(late)" when it fires more than
    /// `REMINDER_LATE_AFTER_SECONDS` after it was due — sent on WhatsApp and Telegram as a delivery fenced by the job
    /// token and keyed by the job (so a retry after a crash sends it once), written on the web as the job's final
    /// message. No model is asked.
    func fireReminder(_ claim: JobClaim, text: String, conversation: ConversationState) async throws -> Reply {
        let job = claim.job
        let now = try engine.logNow()
        let due = job.payload["due"].flatMap(Int64.init).map(LogTimestamp.init(microseconds:)) ?? job.notBefore
        let late = now > due.advanced(by: engine.settings.jobs.reminderLateAfter)
        let message = "⏰ " + text + (late ? " (late)" : "")
        logger.info(
            "[agent] Reminder of job \(job.jobID) fired\(late ? " late" : "")",
            metadata: ["job.id": "\(job.jobID)", "conversation.id": "\(job.conversationID)"])
        let messageID = CoreService.replyKey(jobID: job.jobID)
        guard Channel(stored: conversation.channel)?.deliversReplies ?? false else {
            let result = try await engine.recordTurn(
                jobID: job.jobID, token: claim.token,
                [
                    .assistantMessage(
                        AssistantMessage(
                            messageID: messageID, conversationID: job.conversationID, jobID: job.jobID,
                            jobToken: claim.token, text: message, modelUsed: "reminder", final: true))
                ])
            guard case .accepted = result else { throw WorkerError(.lost, "the reminder's claim was lost") }
            return Reply(result: messageID, modelUsed: "reminder")
        }
        var delivery = NewDelivery(
            idempotencyKey: "reminder:\(job.jobID)", channel: conversation.channel, accountID: conversation.accountID,
            recipient: conversation.contactID, conversationID: job.conversationID, text: message)
        delivery.kind = "reminder"
        delivery.jobID = job.jobID
        delivery.jobToken = claim.token
        delivery.replyToExternalID = job.replyToExternalID
        let enqueued = try await engine.enqueueDelivery(delivery)
        return Reply(result: enqueued.deliveryID, modelUsed: "reminder")
    }
}
