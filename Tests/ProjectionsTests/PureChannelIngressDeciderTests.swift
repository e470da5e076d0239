import EventLog
@testable import Projections
import SwitchboardEvents
import Testing

/// An in-memory ``IngressLookup``: the inbound lookup plus the keys the ingress dedupes on.
struct InMemoryIngress: IngressLookup {
    var inbound = InMemoryInbound()
    var statusSeqs: [String: UInt64] = [:]
    var providerIDs: [String: String] = [:]
    var jobKeys: [String: String] = [:]
    var deliveryKeys: [String: String] = [:]

    func firstSeq(channel: String, accountID: String, externalID: String) -> UInt64? {
        inbound.firstSeq(channel: channel, accountID: accountID, externalID: externalID)
    }

    func contact(channel: String, accountID: String, contactID: String) -> ContactState? {
        inbound.contact(channel: channel, accountID: accountID, contactID: contactID)
    }

    func statusSeq(channel: String, accountID: String, providerMessageID: String, status: String) -> UInt64? {
        statusSeqs["\(channel)/\(accountID)/\(providerMessageID)/\(status)"]
    }

    func deliveryID(channel: String, accountID: String, providerMessageID: String) -> String? {
        providerIDs["\(channel)/\(accountID)/\(providerMessageID)"]
    }

    func jobID(idempotencyKey: String) -> String? { jobKeys[idempotencyKey] }
    func jobExists(_ jobID: String) -> Bool { jobKeys.values.contains(jobID) }
    func deliveryID(idempotencyKey: String) -> String? { deliveryKeys[idempotencyKey] }

    func pendingContactsWithCodes(channel: String) -> [ContactState] {
        inbound.contacts.values.filter { $0.channel == channel && $0.access == .pending && $0.pairingCodeHash != nil }
            .sorted { $0.contactID < $1.contactID }
    }
}

/// The channel ingress decider called directly on in-memory state, one provider item at a time; its ids come
/// from the caller.
@Suite struct PureChannelIngressDeciderTests {
    typealias P = PureInboundDeciderTests
    static let nextSeq: UInt64 = 700
    static let ids = IngressIDs(jobID: "j-fixed", pairingDeliveryID: "d-fixed")
    static let code = "ABCD-EFGH"

    static func decide(_ item: IngressItem, _ lookup: InMemoryIngress = InMemoryIngress()) throws
        -> Decision<IngressOutcome>
    {
        try ChannelIngressDecider.decide(
            item, lookup: lookup, jobs: JobSettings(), deliveries: DeliverySettings(), nextSeq: nextSeq)
    }

    static func message(_ access: SenderAccess) -> IngressItem { .message(P.message(), access, ids) }

    static var pairing: SenderAccess {
        SenderAccess(policy: .pairing, pairingCode: code, pairingReply: "Your code: \(code)")
    }

    static func kinds<Outcome>(_ decision: Decision<Outcome>) -> [String] {
        decision.events.map(\.eventType)
    }

    /// One row: the known contact, the sender's access, and what is recorded.
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var known: ContactState?
        var access: SenderAccess
        var events: [String]
        var job: Bool
        var pairing: Bool
        var status: ContactStatus
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(
            name: "open: a new sender is allowed and answered", known: nil, access: SenderAccess(policy: .open),
            events: ["contact.updated", "message.received", "job.enqueued"], job: true, pairing: false,
            status: .allowed),
        Case(
            name: "pairing: a new sender is pending and gets one code", known: nil, access: pairing,
            events: ["contact.updated", "message.received", "contact.updated", "delivery.enqueued"], job: false,
            pairing: true, status: .pending),
        Case(
            name: "pairing: a pending sender with a code gets nothing more", known: P.contact(.pending, codeHash: "h"),
            access: pairing, events: ["message.received"], job: false, pairing: false, status: .pending),
        Case(
            name: "allowlisted: a pending sender is allowed first", known: P.contact(.pending),
            access: SenderAccess(policy: .pairing, allowlisted: true),
            events: ["contact.updated", "message.received", "job.enqueued"], job: true, pairing: false,
            status: .allowed),
        Case(
            name: "disabled: recorded, nothing started", known: nil, access: SenderAccess(policy: .disabled),
            events: ["contact.updated", "message.received"], job: false, pairing: false, status: .pending),
        Case(
            name: "blocked: recorded, nothing started", known: P.contact(.blocked), access: SenderAccess(policy: .open),
            events: ["message.received"], job: false, pairing: false, status: .blocked),
    ]

    @Test(arguments: cases)
    func aMessageIsDecidedByItsSendersAccess(_ test: Case) throws {
        var lookup = InMemoryIngress()
        if let known = test.known { lookup.inbound.record(known) }
        let decision = try Self.decide(Self.message(test.access), lookup)
        #expect(Self.kinds(decision) == test.events)
        guard case .message(let seq, let conversation, let jobID, let status, let pairing) = decision.outcome else {
            Issue.record("expected a message outcome, got \(decision.outcome)")
            return
        }
        #expect(seq == Self.nextSeq + UInt64(test.events.firstIndex(of: "message.received") ?? 0))
        #expect(conversation == P.conversation)
        #expect(status == test.status)
        // The ids are the caller's: nothing is made inside the decision.
        #expect(jobID == (test.job ? "j-fixed" : nil))
        #expect(pairing == (test.pairing ? "d-fixed" : nil))
        // The reply job carries what its reply needs: the message it answers, by seq and provider id.
        for case .jobEnqueued(let enqueued) in decision.events {
            #expect(enqueued.triggeringMessageSeq == seq)
            #expect(enqueued.replyToExternalID == "111:7")
        }
        if test.pairing, case .contactUpdated(let issued) = decision.events[2] {
            #expect(issued.pairingCodeHash == InboundDecider.hashCode(ChannelIngressDecider.normalizedCode(Self.code)))
            #expect(issued.changedBy == "pairing")
        }
    }

    @Test func aMessageSeenBeforeIsADuplicateAndRecordsNothing() throws {
        var lookup = InMemoryIngress()
        lookup.inbound.firstSeqs["telegram/bot/111:7"] = 42
        let decision = try Self.decide(Self.message(SenderAccess(policy: .open)), lookup)
        #expect(decision.outcome == .duplicate(firstSeq: 42))
        #expect(decision.events.isEmpty)
    }

    @Test func aReplyJobAlreadyEnqueuedUnderItsKeyIsNotEnqueuedAgain() throws {
        var lookup = InMemoryIngress()
        lookup.jobKeys["inbound:telegram:bot:111:7"] = "j-first"
        let decision = try Self.decide(Self.message(SenderAccess(policy: .open)), lookup)
        #expect(Self.kinds(decision) == ["contact.updated", "message.received"])
        guard case .message(_, _, let jobID, _, _) = decision.outcome else {
            Issue.record("expected a message outcome")
            return
        }
        #expect(jobID == "j-first")
    }

    @Test func ignoredUpdatesAndStatusesAreRecordedOnce() throws {
        let ignored = InboundIgnored(
            channel: "telegram", accountID: "bot", externalID: "update:9", kind: "callback_query",
            reason: "unsupported_kind", contactID: nil)
        #expect(try Self.decide(.ignored(ignored)).outcome == .recorded(seq: Self.nextSeq, deliveryID: nil))
        var seen = InMemoryIngress()
        seen.inbound.firstSeqs["telegram/bot/update:9"] = 5
        #expect(try Self.decide(.ignored(ignored), seen).outcome == .duplicate(firstSeq: 5))

        let status = DeliveryStatusReported(
            channel: "whatsapp", accountID: "default", providerMessageID: "wamid.1", status: "read")
        var known = InMemoryIngress()
        known.providerIDs["whatsapp/default/wamid.1"] = "d-ours"
        let recorded = try Self.decide(.status(status), known)
        #expect(recorded.outcome == .recorded(seq: Self.nextSeq, deliveryID: "d-ours"))
        #expect(recorded.correlationIDs == ["d-ours"])
        known.statusSeqs["whatsapp/default/wamid.1/read"] = 77
        #expect(try Self.decide(.status(status), known).outcome == .duplicate(firstSeq: 77))
    }

    @Test func approvingACodeAllowsItsPendingContactAndQueuesTheConfirmation() throws {
        var lookup = InMemoryIngress()
        let hash = InboundDecider.hashCode(ChannelIngressDecider.normalizedCode(Self.code))
        lookup.inbound.record(P.contact(.pending, codeHash: hash))
        let approved = try ChannelIngressDecider.approve(
            channel: "telegram", code: "abcd efgh", by: "owner", confirmation: "You're in.",
            confirmationDeliveryID: "d-confirm", deliveries: DeliverySettings(), lookup: lookup)
        #expect(approved.outcome == .approved(P.contact(.allowed)))
        #expect(Self.kinds(approved) == ["contact.updated", "delivery.enqueued"])
        if case .deliveryEnqueued(let delivery) = approved.events[1] { #expect(delivery.deliveryID == "d-confirm") }
        let wrong = try ChannelIngressDecider.approve(
            channel: "telegram", code: "WXYZ-2345", by: "owner", confirmation: nil, confirmationDeliveryID: "d-x",
            deliveries: DeliverySettings(), lookup: lookup)
        #expect(wrong.outcome == .notFound)
        #expect(wrong.events.isEmpty)
    }
}
