import EventLog
import SwitchboardEvents
import Foundation

/// The tables the Switchboard projector owns. All of them are derived from the log. Cases are in name order
/// (the digest's order); a case's raw value is its index in ``SwitchboardProjector/tables``, so its handle is
/// resolved once, when the log opens.
public enum ProjectionTable: Int, CaseIterable, Sendable {
    case accountRate
    case approvalsDue
    case contacts
    case conversationActivity
    case conversationJobs
    case conversationQueues
    case conversations
    case deliveries
    case deliveryAttention
    case deliveryInflight
    case deliveryKeys
    case deliveryProviderIDs
    case deliveryReady
    case deliveryStatuses
    case inbound
    case jobDead
    case jobKeys
    case jobReady
    case jobRunning
    case jobs
    case leases
    case messages
    case recipientQueue
    case recipientRate
    case redactions
    case replyDeltas
    case sessions
    case summaries
    case toolCalls
    case treeJobs

    /// The LMDB database name.
    public var name: String {
        switch self {
        case .accountRate: "p.account_rate"
        case .approvalsDue: "p.approvals_due"
        case .contacts: "p.contacts"
        case .conversationActivity: "p.conversation_activity"
        case .conversationJobs: "p.conversation_jobs"
        case .conversationQueues: "p.conversation_queues"
        case .conversations: "p.conversations"
        case .deliveries: "p.deliveries"
        case .deliveryAttention: "p.delivery_attention"
        case .deliveryInflight: "p.delivery_inflight"
        case .deliveryKeys: "p.delivery_keys"
        case .deliveryProviderIDs: "p.delivery_provider_ids"
        case .deliveryReady: "p.delivery_ready"
        case .deliveryStatuses: "p.delivery_statuses"
        case .inbound: "p.inbound"
        case .jobDead: "p.job_dead"
        case .jobKeys: "p.job_keys"
        case .jobReady: "p.job_ready"
        case .jobRunning: "p.job_running"
        case .jobs: "p.jobs"
        case .leases: "p.leases"
        case .messages: "p.messages"
        case .recipientQueue: "p.recipient_queue"
        case .recipientRate: "p.recipient_rate"
        case .redactions: "p.redactions"
        case .replyDeltas: "p.reply_deltas"
        case .sessions: "p.sessions"
        case .summaries: "p.summaries"
        case .toolCalls: "p.tool_calls"
        case .treeJobs: "p.tree_jobs"
        }
    }

    /// Every table name, in digest order.
    public static let all: [String] = allCases.map(\.name)
}

/// The projection tables (the older spelling of ``ProjectionTable``).
public typealias ProjectionTables = ProjectionTable

extension TableReading {
    /// The handle of `table`, resolved when the log opened.
    @inline(__always)
    func table(_ table: ProjectionTable) -> Table { self.table(at: table.rawValue) }
}

extension EventLog {
    /// The handle of projection table `table` (the log must be open with the Switchboard projector).
    public func table(_ table: ProjectionTable) -> Table { self.table(table.name) }
}

// MARK: Keys

/// Builds table keys: string parts separated by a 0 byte, numbers as fixed-width big-endian (so keys sort in
/// numeric order).
struct Key {
    private(set) var bytes: [UInt8] = []

    init(_ parts: String...) {
        bytes.reserveCapacity(parts.reduce(parts.count) { $0 + $1.utf8.count } + 24)
        for (index, part) in parts.enumerated() {
            if index > 0 { bytes.append(0) }
            bytes.append(contentsOf: part.utf8)
        }
    }

    func appending(_ part: String) -> Key {
        var key = self
        key.bytes.append(0)
        key.bytes.append(contentsOf: part.utf8)
        return key
    }

    func appending(_ number: UInt64) -> Key {
        var key = self
        key.bytes.append(0)
        withUnsafeBytes(of: number.bigEndian) { key.bytes.append(contentsOf: $0) }
        return key
    }

    /// The key as a prefix (with its trailing separator) for scanning everything under it.
    var prefix: [UInt8] { bytes + [0] }
}

/// A log time as an order-preserving unsigned number (for keys).
func orderKey(_ time: LogTimestamp) -> UInt64 { UInt64(bitPattern: time.microseconds) ^ (1 << 63) }

func hasPrefix(_ bytes: [UInt8], _ prefix: [UInt8]) -> Bool {
    bytes.count >= prefix.count && bytes[0..<prefix.count].elementsEqual(prefix)
}

// MARK: Stored state

/// How projection state values are stored: the positional binary form of ``BinaryState``.
enum StateCoding {
    static func encode<T: Encodable>(_ value: T) throws -> [UInt8] { try BinaryState.encode(value) }
    static func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) throws -> T {
        try BinaryState.decode(type, bytes)
    }
    // The hot types (written on every decision) skip the dynamic cast that finds their hand-written coder.
    static func encode<T: HotState & Encodable>(_ value: T) -> [UInt8] { BinaryState.encode(value) }
    static func decode<T: HotState & Decodable>(_ type: T.Type, _ bytes: [UInt8]) throws -> T {
        try BinaryState.decode(type, bytes)
    }
}

extension TableWriting {
    func store<T: Encodable>(_ value: T, _ table: ProjectionTable, _ key: Key) throws {
        try put(self.table(table), key.bytes, try StateCoding.encode(value))
    }

    func store<T: HotState & Encodable>(_ value: T, _ table: ProjectionTable, _ key: Key) throws {
        try put(self.table(table), key.bytes, StateCoding.encode(value))
    }

    func mark(_ table: ProjectionTable, _ key: Key, _ value: [UInt8] = []) throws {
        try put(self.table(table), key.bytes, value)
    }

    func remove(_ table: ProjectionTable, _ key: Key) throws {
        try delete(self.table(table), key.bytes)
    }
}

extension TableReading {
    func load<T: Decodable>(_ type: T.Type, _ table: ProjectionTable, _ key: Key) throws -> T? {
        try get(self.table(table), key.bytes).map { try StateCoding.decode(type, $0) }
    }

    func load<T: HotState & Decodable>(_ type: T.Type, _ table: ProjectionTable, _ key: Key) throws -> T? {
        try get(self.table(table), key.bytes).map { try StateCoding.decode(type, $0) }
    }
}

extension Snapshot {
    func load<T: Decodable>(_ type: T.Type, _ table: Table, _ key: Key) throws -> T? {
        try get(table, key.bytes).map { try StateCoding.decode(type, $0) }
    }
}

/// Who holds or asks for a lease or a claim: the worker id and the process instance.
public struct Owner: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The operator's worker id (`WORKER_ID`).
    public var workerID: String
    /// The process instance (the `uuidString` of its `WriterIdentity.instanceID`).
    public var instance: String

    public init(workerID: String, instance: String) {
        self.workerID = workerID
        self.instance = instance
    }

    /// The owner a process is: its writer identity.
    public init(_ writer: WriterIdentity) {
        self.init(workerID: writer.workerID, instance: writer.instanceID.uuidString)
    }

    public var description: String { "\(workerID)#\(instance.prefix(8).lowercased())" }
}

/// A lease as the projection holds it.
public struct LeaseState: Codable, Sendable, Equatable {
    public var resource: String
    public var owner: Owner
    /// The fencing token of the current (or last) tenure: the seq of its `lease.acquired`.
    public var token: UInt64
    public var acquiredAt: LogTimestamp
    public var expiresAt: LogTimestamp
    /// `false` once released or recorded as expired.
    public var held: Bool

    /// Whether the lease is held and not expired at `now` (it expires strictly after `expiresAt`).
    public func isLive(at now: LogTimestamp) -> Bool { held && now <= expiresAt }
}

/// Job statuses.
public enum JobStatus: String, Codable, Sendable, CaseIterable {
    case pending, running, completed, dead
    /// Stopped by a person (`job.cancelled`): ended, never retried.
    case cancelled
}

/// A job as the projection holds it.
public struct JobState: Codable, Sendable, Equatable {
    public var jobID: String
    public var idempotencyKey: String
    public var conversationID: String
    public var kind: String
    public var priority: Int
    public var parentJobID: String?
    public var rootJobID: String
    public var maxAttempts: Int
    public var payload: [String: String]
    public var enqueueSeq: UInt64
    public var status: JobStatus
    /// Claims made so far (the attempt number of the current or last claim).
    public var attempt: Int
    /// Not claimable before this time.
    public var notBefore: LogTimestamp
    /// The current claim's fencing token (the seq of its `job.claimed`); 0 before the first claim.
    public var token: UInt64
    public var claimedBy: Owner?
    public var visibleUntil: LogTimestamp?
    public var lastReason: String?
    public var lastMessage: String?
    public var result: String?
    /// The `message.received` that triggered the job (format 6), so its reply needs no second read of the log.
    public var triggeringMessageSeq: UInt64? = nil
    /// The provider id of the message the job answers, when its `job.enqueued` recorded it (format 6).
    public var replyToExternalID: String? = nil
}

/// Delivery statuses.
public enum DeliveryStatus: String, Codable, Sendable, CaseIterable {
    /// Waiting to be claimed (possibly not before `notBefore`).
    case pending
    /// Claimed; no provider call started yet.
    case claimed
    /// `delivery.attempted` recorded: the provider call may be in flight.
    case attempting
    case sent
    /// Permanently failed or out of attempts.
    case failed
    /// The request may have reached the provider; not retried automatically.
    case uncertain
}

/// A delivery as the projection holds it.
public struct DeliveryState: Codable, Sendable, Equatable {
    public var deliveryID: String
    public var idempotencyKey: String
    public var channel: String
    public var accountID: String
    public var recipient: String
    public var conversationID: String
    public var kind: String
    public var text: String
    public var part: Int
    public var maxAttempts: Int
    public var enqueueSeq: UInt64
    public var status: DeliveryStatus
    public var attempt: Int
    public var notBefore: LogTimestamp
    public var token: UInt64
    public var leaseToken: UInt64?
    public var claimedBy: Owner?
    public var visibleUntil: LogTimestamp?
    public var lastError: String?
    public var providerMessageID: String?
    public var sourceMessageID: String?
    public var replyToExternalID: String?

    /// The lease resource guarding this delivery's channel account.
    public var leaseResource: String { "\(channel)/\(accountID)" }
}

/// A conversation: one per contact per channel account.
public struct ConversationState: Codable, Sendable, Equatable {
    public var conversationID: String
    public var channel: String
    public var accountID: String
    public var contactID: String
    /// The first seq readers show: the conversation's first record, or the one after its deletion.
    public var firstSeq: UInt64
    public var lastSeq: UInt64
    public var messageCount: Int
    /// The owner's title (`conversation.renamed`); `nil` means the first message's first line.
    public var title: String?
    /// The seq of the newest user message: the parent of the next message that names none.
    public var lastUserSeq: UInt64?
    /// The conversation's deletion, when it was deleted (its records up to ``ConversationDeletion/throughSeq``
    /// are redacted).
    public var deletion: ConversationDeletion?
}

/// A conversation's deletion (`conversation.deleted`): what every reader shows instead of its records.
public struct ConversationDeletion: Codable, Sendable, Equatable {
    /// The last redacted seq.
    public var throughSeq: UInt64
    /// Who deleted it.
    public var by: String
    /// When (log time).
    public var at: LogTimestamp
}

/// One message of a conversation's history: a node of its tree. A user message follows ``parentSeq`` (the
/// reply ``afterJobID`` shown, when named); a reply answers ``triggerSeq`` as job ``jobID`` (replies to one
/// message are its versions).
public struct HistoryMessage: Codable, Sendable, Equatable {
    /// `user` or `assistant`.
    public var role: String
    public var text: String
    public var seq: UInt64
    public var time: LogTimestamp
    /// A user message's parent user message (`0`: none).
    public var parentSeq: UInt64 = 0
    /// A user message's reply version shown when it was written, if named.
    public var afterJobID: String?
    /// A reply's job.
    public var jobID: String?
    /// A reply's triggering message.
    public var triggerSeq: UInt64?
    /// A reply's `finishReason` (`stopped`, `length`, …).
    public var finishReason: String?
    /// A group message's writer (``MessageReceived/senderName``).
    public var sender: String?
    /// Why a user message is not answered (`not_addressed`: group context kept for when the assistant is addressed).
    public var unanswered: String?

    public init(
        role: String, text: String, seq: UInt64, time: LogTimestamp, parentSeq: UInt64 = 0,
        afterJobID: String? = nil, jobID: String? = nil, triggerSeq: UInt64? = nil, finishReason: String? = nil,
        sender: String? = nil, unanswered: String? = nil
    ) {
        self.sender = sender
        self.unanswered = unanswered
        self.role = role
        self.text = text
        self.seq = seq
        self.time = time
        self.parentSeq = parentSeq
        self.afterJobID = afterJobID
        self.jobID = jobID
        self.triggerSeq = triggerSeq
        self.finishReason = finishReason
    }
}

/// A contact's access.
public struct ContactState: Codable, Sendable, Equatable {
    public var channel: String
    public var accountID: String
    public var contactID: String
    /// `allowed`, `blocked` or `pending`.
    public var status: String
    public var pairingCodeHash: String?
}

/// A session entry (log backend).
public struct SessionEntryState: Codable, Sendable, Equatable {
    public var value: Data
    public var encrypted: Bool
    public var seq: UInt64
}

/// The conversation id of a contact on a channel account: one conversation per contact (never one per account).
public func conversationID(channel: String, accountID: String, contactID: String) -> String {
    "\(channel):\(accountID):\(contactID)"
}
