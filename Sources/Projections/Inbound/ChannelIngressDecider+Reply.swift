import EventLog
import SwitchboardEvents

extension ChannelIngressDecider {
    /// How an accepted message that starts a reply is answered (``InboundReply``): the reply plan's events, the new
    /// reply job or the reminder's, a stopped reply's text and a command's answer as deliveries. Returns the job that
    /// answers it (new or collected into), if any.
    static func answer(
        _ message: InboundMessage, conversationID conversation: String, messageSeq: UInt64, ids: IngressIDs,
        lookup: some IngressLookup, jobs: JobSettings, deliveries: DeliverySettings, now: LogTimestamp,
        into events: inout DecisionEvents
    ) throws -> String? {
        var jobID: String?
        let reply = InboundReply.decide(
            message, conversationID: conversation, messageSeq: messageSeq,
            state: try lookup.replyState(
                conversationID: conversation, rules: jobs.rules(for: message.channel), timeZone: jobs.timeZone),
            now: now)
        for event in reply.events { events.append(event, correlationID: conversation) }
        jobID = reply.collectedInto
        if let reminder = reply.reminder {
            var job = Reminders.job(
                reminder, message: message, conversationID: conversation, messageSeq: messageSeq)
            job.jobID = ids.jobID
            events.append(try enqueue(job, lookup: lookup, settings: jobs))
        }
        if reply.newJob {
            var job = InboundDecider.replyJob(
                for: message, conversationID: conversation, messageSeq: messageSeq)
            job.jobID = ids.jobID
            job.runAt = reply.runAt
            let enqueued = try enqueue(job, lookup: lookup, settings: jobs)
            events.append(enqueued)
            jobID = enqueued.outcome.jobID
        }
        // /stop: what a stopped reply had written is sent as it is (a channel's reply goes out only at the
        // end of its turn, so nothing of it was sent yet). One message, cut to the channels' common limit.
        for case .assistantMessage(let kept) in reply.events where !kept.text.isEmpty {
            var text = kept.text
            if text.count > InboundReply.stoppedTextLimit {
                text = String(text.prefix(InboundReply.stoppedTextLimit - 1)) + "…"
            }
            var delivery = NewDelivery(
                idempotencyKey: kept.messageID, channel: message.channel, accountID: message.accountID,
                recipient: message.contactID, conversationID: conversation, text: text)
            delivery.deliveryID = "stopped-" + kept.jobID
            delivery.jobID = kept.jobID
            delivery.sourceMessageID = kept.messageID
            events.append(try enqueue(delivery, lookup: lookup, settings: deliveries))
        }
        // The command's answer (the ids the worker made for this message include one for it).
        if let answer = reply.answer {
            var delivery = NewDelivery(
                idempotencyKey: "command:\(message.channel):\(message.accountID):\(message.externalID)",
                channel: message.channel, accountID: message.accountID, recipient: message.contactID,
                conversationID: conversation, text: answer)
            delivery.deliveryID = ids.pairingDeliveryID
            delivery.kind = "command_reply"
            delivery.replyToExternalID = message.externalID
            events.append(try enqueue(delivery, lookup: lookup, settings: deliveries))
        }
        return jobID
    }

    /// ``JobDecider/enqueue(_:existingJobID:jobIDTaken:parent:settings:)`` against the lookup (idempotent by key).
    static func enqueue(_ job: NewJob, lookup: some IngressLookup, settings: JobSettings) throws -> Decision<JobEnqueue>
    {
        let existing = try lookup.jobID(idempotencyKey: job.idempotencyKey)
        return try JobDecider.enqueue(
            job, existingJobID: existing, jobIDTaken: existing == nil && (try lookup.jobExists(job.jobID)),
            parent: nil, settings: settings)
    }

    /// ``DeliveryDecider/enqueue(_:existingDeliveryID:settings:)`` against the lookup (idempotent by key).
    static func enqueue(_ delivery: NewDelivery, lookup: some IngressLookup, settings: DeliverySettings) throws
        -> Decision<DeliveryEnqueue>
    {
        try DeliveryDecider.enqueue(
            delivery, existingDeliveryID: try lookup.deliveryID(idempotencyKey: delivery.idempotencyKey),
            settings: settings)
    }
}
