import EventLog
import Logging
import SwitchboardEvents

/// Picks the records of one conversation out of the log: those that name it (`message.received`,
/// `job.enqueued`, `assistant.*`, `tool.call`, `tool.approval`, `delivery.enqueued`) and the job records of its
/// jobs (`job.*`, `tool.result` carry only a job id: the job's conversation is remembered from its
/// `job.enqueued`, or looked up in the job projection for jobs enqueued before the reader started).
struct ConversationRecordFilter {
    /// The record types the chat shows (the SSE event names).
    static let types: Set<String> = [
        MessageReceived.eventType, JobEnqueued.eventType, JobClaimed.eventType, JobCompleted.eventType,
        JobFailed.eventType, JobRetried.eventType, JobDead.eventType, JobRequeued.eventType,
        AssistantDelta.eventType, AssistantMessage.eventType, ToolCall.eventType, ToolApproval.eventType,
        ToolResult.eventType, DeliveryEnqueued.eventType, JobCancelled.eventType, ConversationRenamed.eventType,
        ConversationDeleted.eventType, JobRetriggered.eventType, CommandHandled.eventType,
        DeliveryFailed.eventType,
    ]

    let conversationID: String
    /// The conversation of a job id from the job projection (`nil` when unknown).
    let lookup: (String) -> String?
    private var jobs: [String: Bool] = [:]

    init(conversationID: String, lookup: @escaping (String) -> String?) {
        self.conversationID = conversationID
        self.lookup = lookup
    }

    private mutating func ofJob(_ jobID: String) -> Bool {
        if let known = jobs[jobID] { return known }
        let mine = lookup(jobID) == conversationID
        // Bounded: the cache of other conversations' jobs is dropped when it grows large.
        if jobs.count > 50_000 { jobs = jobs.filter(\.value) }
        jobs[jobID] = mine
        return mine
    }

    /// The record's event when it belongs to the conversation, else `nil`. An undecodable payload is logged with
    /// its seq and skipped.
    mutating func event(of record: Record, logger: Logger) -> SwitchboardEvent? {
        guard Self.types.contains(record.type), let event = record.followedEvent(logger) else { return nil }
        // A failed send names only its delivery: it is the conversation's by its record's correlation.
        if case .deliveryFailed = event { return record.correlationID == conversationID ? event : nil }
        return belongs(event) ? event : nil
    }

    mutating func belongs(_ event: SwitchboardEvent) -> Bool {
        switch event {
        case .messageReceived(let e): return e.conversationID == conversationID
        case .jobEnqueued(let e):
            jobs[e.jobID] = e.conversationID == conversationID
            return e.conversationID == conversationID
        case .jobClaimed(let e): return ofJob(e.jobID)
        case .jobCompleted(let e): return ofJob(e.jobID)
        case .jobFailed(let e): return ofJob(e.jobID)
        case .jobRetried(let e): return ofJob(e.jobID)
        case .jobDead(let e): return ofJob(e.jobID)
        case .jobRequeued(let e): return ofJob(e.jobID)
        case .jobCancelled(let e): return ofJob(e.jobID)
        case .jobRetriggered(let e): return ofJob(e.jobID)
        case .commandHandled(let e): return e.conversationID == conversationID
        case .conversationRenamed(let e): return e.conversationID == conversationID
        case .conversationDeleted(let e): return e.conversationID == conversationID
        case .assistantDelta(let e): return e.conversationID == conversationID
        case .assistantMessage(let e): return e.conversationID == conversationID
        case .toolCall(let e): return e.conversationID == conversationID
        case .toolApproval(let e): return e.conversationID == conversationID
        case .toolResult(let e): return ofJob(e.jobID)
        case .deliveryEnqueued(let e): return e.conversationID == conversationID && e.jobID != nil
        case .contactUpdated, .commandRejected, .jobHeartbeat, .deliveryClaimed, .deliveryAttempted, .deliverySent,
            .deliveryFailed, .deliveryUncertain, .leaseAcquired, .leaseRenewed, .leaseReleased, .leaseExpired,
            .leaseDenied, .channelConnected, .channelDisconnected, .inboundIgnored, .webhookRejected,
            .deliveryStatusReported, .sessionEntrySet, .sessionEntryRemoved,
            .workerStarted, .workerStopped, .conversationSummarized:
            return false
        }
    }
}
