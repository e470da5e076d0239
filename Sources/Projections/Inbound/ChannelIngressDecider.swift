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
    /// In a group chat: the account's `GROUP_POLICY`, and whether the group is allowed (`TELEGRAM_ALLOWED_GROUP_IDS`).
    /// A group's messages are judged by these instead of the DM policy.
    public var groupPolicy: GroupPolicy
    public var groupAllowed: Bool

    public init(
        policy: DMPolicy, allowlisted: Bool = false, pairingCode: String? = nil, pairingReply: String? = nil,
        groupPolicy: GroupPolicy = .mention, groupAllowed: Bool = false
    ) {
        self.policy = policy
        self.allowlisted = allowlisted
        self.pairingCode = pairingCode
        self.pairingReply = pairingReply
        self.groupPolicy = groupPolicy
        self.groupAllowed = groupAllowed
    }
}

/// The ids of what one message may start, made by the caller before the transaction (never inside a decision):
/// its reply job (or a reminder's job), and the delivery of a pairing code (or of a command's answer: a message is
/// never both).
public struct IngressIDs: Sendable, Equatable {
    public var jobID: String
    public var pairingDeliveryID: String

    public init(jobID: String = timeOrderedID("j"), pairingDeliveryID: String = timeOrderedID("d")) {
        self.jobID = jobID
        self.pairingDeliveryID = pairingDeliveryID
    }
}

/// One provider item a webhook call or a poll brought in.
public enum IngressItem: Sendable, Equatable {
    /// A message, with what the worker knows about its sender, and the ids of what it may start.
    case message(InboundMessage, SenderAccess, IngressIDs = IngressIDs())
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

/// What the ingress decider reads besides its command: the inbound decider's lookup, and the keys the ingress
/// dedupes on. Implemented over the write transaction's tables by ``ChannelIngressShell``, in memory by tests.
public protocol IngressLookup: InboundLookup {
    /// The seq of the `delivery.status` first recorded for (channel, account, provider message id, status).
    func statusSeq(channel: String, accountID: String, providerMessageID: String, status: String) throws -> UInt64?
    /// Our delivery whose `delivery.sent` carried this provider message id.
    func deliveryID(channel: String, accountID: String, providerMessageID: String) throws -> String?
    /// The job enqueued under an idempotency key.
    func jobID(idempotencyKey: String) throws -> String?
    /// Whether a job with this id exists.
    func jobExists(_ jobID: String) throws -> Bool
    /// The delivery enqueued under an idempotency key.
    func deliveryID(idempotencyKey: String) throws -> String?
    /// The channel's pending contacts that hold a pairing code, in key order.
    func pendingContactsWithCodes(channel: String) throws -> [ContactState]
}

/// The channel ingress decider: pure functions of the ``IngressLookup``, one provider item, the log time's
/// settings and the next seq, returning a ``Decision``. ``ChannelIngressShell`` decides a batch item by item in one
/// write transaction (all or none), so each item sees what the ones before it recorded.
public enum ChannelIngressDecider {
    /// Decides one item: dedupe against everything the log recorded; a message's sender judged by the DM policy.
    public static func decide(
        _ item: IngressItem, lookup: some IngressLookup, jobs: JobSettings, deliveries: DeliverySettings,
        now: LogTimestamp = LogTimestamp(microseconds: 0), nextSeq: UInt64
    ) throws -> Decision<IngressOutcome> {
        switch item {
        case .message(let message, let access, let ids):
            return try decide(
                message, access: access, ids: ids, lookup: lookup, jobs: jobs, deliveries: deliveries, now: now,
                nextSeq: nextSeq)
        case .ignored(let ignored):
            if let first = try lookup.firstSeq(
                channel: ignored.channel, accountID: ignored.accountID, externalID: ignored.externalID)
            {
                return Decision(.duplicate(firstSeq: first))
            }
            return Decision(.recorded(seq: nextSeq, deliveryID: nil), events: [.inboundIgnored(ignored)])
        case .status(var status):
            if let first = try lookup.statusSeq(
                channel: status.channel, accountID: status.accountID, providerMessageID: status.providerMessageID,
                status: status.status)
            {
                return Decision(.duplicate(firstSeq: first))
            }
            status.deliveryID = try lookup.deliveryID(
                channel: status.channel, accountID: status.accountID, providerMessageID: status.providerMessageID)
            return Decision(
                .recorded(seq: nextSeq, deliveryID: status.deliveryID), events: [.deliveryStatusReported(status)],
                correlationIDs: [status.deliveryID])
        }
    }

    /// One message: dedupe, the allowlist, the inbound decider (contact, conversation), the reply job, then the
    /// pairing code when the policy asks for one and the sender has none yet.
    static func decide(
        _ message: InboundMessage, access: SenderAccess, ids: IngressIDs, lookup: some IngressLookup,
        jobs: JobSettings, deliveries: DeliverySettings, now: LogTimestamp, nextSeq: UInt64
    ) throws -> Decision<IngressOutcome> {
        if let first = try lookup.firstSeq(
            channel: message.channel, accountID: message.accountID, externalID: message.externalID)
        {
            return Decision(.duplicate(firstSeq: first))
        }
        var message = message
        var access = access
        if let group = message.group {
            // A group is judged by the group rules, not the DM policy: not allowed or off, recorded as ignored;
            // allowed, every message is kept, and only those addressed to the assistant (or all, `open`) answered.
            guard access.groupAllowed, access.groupPolicy != .off else {
                return try decide(
                    .ignored(
                        InboundIgnored(
                            channel: message.channel, accountID: message.accountID, externalID: message.externalID,
                            kind: "message", reason: access.groupPolicy == .off ? "group_off" : "group_not_allowed",
                            contactID: message.contactID)),
                    lookup: lookup, jobs: jobs, deliveries: deliveries, now: now, nextSeq: nextSeq)
            }
            let groupPolicy = access.groupPolicy
            access = SenderAccess(policy: .open, allowlisted: true)
            if groupPolicy == .mention, !group.addressed, TypedCommand(message.text) == nil {
                message.unanswered = "not_addressed"
            }
        }
        var events = DecisionEvents(firstSeq: nextSeq)
        var contact = try lookup.contact(
            channel: message.channel, accountID: message.accountID, contactID: message.contactID)
        if access.allowlisted, var known = contact, known.access == .pending {
            known.status = ContactStatus.allowed.rawValue
            known.pairingCodeHash = nil
            events.append(InboundDecider.updated(known, by: "allowlist"))
            contact = known
        }
        let policy: ContactPolicy = access.policy == .open || access.allowlisted ? .open : .allowlist
        let inbound = try InboundDecider.ingest(
            message, policy: policy, enqueueJob: access.policy != .disabled && message.unanswered == nil,
            lookup: ContactAsDecided(base: lookup, contact: contact), nextSeq: events.nextSeq)
        for event in inbound.events {
            switch event {
            case .messageReceived(let received): events.append(event, correlationID: received.conversationID)
            case .toolApproval(let approval): events.append(event, correlationID: approval.conversationID)
            default: events.append(event)
            }
        }
        switch inbound.outcome {
        case .duplicate(let firstSeq):
            return Decision(.duplicate(firstSeq: firstSeq))
        case .approvalAnswer(let messageSeq, let conversation, _, _):
            // Recorded with its answer; no reply job (the job awaiting the answer goes on).
            return events.decision(
                .message(
                    messageSeq: messageSeq, conversationID: conversation, jobID: nil, contactStatus: .allowed,
                    pairingDeliveryID: nil))
        case .accepted(let messageSeq, let conversation, let status, let startsJob):
            let jobID =
                startsJob
                ? try answer(
                    message, conversationID: conversation, messageSeq: messageSeq, ids: ids, lookup: lookup, jobs: jobs,
                    deliveries: deliveries, now: now, into: &events) : nil
            // The contact as this message left it: a new sender was recorded by the inbound decider.
            let after =
                contact
                ?? ContactState(
                    channel: message.channel, accountID: message.accountID, contactID: message.contactID,
                    status: status.rawValue, pairingCodeHash: nil)
            var pairingDelivery: String?
            if status == .pending, access.policy == .pairing, let code = access.pairingCode,
                let reply = access.pairingReply, after.access == .pending, after.pairingCodeHash == nil
            {
                var issued = after
                issued.pairingCodeHash = InboundDecider.hashCode(normalizedCode(code))
                events.append(InboundDecider.updated(issued, by: "pairing"))
                var delivery = NewDelivery(
                    idempotencyKey: "pairing:\(message.channel):\(message.accountID):\(message.contactID)",
                    channel: message.channel, accountID: message.accountID, recipient: message.contactID,
                    conversationID: conversation, text: reply)
                delivery.deliveryID = ids.pairingDeliveryID
                delivery.kind = "pairing_code"
                delivery.replyToExternalID = message.externalID
                let enqueued = try enqueue(delivery, lookup: lookup, settings: deliveries)
                events.append(enqueued)
                pairingDelivery = enqueued.outcome.deliveryID
            }
            return events.decision(
                .message(
                    messageSeq: messageSeq, conversationID: conversation, jobID: jobID, contactStatus: status,
                    pairingDeliveryID: pairingDelivery))
        }
    }

    /// Allows the pending contact of `channel` whose pairing code is `code` (any account of the channel), and
    /// queues `confirmation` to it (as `confirmationDeliveryID`) when given. Every pending code is compared in
    /// constant time.
    public static func approve(
        channel: String, code: String, by name: String, confirmation: String?, confirmationDeliveryID: String,
        deliveries: DeliverySettings, lookup: some IngressLookup
    ) throws -> Decision<PairingApproval> {
        let wanted = Array(InboundDecider.hashCode(normalizedCode(code)).utf8)
        var match: ContactState?
        for contact in try lookup.pendingContactsWithCodes(channel: channel) {
            if let hash = contact.pairingCodeHash, constantTimeEqual(Array(hash.utf8), wanted), match == nil {
                match = contact
            }
        }
        guard var contact = match else { return Decision(.notFound) }
        contact.status = ContactStatus.allowed.rawValue
        contact.pairingCodeHash = nil
        var events = DecisionEvents(firstSeq: 0)
        events.append(InboundDecider.updated(contact, by: "operator:\(name)"))
        if let confirmation {
            var delivery = NewDelivery(
                idempotencyKey: "paired:\(channel):\(contact.accountID):\(contact.contactID)", channel: channel,
                accountID: contact.accountID, recipient: contact.contactID,
                conversationID: conversationID(
                    channel: channel, accountID: contact.accountID, contactID: contact.contactID),
                text: confirmation)
            delivery.deliveryID = confirmationDeliveryID
            delivery.kind = "pairing_code"
            events.append(try enqueue(delivery, lookup: lookup, settings: deliveries))
        }
        return events.decision(.approved(contact))
    }

    /// A code as people type it: case and separators (spaces, dashes) do not matter.
    public static func normalizedCode(_ code: String) -> String {
        String(code.uppercased().filter { $0.isLetter || $0.isNumber })
    }
}

/// The lookup with one contact as the decision so far left it (the allowlist may have just allowed it).
private struct ContactAsDecided<Base: InboundLookup>: InboundLookup {
    let base: Base
    let contact: ContactState?

    func firstSeq(channel: String, accountID: String, externalID: String) throws -> UInt64? {
        try base.firstSeq(channel: channel, accountID: accountID, externalID: externalID)
    }

    func contact(channel: String, accountID: String, contactID: String) throws -> ContactState? {
        if let contact, contact.channel == channel, contact.accountID == accountID, contact.contactID == contactID {
            return contact
        }
        return try base.contact(channel: channel, accountID: accountID, contactID: contactID)
    }

    func awaitingApprovals(conversationID: String) throws -> [ToolCallState] {
        try base.awaitingApprovals(conversationID: conversationID)
    }
}

extension Switchboard {
    /// Decides a batch of provider items in one write transaction (see ``ChannelIngressDecider``).
    public func ingest(_ items: [IngressItem]) async throws -> [IngressOutcome] {
        let jobs = settings.jobs
        let deliveries = settings.deliveries
        return try await decide { try ChannelIngressShell.ingest(items, jobs: jobs, deliveries: deliveries, &$0) }
    }

    /// Approves a pairing code (see
    /// ``ChannelIngressDecider/approve(channel:code:by:confirmation:confirmationDeliveryID:deliveries:lookup:)``).
    public func approvePairing(channel: String, code: String, by name: String, confirmation: String? = nil)
        async throws -> PairingApproval
    {
        let deliveries = settings.deliveries
        let deliveryID = timeOrderedID("d")
        return try await decide {
            try ChannelIngressShell.approve(
                channel: channel, code: code, by: name, confirmation: confirmation, confirmationDeliveryID: deliveryID,
                deliveries: deliveries, &$0)
        }
    }

    /// Enqueues the parts of one message in one transaction (all or none); the results in part order.
    public func enqueueDeliveries(_ parts: [NewDelivery]) async throws -> [DeliveryEnqueue] {
        let settings = settings.deliveries
        return try await decide { context in
            try parts.map { try DeliveryShell.enqueue($0, settings: settings, &context) }
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
