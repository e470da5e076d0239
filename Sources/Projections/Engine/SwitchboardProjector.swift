import EventLog
import SwitchboardEvents
import Foundation

/// Applies Switchboard's events to the projection tables, inside the write transaction that appends them.
///
/// This is the only code that writes projection state: deciders read the tables and append events, and every
/// change comes from here, so a rebuild from seq 1 reproduces the state exactly (compare ``StateDigest``).
/// Recent-attempt lists for rate limits keep at most ``rateHistoryLimit`` times per key.
public struct SwitchboardProjector: Projector {
    /// The most attempt times kept per recipient and per account (rate-limit counts above it are capped).
    public static let rateHistoryLimit = 256
    /// Job states a bulk replay changed and has not written yet (``forReplay()``); `nil` for every append.
    let replayStates: ReplayStates?

    public init() { replayStates = nil }

    public var tables: [String] { ProjectionTable.all }

    /// The layout this build writes. Bump `version` in the same commit as any change to what `apply` stores;
    /// `docs/architecture.md` keeps the history.
    public static let format = ProjectionFormat(name: "switchboard", version: 9)

    public var format: ProjectionFormat { Self.format }

    /// Tables of earlier formats, dropped when the projections are rebuilt: the status indexes of builds before
    /// formats were recorded (replaced by `p.job_dead` and `p.delivery_attention`), and the claim indexes of
    /// format 3 (replaced by `p.conversation_jobs`, `p.conversation_queues`, `p.tree_jobs` and
    /// `p.delivery_ready`).
    public var retiredTables: [String] {
        ["p.job_status", "p.delivery_status", "p.conversation_running", "p.delivery_pending"]
    }

    public func decode(_ record: Record) throws -> SwitchboardEvent? { try SwitchboardEvent(record) }

    // Specialized for LMDB's writer: the generic entry point dispatches to it, so the append path pays nothing for
    // the seam (docs/benchmarks.md, "Storage seam").
    @_specialize(where Tables == TableWriter)
    public func apply<Tables: TableWriting>(_ event: SwitchboardEvent, _ meta: RecordMeta, to tables: Tables) throws {
        let seq = meta.seq
        let now = meta.timestamp
        typealias T = ProjectionTable
        switch event {
        // MARK: Leases
        case .leaseAcquired(let e):
            try tables.store(
                LeaseState(
                    resource: e.resource, owner: Owner(workerID: e.ownerWorkerID, instance: e.ownerInstance),
                    token: e.token, acquiredAt: now, expiresAt: e.expiresAt, held: true),
                T.leases, Key(e.resource))
        case .leaseRenewed(let e):
            guard var lease = try tables.load(LeaseState.self, T.leases, Key(e.resource)), lease.token == e.token
            else { return }
            lease.expiresAt = e.expiresAt
            try tables.store(lease, T.leases, Key(e.resource))
        case .leaseReleased(let e):
            try endLease(e.resource, token: e.token, tables)
        case .leaseExpired(let e):
            try endLease(e.resource, token: e.token, tables)

        // MARK: Jobs
        case .jobEnqueued(let e):
            let job = JobState(
                jobID: e.jobID, idempotencyKey: e.idempotencyKey, conversationID: e.conversationID, kind: e.kind,
                priority: e.priority, parentJobID: e.parentJobID, rootJobID: e.rootJobID ?? e.jobID,
                maxAttempts: e.maxAttempts, payload: e.payload, enqueueSeq: seq, status: .pending, attempt: 0,
                notBefore: e.runAt ?? now, token: 0, claimedBy: nil, visibleUntil: nil, lastReason: nil,
                lastMessage: nil, result: nil, triggeringMessageSeq: e.triggeringMessageSeq,
                replyToExternalID: e.replyToExternalID)
            try tables.mark(T.jobKeys, Key(e.idempotencyKey), Array(e.jobID.utf8))
            try saveJob(job, previous: nil, tables)
        case .jobClaimed(let e):
            guard var job = try loadJob(e.jobID, tables) else { return }
            let previous = job
            job.status = .running
            job.token = e.token
            job.attempt = e.attempt
            job.claimedBy = Owner(workerID: e.workerID, instance: e.ownerInstance)
            job.visibleUntil = e.visibleUntil
            try saveJob(job, previous: previous, tables)
        case .jobHeartbeat(let e):
            guard var job = try loadJob(e.jobID, tables), job.token == e.token else { return }
            let previous = job
            job.visibleUntil = e.visibleUntil
            try saveJob(job, previous: previous, tables)
        case .jobCompleted(let e):
            guard var job = try loadJob(e.jobID, tables), job.token == e.token else { return }
            let previous = job
            job.status = .completed
            job.result = e.result
            job.visibleUntil = nil
            try saveJob(job, previous: previous, tables)
            try dropDeltas(e.jobID, tables)
        case .jobFailed(let e):
            guard var job = try loadJob(e.jobID, tables), job.token == e.token else { return }
            let previous = job
            // The decider follows with job.retried or job.dead in the same transaction.
            job.status = .pending
            job.lastReason = e.reason
            job.lastMessage = e.message
            job.visibleUntil = nil
            job.notBefore = LogTimestamp(microseconds: .max)
            try saveJob(job, previous: previous, tables)
        case .jobRetried(let e):
            guard var job = try loadJob(e.jobID, tables) else { return }
            let previous = job
            job.status = .pending
            job.notBefore = e.notBefore
            try saveJob(job, previous: previous, tables)
        case .jobDead(let e):
            guard var job = try loadJob(e.jobID, tables) else { return }
            let previous = job
            job.status = .dead
            job.lastReason = e.lastReason
            job.lastMessage = e.lastMessage
            job.visibleUntil = nil
            try saveJob(job, previous: previous, tables)
            try dropDeltas(e.jobID, tables)
        case .jobRetriggered(let e):
            try retriggered(e, tables)
        case .jobCancelled(let e):
            guard var job = try loadJob(e.jobID, tables) else { return }
            let previous = job
            job.status = .cancelled
            job.lastReason = e.reason
            job.visibleUntil = nil
            try saveJob(job, previous: previous, tables)
            try dropDeltas(e.jobID, tables)
        case .jobRequeued(let e):
            guard var job = try loadJob(e.jobID, tables) else { return }
            let previous = job
            job.status = .pending
            job.attempt = 0
            job.notBefore = now
            try saveJob(job, previous: previous, tables)

        // MARK: Deliveries
        case .deliveryEnqueued(let e):
            let delivery = DeliveryState(
                deliveryID: e.deliveryID, idempotencyKey: e.idempotencyKey, channel: e.channel,
                accountID: e.accountID, recipient: e.recipient, conversationID: e.conversationID, kind: e.kind,
                text: e.text, part: e.part, maxAttempts: e.maxAttempts, enqueueSeq: seq, status: .pending,
                attempt: 0, notBefore: now, token: 0, leaseToken: nil, claimedBy: nil, visibleUntil: nil,
                lastError: nil, providerMessageID: nil, sourceMessageID: e.sourceMessageID,
                replyToExternalID: e.replyToExternalID)
            try tables.mark(T.deliveryKeys, Key(e.idempotencyKey), Array(e.deliveryID.utf8))
            try saveDelivery(delivery, previous: nil, tables)
        case .deliveryClaimed(let e):
            guard var delivery = try tables.load(DeliveryState.self, T.deliveries, Key(e.deliveryID)) else { return }
            let previous = delivery
            delivery.status = .claimed
            delivery.token = e.token
            delivery.leaseToken = e.leaseToken
            delivery.attempt = e.attempt
            delivery.claimedBy = Owner(workerID: e.workerID, instance: e.ownerInstance)
            delivery.visibleUntil = e.visibleUntil
            try saveDelivery(delivery, previous: previous, tables)
            // Rate limits count claims (format 5): with several sends in flight, a claim not yet attempted
            // must already count against the account's window.
            try recordSend(delivery, at: now, tables)
        case .deliveryAttempted(let e):
            guard var delivery = try tables.load(DeliveryState.self, T.deliveries, Key(e.deliveryID)),
                delivery.token == e.token
            else { return }
            let previous = delivery
            delivery.status = .attempting
            try saveDelivery(delivery, previous: previous, tables)
        case .deliverySent(let e):
            guard var delivery = try tables.load(DeliveryState.self, T.deliveries, Key(e.deliveryID)),
                delivery.token == e.token
            else { return }
            let previous = delivery
            delivery.status = .sent
            delivery.providerMessageID = e.providerMessageID
            delivery.visibleUntil = nil
            try saveDelivery(delivery, previous: previous, tables)
            if let providerMessageID = e.providerMessageID {
                try tables.mark(
                    T.deliveryProviderIDs, Key(delivery.channel, delivery.accountID, providerMessageID),
                    Array(e.deliveryID.utf8))
            }
        case .deliveryFailed(let e):
            guard var delivery = try tables.load(DeliveryState.self, T.deliveries, Key(e.deliveryID)),
                delivery.token == e.token
            else { return }
            let previous = delivery
            delivery.lastError = [e.errorCode, e.message].compactMap { $0 }.joined(separator: ": ")
            delivery.visibleUntil = nil
            if e.permanent {
                delivery.status = .failed
            } else {
                delivery.status = .pending
                delivery.notBefore = e.retryAfter ?? now
            }
            try saveDelivery(delivery, previous: previous, tables)
        case .deliveryUncertain(let e):
            guard var delivery = try tables.load(DeliveryState.self, T.deliveries, Key(e.deliveryID)),
                delivery.token == e.token
            else { return }
            let previous = delivery
            delivery.status = .uncertain
            delivery.lastError = e.reason
            delivery.visibleUntil = nil
            try saveDelivery(delivery, previous: previous, tables)

        // MARK: Inbound, conversations, contacts
        case .messageReceived(let e):
            try received(e, seq: seq, now: now, tables)
        case .assistantMessage(let e):
            try replied(e, seq: seq, now: now, tables)
        case .assistantDelta(let e):
            try tables.put(tables.table(T.replyDeltas), Self.deltaKey(e.jobID, e.jobToken, e.index), Array(e.text.utf8))
        case .conversationRenamed(let e):
            try renamed(e, tables)
        case .conversationDeleted(let e):
            try deleted(e, now: now, tables)
        case .commandHandled(let e):
            try commanded(e, tables)
        case .contactUpdated(let e):
            try tables.store(
                ContactState(
                    channel: e.channel, accountID: e.accountID, contactID: e.contactID, status: e.status,
                    pairingCodeHash: e.pairingCodeHash),
                T.contacts, Key(e.channel, e.accountID, e.contactID))

        // MARK: Sessions
        case .sessionEntrySet(let e):
            try tables.store(
                SessionEntryState(value: e.value, encrypted: e.encrypted, seq: seq), T.sessions,
                Key(e.namespace, e.key))
        case .sessionEntryRemoved(let e):
            try tables.remove(T.sessions, Key(e.namespace, e.key))

        // MARK: Turns
        case .toolCall(let e):
            try tables.store(
                ToolCallState(
                    callID: e.callID, jobID: e.jobID, jobToken: e.jobToken, conversationID: e.conversationID,
                    toolName: e.toolName, inputJSON: e.inputJSON, risk: e.risk, status: .called, calledAt: now,
                    expiresAt: nil, decidedBy: nil, outputJSON: nil, error: nil, seq: seq),
                T.toolCalls, Key(e.callID))
            try markToolUse(e.jobID, tables)
        case .toolApproval(let e):
            guard var call = try tables.load(ToolCallState.self, T.toolCalls, Key(e.callID)) else { return }
            if let expiresAt = call.expiresAt {
                _ = try tables.delete(tables.table(T.approvalsDue), TurnDecider.dueKey(expiresAt, call.callID))
            }
            switch ApprovalStep(rawValue: e.decision) {
            case .requested?:
                call.status = .awaitingApproval
                call.expiresAt = e.expiresAt
                if let expiresAt = e.expiresAt {
                    try tables.put(tables.table(T.approvalsDue), TurnDecider.dueKey(expiresAt, call.callID), [])
                }
            case .approved?: call.status = .approved
            case .rejected?: call.status = .rejected
            case .expired?: call.status = .expired
            case nil: return
            }
            if e.decidedBy != nil { call.decidedBy = e.decidedBy }
            try tables.store(call, T.toolCalls, Key(e.callID))
        case .toolResult(let e):
            guard var call = try tables.load(ToolCallState.self, T.toolCalls, Key(e.callID)) else { return }
            switch call.status {
            case .called, .approved, .awaitingApproval, .done, .failed: call.status = e.error == nil ? .done : .failed
            case .rejected, .expired: break  // the refusal stays what the call shows
            }
            call.outputJSON = e.outputJSON
            call.error = e.error
            try tables.store(call, T.toolCalls, Key(e.callID))
        case .conversationSummarized(let e):
            try tables.store(
                ConversationSummaryState(summary: e.summary, throughSeq: e.throughSeq, seq: seq), T.summaries,
                Key(e.conversationID))

        // MARK: Channel ingress
        case .inboundIgnored(let e):
            // The same key space as message.received: an update is recorded once, as whatever it became.
            try tables.mark(
                T.inbound, Key(e.channel, e.accountID, e.externalID), withUnsafeBytes(of: seq.bigEndian) { Array($0) })
        case .deliveryStatusReported(let e):
            try tables.mark(
                T.deliveryStatuses, Key(e.channel, e.accountID, e.providerMessageID, e.status),
                withUnsafeBytes(of: seq.bigEndian) { Array($0) })

        case .commandRejected, .leaseDenied, .channelConnected, .channelDisconnected, .webhookRejected,
            .workerStarted, .workerStopped:
            return  // No projection state: the log is their record.
        }
    }

    private func endLease(_ resource: String, token: UInt64, _ tables: some TableWriting) throws {
        guard var lease = try tables.load(LeaseState.self, ProjectionTables.leases, Key(resource)),
            lease.token == token
        else { return }
        lease.held = false
        try tables.store(lease, ProjectionTables.leases, Key(resource))
    }

    /// Builds the job and delivery indexes from `p.jobs` and `p.deliveries` after a bulk replay, which left them
    /// out: each is a function of those states (the same entries the transitions write one at a time).
    public func finishReplay<Tables: TableWriting>(_ tables: Tables) throws {
        try endReplayBatch(tables)
        try IndexBuild.jobs(tables)
        try IndexBuild.deliveries(tables)
    }

    // MARK: Job indexes

    static func runningKey(_ job: JobState) -> Key {
        Key().appending(orderKey(job.visibleUntil ?? LogTimestamp(microseconds: 0))).appending(job.jobID)
    }

    func saveJob(_ job: JobState, previous: JobState?, _ tables: some TableWriting) throws {
        typealias T = ProjectionTables
        guard !tables.replaying else {  // the indexes are built once, by finishReplay
            if let replayStates { replayStates.save(job) } else { try tables.store(job, T.jobs, Key(job.jobID)) }
            return
        }
        // Only the transitions' own indexes are written: completed jobs (the bulk) are found by scanning p.jobs.
        if let previous {
            switch previous.status {
            case .running: try tables.remove(T.jobRunning, Self.runningKey(previous))
            case .dead: try tables.remove(T.jobDead, Key(previous.jobID))
            case .pending, .completed, .cancelled: break
            }
        }
        switch job.status {
        case .running: try tables.mark(T.jobRunning, Self.runningKey(job), Array(job.jobID.utf8))
        case .dead: try tables.mark(T.jobDead, Key(job.jobID))
        case .pending, .completed, .cancelled: break
        }
        try tables.store(job, T.jobs, Key(job.jobID))
        try JobQueues.update(job, previous: previous, tables)
    }

    // MARK: Delivery indexes

    static func accountKey(_ channel: String, _ accountID: String) -> Key { Key(channel, accountID) }

    static func inflightKey(_ d: DeliveryState) -> Key {
        accountKey(d.channel, d.accountID).appending(orderKey(d.visibleUntil ?? LogTimestamp(microseconds: 0)))
            .appending(d.deliveryID)
    }

    private func saveDelivery(_ d: DeliveryState, previous: DeliveryState?, _ tables: some TableWriting) throws {
        typealias T = ProjectionTables
        guard !tables.replaying else {  // the indexes are built once, by finishReplay
            try tables.store(d, T.deliveries, Key(d.deliveryID))
            return
        }
        if let previous {
            switch previous.status {
            case .claimed, .attempting: try tables.remove(T.deliveryInflight, Self.inflightKey(previous))
            case .failed, .uncertain:
                try tables.remove(T.deliveryAttention, Key(previous.status.rawValue, previous.deliveryID))
            case .pending, .sent: break
            }
        }
        switch d.status {
        case .claimed, .attempting: try tables.mark(T.deliveryInflight, Self.inflightKey(d), Array(d.deliveryID.utf8))
        case .failed, .uncertain: try tables.mark(T.deliveryAttention, Key(d.status.rawValue, d.deliveryID))
        case .pending, .sent: break
        }
        try tables.store(d, T.deliveries, Key(d.deliveryID))
        try DeliveryQueues.update(d, previous: previous, tables)
    }

    private func recordSend(_ d: DeliveryState, at now: LogTimestamp, _ tables: some TableWriting) throws {
        typealias T = ProjectionTables
        let account = Self.accountKey(d.channel, d.accountID)
        for (table, key) in [(T.recipientRate, account.appending(d.recipient)), (T.accountRate, account)] {
            var times = try tables.load([Int64].self, table, key) ?? []
            times.append(now.microseconds)
            if times.count > Self.rateHistoryLimit { times.removeFirst(times.count - Self.rateHistoryLimit) }
            try tables.store(times, table, key)
        }
    }
}

extension DeliveryStatus {
    /// Pending, claimed or attempting: still holds its place in the recipient's FIFO.
    var isUnfinished: Bool { self == .pending || self == .claimed || self == .attempting }
}

extension WriteContext {
    /// Appends `event` and applies it to the projections without decoding it again.
    @discardableResult
    public mutating func append(_ event: SwitchboardEvent, correlationID: String? = nil, causationID: UInt64? = nil)
        throws -> UInt64
    {
        try append(
            event, encoded: event.encoded(correlationID: correlationID, causationID: causationID),
            projectedBy: SwitchboardProjector())
    }
}
