import Crypto
import EventLog
import SwitchboardEvents
import Foundation

/// An inbound message as a channel worker received it.
public struct InboundMessage: Sendable, Equatable {
    public var channel: String
    public var accountID: String
    /// The provider's message id (WhatsApp wamid, Telegram `<chat>:<message_id>`, web client id).
    public var externalID: String
    /// The sender (phone, chat id, web user).
    public var contactID: String
    public var text: String
    public var providerTimestamp: LogTimestamp?
    public var replyToExternalID: String?

    public init(channel: String, accountID: String, externalID: String, contactID: String, text: String) {
        self.channel = channel
        self.accountID = accountID
        self.externalID = externalID
        self.contactID = contactID
        self.text = text
    }
}

/// How unknown senders are treated.
public enum ContactPolicy: String, Sendable, Equatable {
    /// Everyone may talk to the assistant.
    case open
    /// Unknown senders are recorded as `pending`; their messages are kept but start no job until an operator
    /// allows them or they pair.
    case allowlist
}

/// The outcome of ingesting an inbound message.
public enum IngestResult: Sendable, Equatable {
    /// First time this (channel, account, external id) was seen.
    case accepted(messageSeq: UInt64, conversationID: String, jobID: String?, contactStatus: String)
    /// Seen before: the seq of the first `message.received`.
    case duplicate(firstSeq: UInt64)
}

/// Inbound and contact deciders.
public enum InboundDecider {
    typealias T = ProjectionTables

    /// Dedupes, resolves the contact and the per-contact conversation, records `message.received` and — for
    /// an allowed contact — enqueues the reply job, all atomically.
    public static func ingest(
        _ message: InboundMessage, policy: ContactPolicy, enqueueJob: Bool, jobSettings: JobSettings,
        _ context: inout WriteContext
    ) throws -> IngestResult {
        guard !message.externalID.isEmpty, !message.contactID.isEmpty else {
            throw ProjectionError(.invalidArgument, "an inbound message needs an external id and a contact")
        }
        let dedupe = Key(message.channel, message.accountID, message.externalID)
        if let first = try context.tables.get(context.tables.table(T.inbound), dedupe.bytes), first.count == 8 {
            return .duplicate(firstSeq: UInt64(bigEndian: first.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }))
        }
        let contactKey = Key(message.channel, message.accountID, message.contactID)
        var status = try context.tables.load(ContactState.self, T.contacts, contactKey)?.status
        if status == nil {
            status = policy == .open ? "allowed" : "pending"
            try context.append(
                .contactUpdated(
                    ContactUpdated(
                        channel: message.channel, accountID: message.accountID, contactID: message.contactID,
                        status: status!, changedBy: "inbound")))
        }
        let conversation = conversationID(
            channel: message.channel, accountID: message.accountID, contactID: message.contactID)
        let seq = try context.append(
            .messageReceived(
                MessageReceived(
                    channel: message.channel, accountID: message.accountID, externalID: message.externalID,
                    conversationID: conversation, contactID: message.contactID, text: message.text,
                    providerTimestamp: message.providerTimestamp, replyToExternalID: message.replyToExternalID)),
            correlationID: conversation)
        var jobID: String?
        if enqueueJob && status == "allowed" {
            var job = NewJob(
                idempotencyKey: "inbound:\(message.channel):\(message.accountID):\(message.externalID)",
                conversationID: conversation)
            job.triggeringMessageSeq = seq
            jobID = try JobDecider.enqueue(job, settings: jobSettings, &context).jobID
        }
        return .accepted(messageSeq: seq, conversationID: conversation, jobID: jobID, contactStatus: status!)
    }

    /// Sets a contact's status (`allowed`, `blocked`, `pending`) — an operator action.
    public static func setContact(
        channel: String, accountID: String, contactID: String, status: String, by name: String,
        _ context: inout WriteContext
    ) throws {
        guard ["allowed", "blocked", "pending"].contains(status) else {
            throw ProjectionError(.invalidArgument, "contact status must be allowed, blocked or pending")
        }
        try context.append(
            .contactUpdated(
                ContactUpdated(
                    channel: channel, accountID: accountID, contactID: contactID, status: status,
                    changedBy: "operator:\(name)")))
    }

    /// Starts pairing: the contact becomes `pending` with the hash of `code`, which it must send back.
    public static func startPairing(
        channel: String, accountID: String, contactID: String, code: String, by name: String,
        _ context: inout WriteContext
    ) throws {
        try context.append(
            .contactUpdated(
                ContactUpdated(
                    channel: channel, accountID: accountID, contactID: contactID, status: "pending",
                    pairingCodeHash: hashCode(code), changedBy: "operator:\(name)")))
    }

    /// Completes pairing when `code` matches (compared in constant time); returns whether it did.
    public static func completePairing(
        channel: String, accountID: String, contactID: String, code: String, _ context: inout WriteContext
    ) throws -> Bool {
        guard let contact = try context.tables.load(ContactState.self, T.contacts, Key(channel, accountID, contactID)),
            contact.status == "pending", let expected = contact.pairingCodeHash
        else { return false }
        guard constantTimeEqual(Array(hashCode(code).utf8), Array(expected.utf8)) else { return false }
        try context.append(
            .contactUpdated(
                ContactUpdated(
                    channel: channel, accountID: accountID, contactID: contactID, status: "allowed",
                    changedBy: "pairing")))
        return true
    }

    static func hashCode(_ code: String) -> String {
        SHA256.hash(data: Array(code.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}

/// Compares two byte strings in time independent of where they differ.
public func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for index in a.indices { difference |= a[index] ^ b[index] }
    return difference == 0
}
