import EventLog
@testable import Projections
import SwitchboardEvents
import Testing

/// An in-memory ``InboundLookup``: the dedupe index and the contacts the deciders read.
struct InMemoryInbound: InboundLookup {
    var firstSeqs: [String: UInt64] = [:]
    var contacts: [String: ContactState] = [:]

    func firstSeq(channel: String, accountID: String, externalID: String) -> UInt64? {
        firstSeqs["\(channel)/\(accountID)/\(externalID)"]
    }

    func contact(channel: String, accountID: String, contactID: String) -> ContactState? {
        contacts["\(channel)/\(accountID)/\(contactID)"]
    }

    mutating func record(_ contact: ContactState) {
        contacts["\(contact.channel)/\(contact.accountID)/\(contact.contactID)"] = contact
    }
}

/// The inbound and contact deciders called directly on in-memory state: no log, no LMDB, no async.
@Suite struct PureInboundDeciderTests {
    static let nextSeq: UInt64 = 500
    static let conversation = conversationID(channel: "telegram", accountID: "bot", contactID: "111")

    static func message(_ externalID: String = "111:7") -> InboundMessage {
        InboundMessage(channel: "telegram", accountID: "bot", externalID: externalID, contactID: "111", text: "hi")
    }

    static func contact(_ status: ContactStatus, codeHash: String? = nil) -> ContactState {
        ContactState(
            channel: "telegram", accountID: "bot", contactID: "111", status: status.rawValue,
            pairingCodeHash: codeHash)
    }

    static func received(_ externalID: String = "111:7") -> SwitchboardEvent {
        .messageReceived(
            MessageReceived(
                channel: "telegram", accountID: "bot", externalID: externalID, conversationID: conversation,
                contactID: "111", text: "hi"))
    }

    static func updated(_ status: ContactStatus, codeHash: String? = nil, by changedBy: String) -> SwitchboardEvent {
        .contactUpdated(
            ContactUpdated(
                channel: "telegram", accountID: "bot", contactID: "111", status: status.rawValue,
                pairingCodeHash: codeHash, changedBy: changedBy))
    }

    // MARK: Ingest

    /// One row of the ingest table.
    struct IngestCase: Sendable, CustomTestStringConvertible {
        var name: String
        var known: ContactStatus?
        var policy: ContactPolicy
        var enqueueJob = true
        var outcome: InboundDecision
        var events: [SwitchboardEvent]
        var testDescription: String { name }
    }

    static let ingestCases: [IngestCase] = [
        IngestCase(
            name: "open policy, unknown sender: allowed first, then the message, starts a job", known: nil,
            policy: .open,
            outcome: .accepted(
                messageSeq: nextSeq + 1, conversationID: conversation, contactStatus: .allowed, startsJob: true),
            events: [updated(.allowed, by: "inbound"), received()]),
        IngestCase(
            name: "allowlist policy, unknown sender: pending, recorded, no job", known: nil, policy: .allowlist,
            outcome: .accepted(
                messageSeq: nextSeq + 1, conversationID: conversation, contactStatus: .pending, startsJob: false),
            events: [updated(.pending, by: "inbound"), received()]),
        IngestCase(
            name: "allowed contact under the allowlist: a job", known: .allowed, policy: .allowlist,
            outcome: .accepted(
                messageSeq: nextSeq, conversationID: conversation, contactStatus: .allowed, startsJob: true),
            events: [received()]),
        IngestCase(
            name: "allowed contact, no job asked for", known: .allowed, policy: .open, enqueueJob: false,
            outcome: .accepted(
                messageSeq: nextSeq, conversationID: conversation, contactStatus: .allowed, startsJob: false),
            events: [received()]),
        IngestCase(
            name: "blocked contact under the open policy: recorded, no job", known: .blocked, policy: .open,
            outcome: .accepted(
                messageSeq: nextSeq, conversationID: conversation, contactStatus: .blocked, startsJob: false),
            events: [received()]),
        IngestCase(
            name: "pending contact under the open policy: recorded, no job", known: .pending, policy: .open,
            outcome: .accepted(
                messageSeq: nextSeq, conversationID: conversation, contactStatus: .pending, startsJob: false),
            events: [received()]),
    ]

    @Test(arguments: ingestCases)
    func ingest(_ row: IngestCase) throws {
        var lookup = InMemoryInbound()
        if let known = row.known { lookup.record(Self.contact(known)) }

        let decision = try InboundDecider.ingest(
            Self.message(), policy: row.policy, enqueueJob: row.enqueueJob, lookup: lookup, nextSeq: Self.nextSeq)

        #expect(decision.outcome == row.outcome)
        #expect(decision.events == row.events)
    }

    @Test(arguments: [ContactPolicy.open, .allowlist])
    func aMessageSeenBeforeIsADuplicateAndRecordsNothing(policy: ContactPolicy) throws {
        var lookup = InMemoryInbound(firstSeqs: ["telegram/bot/111:7": 17])
        lookup.record(Self.contact(.allowed))

        let decision = try InboundDecider.ingest(
            Self.message(), policy: policy, enqueueJob: true, lookup: lookup, nextSeq: Self.nextSeq)

        #expect(decision.outcome == .duplicate(firstSeq: 17))
        #expect(decision.events.isEmpty)
        // Dedupe is per external id: another message of the same contact is new.
        let other = try InboundDecider.ingest(
            Self.message("111:8"), policy: policy, enqueueJob: true, lookup: lookup, nextSeq: Self.nextSeq)
        #expect(other.events == [Self.received("111:8")])
    }

    @Test(arguments: [("", "111"), ("111:7", "")])
    func aMessageWithoutAnExternalIDOrContactIsInvalid(externalID: String, contactID: String) {
        var message = Self.message(externalID)
        message.contactID = contactID

        #expect(throws: ProjectionError(.invalidArgument, "")) {
            try InboundDecider.ingest(
                message, policy: .open, enqueueJob: true, lookup: InMemoryInbound(), nextSeq: Self.nextSeq)
        }
    }

    @Test func theReplyJobIsIdempotentPerMessageAndTriggeredByIt() {
        let job = InboundDecider.replyJob(for: Self.message(), conversationID: Self.conversation, messageSeq: 501)

        #expect(job.idempotencyKey == "inbound:telegram:bot:111:7")
        #expect(job.conversationID == Self.conversation)
        #expect(job.triggeringMessageSeq == 501)
    }

    // MARK: Contacts and pairing

    @Test(arguments: ContactStatus.allCases)
    func anOperatorSetsAStatusAndClearsAnyPairingCode(status: ContactStatus) {
        let decision = InboundDecider.setContact(
            channel: "telegram", accountID: "bot", contactID: "111", status: status, by: "ops")

        #expect(decision.outcome == Self.contact(status))
        #expect(decision.events == [Self.updated(status, by: "operator:ops")])
    }

    @Test func startingPairingMakesTheContactPendingWithTheCodesHashNeverTheCode() throws {
        let decision = InboundDecider.startPairing(
            channel: "telegram", accountID: "bot", contactID: "111", code: "123456", by: "ops")

        let hash = InboundDecider.hashCode("123456")
        #expect(hash.count == 64 && hash != "123456")
        #expect(decision.outcome == Self.contact(.pending, codeHash: hash))
        #expect(decision.events == [Self.updated(.pending, codeHash: hash, by: "operator:ops")])
    }

    @Test(
        arguments: [
            ("the right code pairs", contact(.pending, codeHash: InboundDecider.hashCode("123456")), "123456", nil),
            ("a wrong code", contact(.pending, codeHash: InboundDecider.hashCode("123456")), "654321", .wrongCode),
            ("a prefix of the code", contact(.pending, codeHash: InboundDecider.hashCode("123456")), "123", .wrongCode),
            ("pending without a code", contact(.pending), "123456", .noCode),
            ("already allowed", contact(.allowed, codeHash: InboundDecider.hashCode("123456")), "123456", .notPending),
            ("blocked", contact(.blocked, codeHash: InboundDecider.hashCode("123456")), "123456", .notPending),
            ("unknown contact", nil, "123456", .unknownContact),
        ] as [(String, ContactState?, String, PairingRefusal?)])
    func completingPairing(_ name: String, contact: ContactState?, code: String, refusal: PairingRefusal?) {
        let decision = InboundDecider.completePairing(contact, code: code)

        if let refusal {
            #expect(decision.outcome == .refused(refusal), "\(name)")
            #expect(decision.events.isEmpty, "\(name)")
        } else {
            #expect(decision.outcome == .paired, "\(name)")
            #expect(decision.events == [Self.updated(.allowed, by: "pairing")], "\(name)")
        }
    }

    @Test func statusesAreStoredAsTodaysStringsAndAnUnknownOneStartsNothing() throws {
        #expect(ContactStatus.allCases.map(\.rawValue) == ["allowed", "blocked", "pending"])
        var stranger = Self.contact(.allowed)
        stranger.status = "vip"
        #expect(stranger.access == .blocked)
        var lookup = InMemoryInbound()
        lookup.record(stranger)

        let decision = try InboundDecider.ingest(
            Self.message(), policy: .open, enqueueJob: true, lookup: lookup, nextSeq: Self.nextSeq)

        #expect(
            decision.outcome
                == .accepted(
                    messageSeq: Self.nextSeq, conversationID: Self.conversation, contactStatus: .blocked,
                    startsJob: false))
        #expect(InboundDecider.completePairing(stranger, code: "x").outcome == .refused(.notPending))
    }
}
