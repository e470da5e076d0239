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
    /// The conversation chosen by the sender (web chat); `nil` means the contact's one conversation on the
    /// channel account.
    public var conversationID: String?
    /// The attached media (kind, MIME type, provider media id), when the message carries some.
    public var media: MediaDescriptor?
    /// Whether a YES/NO from an allowed contact answers a tool call awaiting its approval (chat channels); the web
    /// chat answers with its approval card, so there it stays a message. Set by the channel's worker.
    public var answersApprovalsInText = true
    /// The user message this one follows (web chat; `0`: none), when the sender names it: see
    /// `MessageReceived.parentSeq`. Must be a user message of the conversation.
    public var parentSeq: UInt64?
    /// The reply to ``parentSeq`` shown when the message was written: one of its jobs.
    public var afterJobID: String?
    /// Set for a message in a group chat (Telegram groups and supergroups).
    public var group: GroupMessage?
    /// Why the message is recorded without an answer (`not_addressed`: a group message for someone else, kept as
    /// context); recorded on `message.received`.
    public var unanswered: String?

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

/// A contact's access: the `status` of `contact.updated` and of ``ContactState`` (the raw value is what is
/// stored).
public enum ContactStatus: String, Sendable, Equatable, CaseIterable {
    /// Messages start reply jobs.
    case allowed
    /// Messages are recorded and start nothing.
    case blocked
    /// Unknown or pairing: messages are recorded and start nothing until an operator allows the contact or it
    /// pairs.
    case pending

    /// The status a stored value names. A value this build does not know (no decider writes one) is treated as
    /// `blocked`: it starts nothing and cannot pair.
    public init(stored: String) { self = ContactStatus(rawValue: stored) ?? .blocked }
}

extension ContactState {
    /// ``status`` as a typed value (see ``ContactStatus/init(stored:)``).
    public var access: ContactStatus { ContactStatus(stored: status) }
}

/// The outcome of ingesting an inbound message.
public enum IngestResult: Sendable, Equatable {
    /// First time this (channel, account, external id) was seen.
    case accepted(messageSeq: UInt64, conversationID: String, jobID: String?, contactStatus: ContactStatus)
    /// Seen before: the seq of the first `message.received`.
    case duplicate(firstSeq: UInt64)
}

/// What the inbound decider decided about a message (before its reply job, which the job decider enqueues).
public enum InboundDecision: Sendable, Equatable {
    /// First sight: recorded as `messageSeq` in `conversationID`; `startsJob` when a reply job is to be enqueued
    /// (one was asked for and the contact is allowed).
    case accepted(messageSeq: UInt64, conversationID: String, contactStatus: ContactStatus, startsJob: Bool)
    /// Seen before: the seq of the first `message.received`.
    case duplicate(firstSeq: UInt64)
    /// A chat answer (`YES <code>`, `NO <code>`) to a tool call awaiting the user's approval in this conversation:
    /// recorded as `messageSeq`, with its `tool.approval` (`approved` or `rejected`); it starts no job.
    case approvalAnswer(messageSeq: UInt64, conversationID: String, callID: String, approved: Bool)
}

/// The outcome of a pairing attempt.
public enum PairingResult: Sendable, Equatable {
    /// The code matched: the contact is allowed.
    case paired
    /// Nothing changed.
    case refused(PairingRefusal)
}

/// Why a pairing attempt changed nothing (not recorded in the log: a refused pairing appends nothing).
public enum PairingRefusal: String, Sendable, Equatable, CaseIterable {
    /// The contact was never seen nor set.
    case unknownContact = "unknown_contact"
    /// The contact is not waiting for pairing (already allowed, or blocked).
    case notPending = "not_pending"
    /// The contact is pending without a pairing code (an unknown sender under the allowlist policy).
    case noCode = "no_code"
    /// The code does not match.
    case wrongCode = "wrong_code"
}

/// What the inbound decider reads besides its command: implemented over the write transaction's tables by the
/// shell, and in memory by tests.
public protocol InboundLookup {
    /// The seq of the `message.received` that first recorded (`channel`, `accountID`, `externalID`), if any.
    func firstSeq(channel: String, accountID: String, externalID: String) throws -> UInt64?
    /// The contact, if known.
    func contact(channel: String, accountID: String, contactID: String) throws -> ContactState?
    /// The tool calls of `conversationID` awaiting the user's approval and not expired at the decision's log time,
    /// oldest first.
    func awaitingApprovals(conversationID: String) throws -> [ToolCallState]
    /// The conversation, if it exists.
    func conversation(_ conversationID: String) throws -> ConversationState?
    /// A message of the conversation's history, by seq.
    func historyMessage(conversationID: String, seq: UInt64) throws -> HistoryMessage?
    /// A job.
    func job(_ jobID: String) throws -> JobState?
    /// The conversation's pending and running jobs.
    func activeJobs(conversationID: String) throws -> [JobState]
    /// The text `jobID` streamed under `token`.
    func streamedText(jobID: String, token: UInt64) throws -> String
}

extension InboundLookup {
    /// No call awaits approval.
    public func awaitingApprovals(conversationID: String) throws -> [ToolCallState] { [] }
    /// No conversation is known (nothing was deleted).
    public func conversation(_ conversationID: String) throws -> ConversationState? { nil }
    /// No message is known.
    public func historyMessage(conversationID: String, seq: UInt64) throws -> HistoryMessage? { nil }
    /// No job is known.
    public func job(_ jobID: String) throws -> JobState? { nil }
    /// No job runs or waits.
    public func activeJobs(conversationID: String) throws -> [JobState] { [] }
    /// Nothing was streamed.
    public func streamedText(jobID: String, token: UInt64) throws -> String { "" }

    /// What answering a message in `conversationID` is decided against.
    func replyState(conversationID: String, rules: ConversationRules, timeZone: TimeZone) throws
        -> InboundReplyState
    {
        let active = try activeJobs(conversationID: conversationID)
        var streamed: [String: String] = [:]
        for job in active where job.status == .running {
            streamed[job.jobID] = try streamedText(jobID: job.jobID, token: job.token)
        }
        return InboundReplyState(
            rules: rules, active: active, streamed: streamed,
            awaiting: try awaitingApprovals(conversationID: conversationID), timeZone: timeZone)
    }
}

/// The inbound and contact deciders: pure functions of the state they read, the command and the next seq, whose
/// events a shell appends inside the write transaction (see ``Decision``).
public enum InboundDecider {
    /// Dedupes `message`, resolves its contact (recording an unknown sender as `allowed` or `pending` by
    /// `policy`) and the per-contact conversation, and records `message.received`. The reply job, when
    /// `startsJob`, is ``replyJob(for:conversationID:messageSeq:)``.
    public static func ingest(
        _ message: InboundMessage, policy: ContactPolicy, enqueueJob: Bool, lookup: some InboundLookup,
        nextSeq: UInt64
    ) throws -> Decision<InboundDecision> {
        guard !message.externalID.isEmpty, !message.contactID.isEmpty else {
            throw ProjectionError(.invalidArgument, "an inbound message needs an external id and a contact")
        }
        if let first = try lookup.firstSeq(
            channel: message.channel, accountID: message.accountID, externalID: message.externalID)
        {
            return Decision(.duplicate(firstSeq: first))
        }
        var events: [SwitchboardEvent] = []
        events.reserveCapacity(2)
        let status: ContactStatus
        if let contact = try lookup.contact(
            channel: message.channel, accountID: message.accountID, contactID: message.contactID)
        {
            status = contact.access
        } else {
            switch policy {
            case .open: status = .allowed
            case .allowlist: status = .pending
            }
            events.append(
                .contactUpdated(
                    ContactUpdated(
                        channel: message.channel, accountID: message.accountID, contactID: message.contactID,
                        status: status.rawValue, changedBy: "inbound")))
        }
        let conversation =
            message.conversationID
            ?? conversationID(channel: message.channel, accountID: message.accountID, contactID: message.contactID)
        try checkPlace(message, conversation: conversation, lookup: lookup)
        let messageSeq = nextSeq + UInt64(events.count)
        events.append(
            .messageReceived(
                MessageReceived(
                    channel: message.channel, accountID: message.accountID, externalID: message.externalID,
                    conversationID: conversation, contactID: message.contactID, text: message.text,
                    media: message.media, providerTimestamp: message.providerTimestamp,
                    replyToExternalID: message.replyToExternalID, parentSeq: message.parentSeq,
                    afterJobID: message.afterJobID, unanswered: message.unanswered,
                    senderName: message.group?.senderName)))
        // An allowed contact answering a tool call that awaits its approval: the answer, not a new question. (The
        // web chat answers with its approval card, so a typed "no" there stays a message.)
        if status == .allowed, message.answersApprovalsInText, let answer = ApprovalReply(message.text),
            let call = answer.match(try lookup.awaitingApprovals(conversationID: conversation))
        {
            events.append(
                .toolApproval(
                    ToolApproval(
                        callID: call.callID, jobID: call.jobID, conversationID: conversation,
                        decision: answer.approve ? ApprovalStep.approved.rawValue : ApprovalStep.rejected.rawValue,
                        decidedBy: message.contactID)))
            return Decision(
                .approvalAnswer(
                    messageSeq: messageSeq, conversationID: conversation, callID: call.callID,
                    approved: answer.approve),
                events: events)
        }
        let startsJob: Bool
        switch status {
        case .allowed: startsJob = enqueueJob
        case .blocked, .pending: startsJob = false
        }
        return Decision(
            .accepted(
                messageSeq: messageSeq, conversationID: conversation, contactStatus: status, startsJob: startsJob),
            events: events)
    }

    /// Refuses a message into a conversation its sender chose that was deleted (a web tab still open on it), and
    /// a parent that is not a user message of the conversation or a shown reply that does not answer it.
    static func checkPlace(_ message: InboundMessage, conversation: String, lookup: some InboundLookup) throws {
        if message.conversationID != nil, let state = try lookup.conversation(conversation), state.deletion != nil,
            state.messageCount == 0
        {
            throw ProjectionError(.deleted, "conversation \(conversation) was deleted")
        }
        guard let parent = message.parentSeq else {
            guard message.afterJobID == nil else {
                throw ProjectionError(.invalidArgument, "afterJobID needs parentSeq")
            }
            return
        }
        if parent != 0 {
            guard let node = try lookup.historyMessage(conversationID: conversation, seq: parent), node.role == "user"
            else {
                throw ProjectionError(.invalidArgument, "parentSeq \(parent) is not a message of this conversation")
            }
        }
        if let afterJobID = message.afterJobID {
            guard let job = try lookup.job(afterJobID), job.conversationID == conversation,
                job.triggeringMessageSeq == parent
            else {
                throw ProjectionError(
                    .invalidArgument, "afterJobID \(afterJobID) is not a reply to parentSeq \(parent)")
            }
        }
    }

    /// The reply job of an accepted message: idempotent per message, triggered by it.
    public static func replyJob(for message: InboundMessage, conversationID: String, messageSeq: UInt64) -> NewJob {
        var job = NewJob(
            idempotencyKey: "inbound:\(message.channel):\(message.accountID):\(message.externalID)",
            conversationID: conversationID)
        job.triggeringMessageSeq = messageSeq
        job.replyToExternalID = message.externalID
        return job
    }

    /// Sets a contact's status — an operator action (clears any pairing code).
    public static func setContact(
        channel: String, accountID: String, contactID: String, status: ContactStatus, by name: String
    ) -> Decision<ContactState> {
        let contact = ContactState(
            channel: channel, accountID: accountID, contactID: contactID, status: status.rawValue,
            pairingCodeHash: nil)
        return Decision(contact, events: [updated(contact, by: "operator:\(name)")])
    }

    /// Starts pairing: the contact becomes `pending` with the hash of `code`, which it must send back.
    public static func startPairing(
        channel: String, accountID: String, contactID: String, code: String, by name: String
    ) -> Decision<ContactState> {
        let contact = ContactState(
            channel: channel, accountID: accountID, contactID: contactID, status: ContactStatus.pending.rawValue,
            pairingCodeHash: hashCode(code))
        return Decision(contact, events: [updated(contact, by: "operator:\(name)")])
    }

    /// Completes pairing when `contact` is pending with a code and `code` matches it (compared in constant time).
    public static func completePairing(_ contact: ContactState?, code: String) -> Decision<PairingResult> {
        guard let contact else { return Decision(.refused(.unknownContact)) }
        switch contact.access {
        case .pending: break
        case .allowed, .blocked: return Decision(.refused(.notPending))
        }
        guard let expected = contact.pairingCodeHash else { return Decision(.refused(.noCode)) }
        guard constantTimeEqual(Array(hashCode(code).utf8), Array(expected.utf8)) else {
            return Decision(.refused(.wrongCode))
        }
        var paired = contact
        paired.status = ContactStatus.allowed.rawValue
        paired.pairingCodeHash = nil
        return Decision(.paired, events: [updated(paired, by: "pairing")])
    }

    static func updated(_ contact: ContactState, by changedBy: String) -> SwitchboardEvent {
        .contactUpdated(
            ContactUpdated(
                channel: contact.channel, accountID: contact.accountID, contactID: contact.contactID,
                status: contact.status, pairingCodeHash: contact.pairingCodeHash, changedBy: changedBy))
    }

    static func hashCode(_ code: String) -> String {
        SHA256.hash(data: Array(code.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}

/// A chat message read as an answer to a tool call's approval request ("Reply YES <code> or NO <code>"): `YES` or
/// `NO` (any case), then optionally the call's code (the first characters of its call id), and nothing else.
public struct ApprovalReply: Sendable, Equatable {
    public var approve: Bool
    /// The code, lowercased; `nil` when the answer gave none.
    public var code: String?

    public init(approve: Bool, code: String?) {
        self.approve = approve
        self.code = code
    }

    /// Reads `text`; `nil` when it is not such an answer.
    public init?(_ text: String) {
        let words = text.split(whereSeparator: \.isWhitespace)
        guard (1...2).contains(words.count) else { return nil }
        switch words[0].uppercased() {
        case "YES": approve = true
        case "NO": approve = false
        default: return nil
        }
        guard words.count == 2 else {
            code = nil
            return
        }
        let code = words[1].lowercased()
        guard (4...32).contains(code.count), code.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else {
            return nil
        }
        self.code = code
    }

    /// The call this answers among `awaiting` (one conversation's calls awaiting approval): the one whose id starts
    /// with the code, or — without a code — the only one. `nil` when none or several match: then the message is an
    /// ordinary message.
    public func match(_ awaiting: [ToolCallState]) -> ToolCallState? {
        let candidates = awaiting.filter { call in
            call.status == .awaitingApproval && code.map { call.callID.lowercased().hasPrefix($0) } ?? true
        }
        return candidates.count == 1 ? candidates[0] : nil
    }
}

/// Compares two byte strings in time independent of where they differ.
public func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for index in a.indices { difference |= a[index] ^ b[index] }
    return difference == 0
}
