import Crypto
import EventLog
import Foundation
import SwitchboardEvents

/// How a channel account treats direct messages from senders it has not allowed (its DM policy).
public enum DMPolicy: String, Sendable, Equatable, CaseIterable {
    /// An unknown sender gets a one-time pairing code and nothing else; the owner approves the code
    /// (`agent pairing approve <channel> <code>`). The default.
    case pairing
    /// Only senders on the configured allowlist (or allowed by an operator) are answered; others are recorded.
    case allowlist
    /// Everyone is answered.
    case open
    /// Nobody is answered: every message is recorded and starts nothing.
    case disabled
}

/// What the channel worker tells the ingress decider about a sender, besides what the log knows.
public struct SenderAccess: Sendable, Equatable {
    /// The channel account's DM policy.
    public var policy: DMPolicy
    /// The sender is on the account's configured allowlist (`TELEGRAM_ALLOWED_CHAT_IDS`,
    /// `WHATSAPP_ALLOWED_NUMBERS`): allowed on first sight, and a pending contact becomes allowed.
    public var allowlisted: Bool
    /// A fresh code, used only when this message is the one that issues the sender's pairing code.
    public var pairingCode: String?
    /// The text sent to the sender with the code (it contains the code).
    public var pairingReply: String?

    public init(policy: DMPolicy, allowlisted: Bool = false, pairingCode: String? = nil, pairingReply: String? = nil) {
        self.policy = policy
        self.allowlisted = allowlisted
        self.pairingCode = pairingCode
        self.pairingReply = pairingReply
    }
}

/// One provider item a webhook call or a poll brought in.
public enum IngressItem: Sendable, Equatable {
    /// A message, with what the worker knows about its sender.
    case message(InboundMessage, SenderAccess)
    /// An update acknowledged without a message (recorded once per external id).
    case ignored(InboundIgnored)
    /// The provider's status report on a message we sent (recorded once per message id and status).
    case status(DeliveryStatusReported)
}

/// What became of one ``IngressItem``.
public enum IngressOutcome: Sendable, Equatable {
    /// A message seen for the first time: recorded (and answered when its sender is allowed). `pairingDeliveryID`
    /// is the delivery that carries the sender's pairing code when this message issued it.
    case message(
        messageSeq: UInt64, conversationID: String, jobID: String?, contactStatus: ContactStatus,
        pairingDeliveryID: String?)
    /// An ignored update or a status report, recorded at `seq`; a status names our delivery when known.
    case recorded(seq: UInt64, deliveryID: String?)
    /// Seen before: the seq of its first record.
    case duplicate(firstSeq: UInt64)
}

/// The result of approving a pairing code.
public enum PairingApproval: Sendable, Equatable {
    /// The pending contact with that code is allowed now.
    case approved(ContactState)
    /// No pending contact of the channel has that code.
    case notFound
}

/// The channel ingress decider: a batch of provider items decided and appended in one write transaction (all or
/// none), each deduplicated against everything the log has recorded, each sender judged by the DM policy.
public enum ChannelIngressDecider {
    /// Decides `items` in order inside the write transaction.
    public static func ingest(
        _ items: [IngressItem], jobs: JobSettings, deliveries: DeliverySettings, _ context: inout WriteContext
    ) throws -> [IngressOutcome] {
        var outcomes: [IngressOutcome] = []
        outcomes.reserveCapacity(items.count)
        for item in items {
            switch item {
            case .message(let message, let access):
                outcomes.append(
                    try ingest(message, access: access, jobs: jobs, deliveries: deliveries, &context))
            case .ignored(let ignored):
                let lookup = TableInboundLookup(tables: context.tables)
                if let first = try lookup.firstSeq(
                    channel: ignored.channel, accountID: ignored.accountID, externalID: ignored.externalID)
                {
                    outcomes.append(.duplicate(firstSeq: first))
                } else {
                    outcomes.append(.recorded(seq: try context.append(.inboundIgnored(ignored)), deliveryID: nil))
                }
            case .status(var status):
                let key = Key(status.channel, status.accountID, status.providerMessageID, status.status)
                if let first = try seq(context.tables, .deliveryStatuses, key) {
                    outcomes.append(.duplicate(firstSeq: first))
                    continue
                }
                status.deliveryID = try context.tables.withValue(
                    context.tables.table(ProjectionTable.deliveryProviderIDs),
                    Key(status.channel, status.accountID, status.providerMessageID).bytes
                ) { $0.map { String(decoding: $0, as: UTF8.self) } }
                let seq = try context.append(
                    .deliveryStatusReported(status), correlationID: status.deliveryID)
                outcomes.append(.recorded(seq: seq, deliveryID: status.deliveryID))
            }
        }
        return outcomes
    }

    /// One message: dedupe, the allowlist, the inbound decider (contact, conversation, reply job), then the
    /// pairing code when the policy asks for one and the sender has none yet.
    static func ingest(
        _ message: InboundMessage, access: SenderAccess, jobs: JobSettings, deliveries: DeliverySettings,
        _ context: inout WriteContext
    ) throws -> IngressOutcome {
        let lookup = TableInboundLookup(tables: context.tables)
        if let first = try lookup.firstSeq(
            channel: message.channel, accountID: message.accountID, externalID: message.externalID)
        {
            return .duplicate(firstSeq: first)
        }
        let known = try lookup.contact(
            channel: message.channel, accountID: message.accountID, contactID: message.contactID)
        if access.allowlisted, let known, known.access == .pending {
            var allowed = known
            allowed.status = ContactStatus.allowed.rawValue
            allowed.pairingCodeHash = nil
            try context.append(InboundDecider.updated(allowed, by: "allowlist"))
        }
        let policy: ContactPolicy = access.policy == .open || access.allowlisted ? .open : .allowlist
        let result = try InboundDecider.ingest(
            message, policy: policy, enqueueJob: access.policy != .disabled, jobSettings: jobs, &context)
        switch result {
        case .duplicate(let firstSeq):
            return .duplicate(firstSeq: firstSeq)
        case .accepted(let messageSeq, let conversation, let jobID, let status):
            var pairingDelivery: String?
            if status == .pending, access.policy == .pairing, let code = access.pairingCode,
                let reply = access.pairingReply,
                let contact = try lookup.contact(
                    channel: message.channel, accountID: message.accountID, contactID: message.contactID),
                contact.access == .pending, contact.pairingCodeHash == nil
            {
                var issued = contact
                issued.pairingCodeHash = InboundDecider.hashCode(normalizedCode(code))
                try context.append(InboundDecider.updated(issued, by: "pairing"))
                var delivery = NewDelivery(
                    idempotencyKey: "pairing:\(message.channel):\(message.accountID):\(message.contactID)",
                    channel: message.channel, accountID: message.accountID, recipient: message.contactID,
                    conversationID: conversation, text: reply)
                delivery.kind = "pairing_code"
                delivery.replyToExternalID = message.externalID
                pairingDelivery = try DeliveryDecider.enqueue(delivery, settings: deliveries, &context).deliveryID
            }
            return .message(
                messageSeq: messageSeq, conversationID: conversation, jobID: jobID, contactStatus: status,
                pairingDeliveryID: pairingDelivery)
        }
    }

    /// Allows the pending contact of `channel` whose pairing code is `code` (any account of the channel), and
    /// queues `confirmation` to it when given. Every pending code is compared in constant time.
    public static func approve(
        channel: String, code: String, by name: String, confirmation: String?, deliveries: DeliverySettings,
        _ context: inout WriteContext
    ) throws -> PairingApproval {
        let wanted = Array(InboundDecider.hashCode(normalizedCode(code)).utf8)
        var match: ContactState?
        let prefix = Key(channel).prefix
        try context.tables.scan(context.tables.table(ProjectionTable.contacts), from: prefix) { key, value in
            guard hasPrefix(key, prefix) else { return false }
            let contact = try StateCoding.decode(ContactState.self, value)
            if contact.access == .pending, let hash = contact.pairingCodeHash,
                constantTimeEqual(Array(hash.utf8), wanted), match == nil
            {
                match = contact
            }
            return true
        }
        guard var contact = match else { return .notFound }
        contact.status = ContactStatus.allowed.rawValue
        contact.pairingCodeHash = nil
        try context.append(InboundDecider.updated(contact, by: "operator:\(name)"))
        if let confirmation {
            var delivery = NewDelivery(
                idempotencyKey: "paired:\(channel):\(contact.accountID):\(contact.contactID)", channel: channel,
                accountID: contact.accountID, recipient: contact.contactID,
                conversationID: conversationID(
                    channel: channel, accountID: contact.accountID, contactID: contact.contactID),
                text: confirmation)
            delivery.kind = "pairing_code"
            _ = try DeliveryDecider.enqueue(delivery, settings: deliveries, &context)
        }
        return .approved(contact)
    }

    /// A code as people type it: case and separators (spaces, dashes) do not matter.
    public static func normalizedCode(_ code: String) -> String {
        String(code.uppercased().filter { $0.isLetter || $0.isNumber })
    }

    static func seq(_ tables: TableReader, _ table: ProjectionTable, _ key: Key) throws -> UInt64? {
        try tables.withValue(tables.table(table), key.bytes) {
            guard let bytes = $0, bytes.count == 8 else { return nil }
            return UInt64(bigEndian: bytes.loadUnaligned(as: UInt64.self))
        }
    }
}

extension Switchboard {
    /// Decides a batch of provider items in one write transaction (see ``ChannelIngressDecider``).
    public func ingest(_ items: [IngressItem]) async throws -> [IngressOutcome] {
        let jobs = settings.jobs
        let deliveries = settings.deliveries
        return try await decide { try ChannelIngressDecider.ingest(items, jobs: jobs, deliveries: deliveries, &$0) }
    }

    /// Approves a pairing code (see ``ChannelIngressDecider/approve(channel:code:by:confirmation:deliveries:_:)``).
    public func approvePairing(channel: String, code: String, by name: String, confirmation: String? = nil)
        async throws -> PairingApproval
    {
        let deliveries = settings.deliveries
        return try await decide {
            try ChannelIngressDecider.approve(
                channel: channel, code: code, by: name, confirmation: confirmation, deliveries: deliveries, &$0)
        }
    }

    /// Enqueues the parts of one message in one transaction (all or none); the results in part order.
    public func enqueueDeliveries(_ parts: [NewDelivery]) async throws -> [DeliveryEnqueue] {
        let settings = settings.deliveries
        return try await decide { context in
            try parts.map { try DeliveryDecider.enqueue($0, settings: settings, &context) }
        }
    }

    /// The provider's status reports on the message `providerMessageID` of a channel account, in log order.
    public func deliveryStatuses(channel: String, accountID: String, providerMessageID: String) throws
        -> [(seq: UInt64, status: DeliveryStatusReported)]
    {
        let prefix = Key(channel, accountID, providerMessageID).prefix
        let seqs: [UInt64] = try log.withSnapshot { snapshot in
            var seqs: [UInt64] = []
            try snapshot.scan(log.table(ProjectionTable.deliveryStatuses), from: prefix) { key, value in
                guard hasPrefix(key, prefix) else { return false }
                if value.count == 8 {
                    seqs.append(UInt64(bigEndian: value.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }))
                }
                return true
            }
            return seqs
        }
        return try seqs.sorted().compactMap { seq in
            guard let record = try log.records(from: seq, limit: 1).first,
                case .deliveryStatusReported(let status)? = try record.event()
            else { return nil }
            return (seq, status)
        }
    }
}
