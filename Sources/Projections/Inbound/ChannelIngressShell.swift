import Crypto
import EventLog
import Foundation
import SwitchboardEvents

// MARK: - Shell: load, decide, append inside the write transaction

/// The ingress decider's shell: decides a batch item by item inside one write transaction, appending each item's
/// events before the next is decided.
public enum ChannelIngressShell {
    /// Decides `items` in order; all are recorded or none (one transaction).
    public static func ingest(
        _ items: [IngressItem], jobs: JobSettings, deliveries: DeliverySettings, _ context: inout WriteContext
    ) throws -> [IngressOutcome] {
        var outcomes: [IngressOutcome] = []
        outcomes.reserveCapacity(items.count)
        for item in items {
            let lookup = TableIngressLookup(tables: context.tables, now: context.now)
            outcomes.append(
                try context.commit(
                    ChannelIngressDecider.decide(
                        item, lookup: lookup, jobs: jobs, deliveries: deliveries, now: context.now,
                        nextSeq: context.nextSeq)))
        }
        return outcomes
    }

    /// ``ChannelIngressDecider/approve(channel:code:by:confirmation:confirmationDeliveryID:deliveries:lookup:)``,
    /// appended.
    public static func approve(
        channel: String, code: String, by name: String, confirmation: String?, confirmationDeliveryID: String,
        deliveries: DeliverySettings, _ context: inout WriteContext
    ) throws -> PairingApproval {
        try context.commit(
            ChannelIngressDecider.approve(
                channel: channel, code: code, by: name, confirmation: confirmation,
                confirmationDeliveryID: confirmationDeliveryID, deliveries: deliveries,
                lookup: TableIngressLookup(tables: context.tables, now: context.now)))
    }
}

/// ``IngressLookup`` over the write transaction's tables.
struct TableIngressLookup<Tables: TableReading>: IngressLookup {
    let tables: Tables
    let now: LogTimestamp

    private var inbound: TableInboundLookup<Tables> { TableInboundLookup(tables: tables, now: now) }

    func firstSeq(channel: String, accountID: String, externalID: String) throws -> UInt64? {
        try inbound.firstSeq(channel: channel, accountID: accountID, externalID: externalID)
    }

    func contact(channel: String, accountID: String, contactID: String) throws -> ContactState? {
        try inbound.contact(channel: channel, accountID: accountID, contactID: contactID)
    }

    func awaitingApprovals(conversationID: String) throws -> [ToolCallState] {
        try inbound.awaitingApprovals(conversationID: conversationID)
    }

    func activeJobs(conversationID: String) throws -> [JobState] {
        try inbound.activeJobs(conversationID: conversationID)
    }

    func streamedText(jobID: String, token: UInt64) throws -> String {
        try inbound.streamedText(jobID: jobID, token: token)
    }

    func statusSeq(channel: String, accountID: String, providerMessageID: String, status: String) throws -> UInt64? {
        try tables.withValue(
            tables.table(ProjectionTable.deliveryStatuses), Key(channel, accountID, providerMessageID, status).bytes
        ) {
            guard let bytes = $0, bytes.count == 8 else { return nil }
            return UInt64(bigEndian: bytes.loadUnaligned(as: UInt64.self))
        }
    }

    func deliveryID(channel: String, accountID: String, providerMessageID: String) throws -> String? {
        try tables.withValue(
            tables.table(ProjectionTable.deliveryProviderIDs), Key(channel, accountID, providerMessageID).bytes
        ) { $0.map { String(decoding: $0, as: UTF8.self) } }
    }

    func jobID(idempotencyKey: String) throws -> String? {
        try tables.get(tables.table(ProjectionTable.jobKeys), Key(idempotencyKey).bytes).map {
            String(decoding: $0, as: UTF8.self)
        }
    }

    func jobExists(_ jobID: String) throws -> Bool {
        try tables.get(tables.table(ProjectionTable.jobs), Key(jobID).bytes) != nil
    }

    func deliveryID(idempotencyKey: String) throws -> String? {
        try tables.get(tables.table(ProjectionTable.deliveryKeys), Key(idempotencyKey).bytes).map {
            String(decoding: $0, as: UTF8.self)
        }
    }

    func pendingContactsWithCodes(channel: String) throws -> [ContactState] {
        var contacts: [ContactState] = []
        let prefix = Key(channel).prefix
        try tables.scan(tables.table(ProjectionTable.contacts), from: prefix) { key, value in
            guard hasPrefix(key, prefix) else { return false }
            let contact = try StateCoding.decode(ContactState.self, value)
            if contact.access == .pending, contact.pairingCodeHash != nil { contacts.append(contact) }
            return true
        }
        return contacts
    }
}
