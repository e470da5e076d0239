import EventLog
/// The event vocabulary v1: every typed event this build knows, by its ``EventPayload/eventType``.
///
/// ``Record/event()`` decodes through ``types``; a record whose type is missing here (written by a newer
/// build) is still readable raw.
public enum EventCatalog {
    /// Every event type of the vocabulary, grouped as in `docs/events.md`.
    public static let allTypes: [any EventPayload.Type] = [
        // Messages
        MessageReceived.self,
        // Contacts and rejected commands
        ContactUpdated.self,
        CommandRejected.self,
        // Jobs
        JobEnqueued.self,
        JobClaimed.self,
        JobHeartbeat.self,
        JobCompleted.self,
        JobFailed.self,
        JobRetried.self,
        JobDead.self,
        JobRequeued.self,
        JobCancelled.self,
        JobRetriggered.self,
        // Deliveries
        DeliveryEnqueued.self,
        DeliveryClaimed.self,
        DeliveryAttempted.self,
        DeliverySent.self,
        DeliveryFailed.self,
        DeliveryUncertain.self,
        // Leases
        LeaseAcquired.self,
        LeaseRenewed.self,
        LeaseReleased.self,
        LeaseExpired.self,
        LeaseDenied.self,
        // Channels
        ChannelConnected.self,
        ChannelDisconnected.self,
        // Channel ingress
        InboundIgnored.self,
        WebhookRejected.self,
        DeliveryStatusReported.self,
        // Sessions
        SessionEntrySet.self,
        SessionEntryRemoved.self,
        // Assistant
        AssistantMessage.self,
        AssistantDelta.self,
        ConversationSummarized.self,
        // Conversations
        ConversationRenamed.self,
        ConversationDeleted.self,
        CommandHandled.self,
        // Tools
        ToolCall.self,
        ToolResult.self,
        ToolApproval.self,
        // Workers
        WorkerStarted.self,
        WorkerStopped.self,
    ]

    /// The event types keyed by their ``EventPayload/eventType``.
    public static let types: [String: any EventPayload.Type] = Dictionary(
        uniqueKeysWithValues: allTypes.map { ($0.eventType, $0) })
}
