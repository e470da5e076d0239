import Crypto
import EventLog
import SwitchboardEvents
import Foundation

// MARK: - Shell: load, decide, append inside the write transaction

/// ``InboundLookup`` over the write transaction's tables.
struct TableInboundLookup<Tables: TableReading>: InboundLookup {
    let tables: Tables
    /// The transaction's log time (a call past its `expiresAt` awaits nothing).
    var now = LogTimestamp(microseconds: .min)

    func awaitingApprovals(conversationID: String) throws -> [ToolCallState] {
        var callIDs: [String] = []
        try tables.scan(tables.table(ProjectionTables.approvalsDue)) { key, _ in
            if key.count > 9 { callIDs.append(String(decoding: key[9...], as: UTF8.self)) }
            return true
        }
        return try callIDs.compactMap { try tables.load(ToolCallState.self, ProjectionTables.toolCalls, Key($0)) }
            .filter { call in
                call.conversationID == conversationID && call.status == .awaitingApproval
                    && call.expiresAt.map { now <= $0 } ?? true
            }
            .sorted { $0.seq < $1.seq }
    }

    func firstSeq(channel: String, accountID: String, externalID: String) throws -> UInt64? {
        try tables.withValue(tables.table(ProjectionTable.inbound), Key(channel, accountID, externalID).bytes) {
            guard let bytes = $0, bytes.count == 8 else { return nil }
            return UInt64(bigEndian: bytes.loadUnaligned(as: UInt64.self))
        }
    }

    func contact(channel: String, accountID: String, contactID: String) throws -> ContactState? {
        try tables.load(ContactState.self, ProjectionTable.contacts, Key(channel, accountID, contactID))
    }

    func conversation(_ conversationID: String) throws -> ConversationState? {
        try tables.load(ConversationState.self, ProjectionTable.conversations, Key(conversationID))
    }

    func historyMessage(conversationID: String, seq: UInt64) throws -> HistoryMessage? {
        try tables.load(HistoryMessage.self, ProjectionTable.messages, Key(conversationID).appending(seq))
    }

    func job(_ jobID: String) throws -> JobState? {
        try tables.load(JobState.self, ProjectionTable.jobs, Key(jobID))
    }

    func activeJobs(conversationID: String) throws -> [JobState] {
        try ConversationShell.activeJobs(conversationID, tables)
    }

    func streamedText(jobID: String, token: UInt64) throws -> String {
        try SwitchboardProjector.streamedText(jobID, token: token, tables)
    }
}

/// The InboundDecider's shell: loads its state inside the write transaction, calls the pure decider with the
/// transaction's log time and next seq, and appends its events.
public enum InboundShell {
    /// ``InboundDecider/ingest(_:policy:enqueueJob:lookup:nextSeq:)`` against the tables, appended (`message.received`
    /// correlated to its conversation), then the reply job enqueued — all in one transaction.
    public static func ingest(
        _ message: InboundMessage, policy: ContactPolicy, enqueueJob: Bool, jobID: String, jobSettings: JobSettings,
        _ context: inout WriteContext
    ) throws -> IngestResult {
        let decision = try InboundDecider.ingest(
            message, policy: policy, enqueueJob: enqueueJob,
            lookup: TableInboundLookup(tables: context.tables, now: context.now), nextSeq: context.nextSeq)
        for event in decision.events {
            switch event {
            case .messageReceived(let received): try context.append(event, correlationID: received.conversationID)
            case .toolApproval(let approval): try context.append(event, correlationID: approval.conversationID)
            default: try context.append(event)
            }
        }
        switch decision.outcome {
        case .duplicate(let firstSeq):
            return .duplicate(firstSeq: firstSeq)
        case .approvalAnswer(let messageSeq, let conversation, _, _):
            // Recorded with its answer; no reply job (the job awaiting the answer goes on).
            return .accepted(messageSeq: messageSeq, conversationID: conversation, jobID: nil, contactStatus: .allowed)
        case .accepted(let messageSeq, let conversation, let status, let startsJob):
            guard startsJob else {
                return .accepted(
                    messageSeq: messageSeq, conversationID: conversation, jobID: nil, contactStatus: status)
            }
            let lookup = TableInboundLookup(tables: context.tables, now: context.now)
            let reply = InboundReply.decide(
                message, conversationID: conversation, messageSeq: messageSeq,
                state: try lookup.replyState(
                    conversationID: conversation, rules: jobSettings.rules(for: message.channel),
                    timeZone: jobSettings.timeZone),
                now: context.now)
            for event in reply.events { try context.append(event, correlationID: conversation) }
            var enqueued = reply.collectedInto
            if let reminder = reply.reminder {
                var job = Reminders.job(
                    reminder, message: message, conversationID: conversation, messageSeq: messageSeq)
                job.jobID = jobID
                _ = try JobShell.enqueue(job, settings: jobSettings, &context)
            }
            if reply.newJob {
                var job = InboundDecider.replyJob(for: message, conversationID: conversation, messageSeq: messageSeq)
                job.jobID = jobID
                job.runAt = reply.runAt
                enqueued = try JobShell.enqueue(job, settings: jobSettings, &context).jobID
            }
            return .accepted(
                messageSeq: messageSeq, conversationID: conversation, jobID: enqueued, contactStatus: status)
        }
    }

    /// ``InboundDecider/setContact(channel:accountID:contactID:status:by:)``, appended.
    @discardableResult
    public static func setContact(
        channel: String, accountID: String, contactID: String, status: ContactStatus, by name: String,
        _ context: inout WriteContext
    ) throws -> ContactState {
        try context.commit(
            InboundDecider.setContact(
                channel: channel, accountID: accountID, contactID: contactID, status: status, by: name))
    }

    /// ``InboundDecider/startPairing(channel:accountID:contactID:code:by:)``, appended.
    @discardableResult
    public static func startPairing(
        channel: String, accountID: String, contactID: String, code: String, by name: String,
        _ context: inout WriteContext
    ) throws -> ContactState {
        try context.commit(
            InboundDecider.startPairing(
                channel: channel, accountID: accountID, contactID: contactID, code: code, by: name))
    }

    /// ``InboundDecider/completePairing(_:code:)`` of the stored contact, appended.
    public static func completePairing(
        channel: String, accountID: String, contactID: String, code: String, _ context: inout WriteContext
    ) throws -> PairingResult {
        let contact = try TableInboundLookup(tables: context.tables).contact(
            channel: channel, accountID: accountID, contactID: contactID)
        return try context.commit(InboundDecider.completePairing(contact, code: code))
    }
}
