import EventLog
import SwitchboardEvents
import Foundation

// The reports `replay`'s inspection commands print: each a `Codable` value built from a ``StateReader``.
// Times are ISO-8601 strings (`LogTimestamp.description`), as the operator reads and passes them back (`--at`).

/// A lease as an operator reads it, judged at the log time being shown.
public struct LeaseReport: Sendable, Equatable, Codable {
    /// Held and unexpired, held but past its expiry (no record of the expiry yet), or released / recorded expired.
    public enum State: String, Sendable, Equatable, Codable {
        case held, expired, released
    }

    public var resource: String
    public var ownerWorkerID: String
    public var ownerInstance: String
    public var token: UInt64
    public var acquiredAt: String
    public var expiresAt: String
    public var held: Bool
    /// Held and not expired at the log time shown.
    public var live: Bool
    public var state: State

    public init(_ lease: LeaseState, now: LogTimestamp) {
        resource = lease.resource
        ownerWorkerID = lease.owner.workerID
        ownerInstance = lease.owner.instance
        token = lease.token
        acquiredAt = lease.acquiredAt.description
        expiresAt = lease.expiresAt.description
        held = lease.held
        live = lease.isLive(at: now)
        state = live ? .held : (held ? .expired : .released)
    }

    /// The owner as `worker#instance-prefix`.
    public var owner: String { Owner(workerID: ownerWorkerID, instance: ownerInstance).description }
}

/// A channel account seen in the log, with its live lease holder.
public struct AccountReport: Sendable, Equatable, Codable {
    /// `<channel>/<account>`.
    public var account: String
    /// The live holder as `worker#instance-prefix`; absent when nobody holds the lease.
    public var holder: String?
    /// The token of the account's current or last lease.
    public var token: UInt64?
}

/// A session entry's key and size — never its value.
public struct SessionEntryReport: Sendable, Equatable, Codable {
    public var namespace: String
    public var key: String
    public var bytes: Int
    public var encrypted: Bool
}

/// A job as an operator reads it.
public struct JobReport: Sendable, Equatable, Codable {
    public var jobID: String
    public var status: JobStatus
    public var conversationID: String
    public var attempt: Int
    public var maxAttempts: Int
    public var token: UInt64
    public var claimedBy: String?
    public var visibleUntil: String?
    /// When a waiting job may run next; `nil` when it does not wait (running, done, dead).
    public var notBefore: String?
    public var lastReason: String?
    public var lastMessage: String?

    public init(_ job: JobState) {
        jobID = job.jobID
        status = job.status
        conversationID = job.conversationID
        attempt = job.attempt
        maxAttempts = job.maxAttempts
        token = job.token
        claimedBy = job.claimedBy?.description
        visibleUntil = job.visibleUntil?.description
        notBefore = JobQueues.isQueued(job) ? job.notBefore.description : nil
        lastReason = job.lastReason
        lastMessage = job.lastMessage
    }
}

/// An outbound delivery as an operator reads it.
public struct DeliveryReport: Sendable, Equatable, Codable {
    public var deliveryID: String
    public var status: DeliveryStatus
    /// The lease resource of its channel account, e.g. `whatsapp/default`.
    public var account: String
    public var recipient: String
    public var attempt: Int
    public var token: UInt64
    public var leaseToken: UInt64?
    public var providerMessageID: String?
    public var lastError: String?
    public var idempotencyKey: String

    public init(_ delivery: DeliveryState) {
        deliveryID = delivery.deliveryID
        status = delivery.status
        account = delivery.leaseResource
        recipient = delivery.recipient
        attempt = delivery.attempt
        token = delivery.token
        leaseToken = delivery.leaseToken
        providerMessageID = delivery.providerMessageID
        lastError = delivery.lastError
        idempotencyKey = delivery.idempotencyKey
    }
}

/// A conversation with its contact's status.
public struct ConversationReport: Sendable, Equatable, Codable {
    public var conversationID: String
    public var channel: String
    public var accountID: String
    public var contactID: String
    public var messages: Int
    public var firstSeq: UInt64
    public var lastSeq: UInt64
    /// `allowed`, `blocked` or `pending`; absent when the contact is unknown.
    public var contactStatus: String?
    /// The owner's title, when renamed.
    public var title: String?
    /// Its deletion, when it was deleted.
    public var deleted: DeletionReport?
}

/// A conversation's deletion: all `replay` shows of what it hid.
public struct DeletionReport: Sendable, Equatable, Codable {
    public var at: String
    public var by: String
    /// Records up to this seq are redacted.
    public var throughSeq: UInt64

    init(_ deletion: ConversationDeletion) {
        at = deletion.at.description
        by = deletion.by
        throughSeq = deletion.throughSeq
    }
}

/// One message of a conversation, with its place in the conversation's tree.
public struct MessageReport: Sendable, Equatable, Codable {
    public var seq: UInt64
    public var time: String
    /// `user` or `assistant`.
    public var role: String
    public var text: String
    /// A user message's parent message (`0`: none).
    public var parentSeq: UInt64?
    /// A user message's reply version shown when it was written.
    public var afterJobID: String?
    /// A reply's job and the message it answers.
    public var jobID: String?
    public var triggerSeq: UInt64?
    /// A reply's finish reason (`stopped`, `length`, …).
    public var finishReason: String?
    /// A reply's place among the replies to its message, `i/n`, when there are several (Regenerate).
    public var version: String?
    /// A user message's place among the messages written at the same point, `i/n`, when there are several
    /// (an edit branched there).
    public var branch: String?

    /// `seq time role [place] text`, tab-separated.
    public var line: String {
        var place: [String] = []
        if role == "user" {
            if let parentSeq, parentSeq > 0 { place.append("after \(parentSeq)") }
            if let afterJobID { place.append("beside reply \(afterJobID)") }
            if let branch { place.append("branch \(branch)") }
        } else {
            if let triggerSeq { place.append("reply to \(triggerSeq)") }
            if let version { place.append("version \(version)") }
            if let finishReason { place.append(finishReason) }
        }
        return "\(seq)\t\(time)\t\(role)\t[\(place.joined(separator: ", "))]\t\(text)"
    }
}

/// `replay conversations show --id`: a conversation's messages as a tree (versions and branches), or only that
/// it was deleted.
public struct ConversationHistoryReport: Sendable, Equatable, Codable {
    public var conversationID: String
    public var title: String?
    public var deleted: DeletionReport?
    public var messages: [MessageReport]

    public var lines: [String] {
        var out: [String] = []
        if let deleted {
            out.append(
                "\(conversationID)\tdeleted at \(deleted.at) by \(deleted.by)\t(records through seq \(deleted.throughSeq) "
                    + "are redacted)")
        }
        return out + messages.map(\.line)
    }
}

/// Every projection summarized at one point of the log.
public struct StateReport: Sendable, Equatable, Codable {
    /// The last seq included.
    public var seq: UInt64
    /// The log time of that record.
    public var time: String
    /// The state digest (hex).
    public var digest: String
    /// The snapshot seq the rebuild started from; absent for live state or a rebuild from seq 1.
    public var rebuiltFrom: UInt64?
    public var leases: [LeaseReport]
    /// Job counts by status.
    public var jobs: [String: Int]
    /// Delivery counts by status.
    public var deliveries: [String: Int]
    public var conversations: Int
    public var contacts: Int
    public var sessionEntries: Int
}

/// The inspection queries behind `replay`'s commands, over live or rebuilt state.
public enum Inspection {
    /// The lease of `resource`, if any.
    public static func lease(_ resource: String, _ reader: StateReader, now: LogTimestamp) throws -> LeaseReport? {
        try reader.lease(resource).map { LeaseReport($0, now: now) }
    }

    /// The leases `workerID` holds live at `now`.
    public static func leases(ownedBy workerID: String, _ reader: StateReader, now: LogTimestamp) throws
        -> [LeaseReport]
    {
        try reader.leases().map { LeaseReport($0, now: now) }.filter { $0.ownerWorkerID == workerID && $0.live }
    }

    /// Every channel account named by a lease, a delivery or a conversation, sorted, with its live holder.
    public static func accounts(_ reader: StateReader, now: LogTimestamp) throws -> [AccountReport] {
        var accounts: Set<String> = []
        for lease in try reader.leases() { accounts.insert(lease.resource) }
        for delivery in try reader.deliveries() { accounts.insert(delivery.leaseResource) }
        for conversation in try reader.conversations() {
            accounts.insert("\(conversation.channel)/\(conversation.accountID)")
        }
        return try accounts.sorted().map { account in
            let lease = try reader.lease(account)
            let holder = lease.flatMap { $0.isLive(at: now) ? $0.owner.description : nil }
            return AccountReport(account: account, holder: holder, token: lease?.token)
        }
    }

    /// Session keys and sizes, of one namespace or all.
    public static func sessionEntries(namespace: String?, _ reader: StateReader) throws -> [SessionEntryReport] {
        try reader.sessionEntries(namespace: namespace).map {
            SessionEntryReport(namespace: $0.namespace, key: $0.key, bytes: $0.bytes, encrypted: $0.encrypted)
        }
    }

    /// Jobs, of one status or all.
    public static func jobs(_ status: JobStatus?, _ reader: StateReader) throws -> [JobReport] {
        try reader.jobs(status).map(JobReport.init)
    }

    /// Deliveries, of one status or all.
    public static func deliveries(_ status: DeliveryStatus?, _ reader: StateReader) throws -> [DeliveryReport] {
        try reader.deliveries(status).map(DeliveryReport.init)
    }

    /// Every conversation with its contact's status.
    public static func conversations(_ reader: StateReader) throws -> [ConversationReport] {
        try reader.conversations().map { c in
            let contact = try reader.contact(channel: c.channel, accountID: c.accountID, contactID: c.contactID)
            return ConversationReport(
                conversationID: c.conversationID, channel: c.channel, accountID: c.accountID, contactID: c.contactID,
                messages: c.messageCount, firstSeq: c.firstSeq, lastSeq: c.lastSeq, contactStatus: contact?.status,
                title: c.title, deleted: c.deletion.map(DeletionReport.init))
        }
    }

    /// The last `limit` messages of a conversation, each with its place in the tree; a deleted conversation's
    /// deletion (its messages since, if any).
    public static func history(_ conversationID: String, limit: Int, _ reader: StateReader) throws
        -> ConversationHistoryReport
    {
        let conversation = try reader.conversation(conversationID)
        let messages = try reader.history(conversationID, limit: limit)
        let tree = ConversationTree(messages)
        let reports = messages.map { m -> MessageReport in
            var report = MessageReport(seq: m.seq, time: m.time.description, role: m.role, text: m.text)
            if m.role == "user" {
                report.parentSeq = m.parentSeq
                report.afterJobID = m.afterJobID
                let siblings = tree.children(of: m.parentSeq).filter { $0.afterJobID == m.afterJobID }
                if siblings.count > 1, let index = siblings.firstIndex(where: { $0.seq == m.seq }) {
                    report.branch = "\(index + 1)/\(siblings.count)"
                }
            } else {
                report.jobID = m.jobID
                report.triggerSeq = m.triggerSeq
                report.finishReason = m.finishReason
                if let trigger = m.triggerSeq {
                    let versions = tree.versions(of: trigger)
                    if versions.count > 1, let index = versions.firstIndex(where: { $0.seq == m.seq }) {
                        report.version = "\(index + 1)/\(versions.count)"
                    }
                }
            }
            return report
        }
        return ConversationHistoryReport(
            conversationID: conversationID, title: conversation?.title,
            deleted: conversation?.deletion.map(DeletionReport.init), messages: reports)
    }

    /// Every projection summarized, as of seq `seq` at log time `now`.
    public static func state(
        _ reader: StateReader, seq: UInt64, now: LogTimestamp, rebuiltFrom: UInt64?
    ) throws -> StateReport {
        StateReport(
            seq: seq, time: now.description, digest: try reader.digest().hex, rebuiltFrom: rebuiltFrom,
            leases: try reader.leases().map { LeaseReport($0, now: now) },
            jobs: Dictionary(grouping: try reader.jobs(), by: \.status.rawValue).mapValues(\.count),
            deliveries: Dictionary(grouping: try reader.deliveries(), by: \.status.rawValue).mapValues(\.count),
            conversations: try reader.conversations().count, contacts: try reader.contacts().count,
            sessionEntries: try reader.sessionEntries().count)
    }
}
