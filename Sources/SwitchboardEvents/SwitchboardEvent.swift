import EventLog

/// Every event of Switchboard's vocabulary (v1), one case per event type: what a record decodes into, once.
///
/// The projector, the invariant checker and the audit `switch` over it exhaustively, so a new event type is
/// a compile error wherever it must be handled. Stored type strings, schema versions and payloads are those
/// of the event structs; see `docs/events.md`.
public enum SwitchboardEvent: Sendable, Equatable {
    case messageReceived(MessageReceived)
    case contactUpdated(ContactUpdated)
    case commandRejected(CommandRejected)
    case jobEnqueued(JobEnqueued)
    case jobClaimed(JobClaimed)
    case jobHeartbeat(JobHeartbeat)
    case jobCompleted(JobCompleted)
    case jobFailed(JobFailed)
    case jobRetried(JobRetried)
    case jobDead(JobDead)
    case jobRequeued(JobRequeued)
    case jobCancelled(JobCancelled)
    case jobRetriggered(JobRetriggered)
    case deliveryEnqueued(DeliveryEnqueued)
    case deliveryClaimed(DeliveryClaimed)
    case deliveryAttempted(DeliveryAttempted)
    case deliverySent(DeliverySent)
    case deliveryFailed(DeliveryFailed)
    case deliveryUncertain(DeliveryUncertain)
    case leaseAcquired(LeaseAcquired)
    case leaseRenewed(LeaseRenewed)
    case leaseReleased(LeaseReleased)
    case leaseExpired(LeaseExpired)
    case leaseDenied(LeaseDenied)
    case channelConnected(ChannelConnected)
    case channelDisconnected(ChannelDisconnected)
    case inboundIgnored(InboundIgnored)
    case webhookRejected(WebhookRejected)
    case deliveryStatusReported(DeliveryStatusReported)
    case sessionEntrySet(SessionEntrySet)
    case sessionEntryRemoved(SessionEntryRemoved)
    case assistantMessage(AssistantMessage)
    case assistantDelta(AssistantDelta)
    case conversationSummarized(ConversationSummarized)
    case conversationRenamed(ConversationRenamed)
    case conversationDeleted(ConversationDeleted)
    case commandHandled(CommandHandled)
    case toolCall(ToolCall)
    case toolResult(ToolResult)
    case toolApproval(ToolApproval)
    case workerStarted(WorkerStarted)
    case workerStopped(WorkerStopped)

    /// The stored type string, e.g. `job.enqueued`.
    public var eventType: String {
        switch self {
        case .messageReceived: MessageReceived.eventType
        case .contactUpdated: ContactUpdated.eventType
        case .commandRejected: CommandRejected.eventType
        case .jobEnqueued: JobEnqueued.eventType
        case .jobClaimed: JobClaimed.eventType
        case .jobHeartbeat: JobHeartbeat.eventType
        case .jobCompleted: JobCompleted.eventType
        case .jobFailed: JobFailed.eventType
        case .jobRetried: JobRetried.eventType
        case .jobDead: JobDead.eventType
        case .jobRequeued: JobRequeued.eventType
        case .jobCancelled: JobCancelled.eventType
        case .jobRetriggered: JobRetriggered.eventType
        case .deliveryEnqueued: DeliveryEnqueued.eventType
        case .deliveryClaimed: DeliveryClaimed.eventType
        case .deliveryAttempted: DeliveryAttempted.eventType
        case .deliverySent: DeliverySent.eventType
        case .deliveryFailed: DeliveryFailed.eventType
        case .deliveryUncertain: DeliveryUncertain.eventType
        case .leaseAcquired: LeaseAcquired.eventType
        case .leaseRenewed: LeaseRenewed.eventType
        case .leaseReleased: LeaseReleased.eventType
        case .leaseExpired: LeaseExpired.eventType
        case .leaseDenied: LeaseDenied.eventType
        case .channelConnected: ChannelConnected.eventType
        case .channelDisconnected: ChannelDisconnected.eventType
        case .inboundIgnored: InboundIgnored.eventType
        case .webhookRejected: WebhookRejected.eventType
        case .deliveryStatusReported: DeliveryStatusReported.eventType
        case .sessionEntrySet: SessionEntrySet.eventType
        case .sessionEntryRemoved: SessionEntryRemoved.eventType
        case .assistantMessage: AssistantMessage.eventType
        case .assistantDelta: AssistantDelta.eventType
        case .conversationSummarized: ConversationSummarized.eventType
        case .conversationRenamed: ConversationRenamed.eventType
        case .conversationDeleted: ConversationDeleted.eventType
        case .commandHandled: CommandHandled.eventType
        case .toolCall: ToolCall.eventType
        case .toolResult: ToolResult.eventType
        case .toolApproval: ToolApproval.eventType
        case .workerStarted: WorkerStarted.eventType
        case .workerStopped: WorkerStopped.eventType
        }
    }

    /// The stored form of this event.
    public func encoded(correlationID: String? = nil, causationID: UInt64? = nil) throws(EventLogError)
        -> PendingEvent
    {
        switch self {
        case .messageReceived(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .contactUpdated(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .commandRejected(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .jobEnqueued(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .jobClaimed(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .jobHeartbeat(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .jobCompleted(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .jobFailed(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .jobRetried(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .jobDead(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .jobRequeued(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .jobCancelled(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .jobRetriggered(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .deliveryEnqueued(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .deliveryClaimed(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .deliveryAttempted(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .deliverySent(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .deliveryFailed(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .deliveryUncertain(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .leaseAcquired(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .leaseRenewed(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .leaseReleased(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .leaseExpired(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .leaseDenied(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .channelConnected(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .channelDisconnected(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .inboundIgnored(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .webhookRejected(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .deliveryStatusReported(let e):
            try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .sessionEntrySet(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .sessionEntryRemoved(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .assistantMessage(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .assistantDelta(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .conversationSummarized(let e):
            try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .conversationRenamed(let e):
            try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .conversationDeleted(let e):
            try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .commandHandled(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .toolCall(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .toolResult(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .toolApproval(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .workerStarted(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        case .workerStopped(let e): try PendingEvent(e, correlationID: correlationID, causationID: causationID)
        }
    }

    /// The event a stored record holds; `nil` for a type, or a newer schema version of a type, that this build
    /// does not know (a newer writer's). Throws ``EventLogError/Code/decoding`` when a known type's payload
    /// does not decode.
    public init?(_ record: Record) throws(EventLogError) {
        guard let decode = Self.decoders[record.type] else { return nil }
        guard record.schemaVersion <= decode.schemaVersion else { return nil }
        self = try decode.decode(record)
    }

    private struct Decoder: Sendable {
        let schemaVersion: UInt16
        let decode: @Sendable (Record) throws(EventLogError) -> SwitchboardEvent
    }

    private static func entry<E: EventPayload>(
        _: E.Type, _ wrap: @escaping @Sendable (E) -> SwitchboardEvent
    ) -> (String, Decoder) {
        (
            E.eventType,
            Decoder(schemaVersion: E.schemaVersion) { record throws(EventLogError) in wrap(try record.decode(E.self)) }
        )
    }

    private static let decoders: [String: Decoder] = Dictionary(uniqueKeysWithValues: [
        entry(MessageReceived.self) { .messageReceived($0) },
        entry(ContactUpdated.self) { .contactUpdated($0) },
        entry(CommandRejected.self) { .commandRejected($0) },
        entry(JobEnqueued.self) { .jobEnqueued($0) },
        entry(JobClaimed.self) { .jobClaimed($0) },
        entry(JobHeartbeat.self) { .jobHeartbeat($0) },
        entry(JobCompleted.self) { .jobCompleted($0) },
        entry(JobFailed.self) { .jobFailed($0) },
        entry(JobRetried.self) { .jobRetried($0) },
        entry(JobDead.self) { .jobDead($0) },
        entry(JobRequeued.self) { .jobRequeued($0) },
        entry(JobCancelled.self) { .jobCancelled($0) },
        entry(JobRetriggered.self) { .jobRetriggered($0) },
        entry(DeliveryEnqueued.self) { .deliveryEnqueued($0) },
        entry(DeliveryClaimed.self) { .deliveryClaimed($0) },
        entry(DeliveryAttempted.self) { .deliveryAttempted($0) },
        entry(DeliverySent.self) { .deliverySent($0) },
        entry(DeliveryFailed.self) { .deliveryFailed($0) },
        entry(DeliveryUncertain.self) { .deliveryUncertain($0) },
        entry(LeaseAcquired.self) { .leaseAcquired($0) },
        entry(LeaseRenewed.self) { .leaseRenewed($0) },
        entry(LeaseReleased.self) { .leaseReleased($0) },
        entry(LeaseExpired.self) { .leaseExpired($0) },
        entry(LeaseDenied.self) { .leaseDenied($0) },
        entry(ChannelConnected.self) { .channelConnected($0) },
        entry(ChannelDisconnected.self) { .channelDisconnected($0) },
        entry(InboundIgnored.self) { .inboundIgnored($0) },
        entry(WebhookRejected.self) { .webhookRejected($0) },
        entry(DeliveryStatusReported.self) { .deliveryStatusReported($0) },
        entry(SessionEntrySet.self) { .sessionEntrySet($0) },
        entry(SessionEntryRemoved.self) { .sessionEntryRemoved($0) },
        entry(AssistantMessage.self) { .assistantMessage($0) },
        entry(AssistantDelta.self) { .assistantDelta($0) },
        entry(ConversationSummarized.self) { .conversationSummarized($0) },
        entry(ConversationRenamed.self) { .conversationRenamed($0) },
        entry(ConversationDeleted.self) { .conversationDeleted($0) },
        entry(CommandHandled.self) { .commandHandled($0) },
        entry(ToolCall.self) { .toolCall($0) },
        entry(ToolResult.self) { .toolResult($0) },
        entry(ToolApproval.self) { .toolApproval($0) },
        entry(WorkerStarted.self) { .workerStarted($0) },
        entry(WorkerStopped.self) { .workerStopped($0) },
    ])
}
