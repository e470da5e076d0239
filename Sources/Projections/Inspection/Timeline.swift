import EventLog
import SwitchboardEvents
import Foundation
import SwitchboardJSON

/// What a decoded event names: the ids a timeline filters on, and how it changes a lease.
public struct EventSubjects: Sendable, Equatable {
    /// How an event changes who holds a lease.
    public enum LeaseChange: Sendable, Equatable {
        case acquired(resource: String, owner: Owner, token: UInt64, expiresAt: LogTimestamp)
        case renewed(resource: String, expiresAt: LogTimestamp)
        /// Released or recorded expired: the tenure of `token` ends.
        case ended(resource: String, token: UInt64)
    }

    public var jobIDs: [String] = []
    public var deliveryID: String?
    public var conversationID: String?
    /// Lease resources and session namespaces (`<channel>/<account>`) the event concerns.
    public var accounts: [String] = []
    /// The subject of a `command.rejected` (a job, delivery, lease or namespace).
    public var rejectedSubject: String?
    /// Worker ids the event names (owner, claimant, requester, holder, writer of a channel event).
    public var workerIDs: [String] = []
    public var lease: LeaseChange?

    public init() {}

    /// The subjects of `event` — the one place the timeline looks at decoded events.
    public init(_ event: SwitchboardEvent) {
        switch event {
        case .messageReceived(let e):
            conversationID = e.conversationID
            accounts = ["\(e.channel)/\(e.accountID)"]
        case .contactUpdated(let e):
            accounts = ["\(e.channel)/\(e.accountID)"]
        case .commandRejected(let e):
            rejectedSubject = e.subject
            workerIDs = [e.workerID]
        case .jobEnqueued(let e):
            jobIDs = [e.jobID] + (e.parentJobID.map { [$0] } ?? [])
            conversationID = e.conversationID
        case .jobClaimed(let e):
            jobIDs = [e.jobID]
            workerIDs = [e.workerID]
        case .jobHeartbeat(let e): jobIDs = [e.jobID]
        case .jobCompleted(let e): jobIDs = [e.jobID]
        case .jobFailed(let e): jobIDs = [e.jobID]
        case .jobRetried(let e): jobIDs = [e.jobID]
        case .jobDead(let e): jobIDs = [e.jobID]
        case .jobRequeued(let e): jobIDs = [e.jobID]
        case .jobCancelled(let e): jobIDs = [e.jobID]
        case .jobRetriggered(let e): jobIDs = [e.jobID]
        case .commandHandled(let e): conversationID = e.conversationID
        case .conversationRenamed(let e): conversationID = e.conversationID
        case .conversationDeleted(let e): conversationID = e.conversationID
        case .deliveryEnqueued(let e):
            deliveryID = e.deliveryID
            conversationID = e.conversationID
            accounts = ["\(e.channel)/\(e.accountID)"]
            jobIDs = e.jobID.map { [$0] } ?? []
        case .deliveryClaimed(let e):
            deliveryID = e.deliveryID
            accounts = [e.leaseResource]
            workerIDs = [e.workerID]
        case .deliveryAttempted(let e): deliveryID = e.deliveryID
        case .deliverySent(let e): deliveryID = e.deliveryID
        case .deliveryFailed(let e): deliveryID = e.deliveryID
        case .deliveryUncertain(let e): deliveryID = e.deliveryID
        case .leaseAcquired(let e):
            accounts = [e.resource]
            workerIDs = [e.ownerWorkerID]
            lease = .acquired(
                resource: e.resource, owner: Owner(workerID: e.ownerWorkerID, instance: e.ownerInstance),
                token: e.token, expiresAt: e.expiresAt)
        case .leaseRenewed(let e):
            accounts = [e.resource]
            workerIDs = [e.ownerWorkerID]
            lease = .renewed(resource: e.resource, expiresAt: e.expiresAt)
        case .leaseReleased(let e):
            accounts = [e.resource]
            workerIDs = [e.ownerWorkerID]
            lease = .ended(resource: e.resource, token: e.token)
        case .leaseExpired(let e):
            accounts = [e.resource]
            workerIDs = [e.ownerWorkerID]
            lease = .ended(resource: e.resource, token: e.token)
        case .leaseDenied(let e):
            accounts = [e.resource]
            workerIDs = [e.requesterWorkerID] + (e.holderWorkerID.map { [$0] } ?? [])
        case .channelConnected(let e):
            accounts = ["\(e.channel)/\(e.accountID)"]
            workerIDs = [e.workerID]
        case .channelDisconnected(let e):
            accounts = ["\(e.channel)/\(e.accountID)"]
            workerIDs = [e.workerID]
        case .inboundIgnored(let e): accounts = ["\(e.channel)/\(e.accountID)"]
        case .webhookRejected(let e):
            accounts = ["\(e.channel)/\(e.accountID)"]
            workerIDs = [e.workerID]
        case .deliveryStatusReported(let e):
            deliveryID = e.deliveryID
            accounts = ["\(e.channel)/\(e.accountID)"]
        case .sessionEntrySet(let e): accounts = [e.namespace]
        case .sessionEntryRemoved(let e): accounts = [e.namespace]
        case .assistantMessage(let e):
            jobIDs = [e.jobID]
            conversationID = e.conversationID
        case .assistantDelta(let e):
            jobIDs = [e.jobID]
            conversationID = e.conversationID
        case .conversationSummarized(let e):
            jobIDs = [e.jobID]
            conversationID = e.conversationID
        case .toolCall(let e):
            jobIDs = [e.jobID]
            conversationID = e.conversationID
        case .toolResult(let e): jobIDs = [e.jobID]
        case .toolApproval(let e):
            jobIDs = [e.jobID]
            conversationID = e.conversationID
        case .workerStarted(let e): workerIDs = [e.workerID]
        case .workerStopped(let e): workerIDs = [e.workerID]
        }
    }
}

/// Which records a timeline shows; every filter set must match.
public struct TimelineFilter: Sendable, Equatable {
    /// A channel account: `default` is the WhatsApp account `whatsapp/default`; `telegram/default` names the channel.
    public var account: String?
    public var conversation: String?
    public var job: String?
    public var delivery: String?
    /// A `WORKER_ID`: records it wrote or that name it.
    public var worker: String?

    public init(
        account: String? = nil, conversation: String? = nil, job: String? = nil, delivery: String? = nil,
        worker: String? = nil
    ) {
        self.account = account
        self.conversation = conversation
        self.job = job
        self.delivery = delivery
        self.worker = worker
    }

    /// Whether the record with these subjects, writer and correlation id passes.
    func matches(_ subjects: EventSubjects, writer: WriterIdentity, correlationID: String?) -> Bool {
        if let account {
            let resource = account.contains("/") ? account : "whatsapp/\(account)"
            guard subjects.accounts.contains(resource) || subjects.rejectedSubject == resource else { return false }
        }
        if let conversation, subjects.conversationID != conversation && correlationID != conversation {
            return false
        }
        if let job, !subjects.jobIDs.contains(job) && subjects.rejectedSubject != job { return false }
        if let delivery, subjects.deliveryID != delivery && subjects.rejectedSubject != delivery { return false }
        if let worker, writer.workerID != worker && !subjects.workerIDs.contains(worker) { return false }
        return true
    }
}

/// One record of an incident's timeline, with the live lease holders at its log time.
public struct TimelineEntry: Sendable, Equatable, Codable, CustomStringConvertible {
    public var seq: UInt64
    public var time: String
    public var type: String
    public var writer: String
    /// The payload when it is JSON.
    public var payload: JSONValue?
    /// `resource=worker#instance@token` of every live lease, comma-separated; `-` when none.
    public var leaseHolders: String
    private var payloadText: String

    enum CodingKeys: String, CodingKey {
        case seq, time, type, writer, payload, leaseHolders
    }

    init(_ record: Record, leaseHolders: String, redactions: Redactions) {
        seq = record.seq
        time = record.timestamp.description
        type = record.type
        writer = record.writer.description
        self.leaseHolders = leaseHolders
        if let deletion = redactions.hiding(record) {
            let placeholder = Redactions.placeholder(deletion, conversationID: record.correlationID ?? "")
            payload = placeholder
            payloadText = placeholder.jsonText
            return
        }
        payload = JSONValue(json: record.payload)
        payloadText = String(decoding: record.payload, as: UTF8.self)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        seq = try container.decode(UInt64.self, forKey: .seq)
        time = try container.decode(String.self, forKey: .time)
        type = try container.decode(String.self, forKey: .type)
        writer = try container.decode(String.self, forKey: .writer)
        payload = try container.decodeIfPresent(JSONValue.self, forKey: .payload)
        leaseHolders = try container.decode(String.self, forKey: .leaseHolders)
        payloadText = ""
    }

    /// `seq time type writer holders=… payload`, tab-separated.
    public var description: String { "\(seq)\t\(time)\t\(type)\t\(writer)\tholders=\(leaseHolders)\t\(payloadText)" }
}

/// An incident's records in order, with who held each lease at every record.
public enum Timeline {
    /// The records `first...last` that pass `filter`. Lease holders are followed from seq 1.
    public static func run(
        _ log: EventLog, from first: UInt64, to last: UInt64, filter: TimelineFilter,
        redactions: Redactions = Redactions()
    ) throws -> [TimelineEntry] {
        var holders: [String: (owner: Owner, token: UInt64, expiresAt: LogTimestamp)] = [:]
        var entries: [TimelineEntry] = []
        guard last >= 1 else { return [] }
        func visit(_ record: Record, _ event: SwitchboardEvent?) {
            let subjects = event.map(EventSubjects.init) ?? EventSubjects()
            switch subjects.lease {
            case .acquired(let resource, let owner, let token, let expiresAt)?:
                holders[resource] = (owner, token, expiresAt)
            case .renewed(let resource, let expiresAt)?:
                holders[resource]?.expiresAt = expiresAt
            case .ended(let resource, let token)?:
                if holders[resource]?.token == token { holders[resource] = nil }
            case nil:
                break
            }
            guard record.seq >= first,
                filter.matches(subjects, writer: record.writer, correlationID: record.correlationID)
            else { return }
            let live = holders.filter { $0.value.expiresAt >= record.timestamp }
                .map { "\($0.key)=\($0.value.owner)@\($0.value.token)" }.sorted().joined(separator: ",")
            entries.append(TimelineEntry(record, leaseHolders: live.isEmpty ? "-" : live, redactions: redactions))
        }
        try ProjectionReplay.run(SwitchboardProjector(), of: log, through: min(last, try log.lastSeq())) { batch in
            for decoded in batch { visit(decoded.record, decoded.event) }
        }
        return entries
    }
}
