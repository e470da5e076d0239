import EventLog
@testable import Projections
import SwitchboardEvents
import Testing

/// The inbound decider reading `YES <code>` / `NO <code>` as the answer to one specific call awaiting approval:
/// pure, on in-memory state.
@Suite struct PureApprovalReplyTests {
    static let nextSeq: UInt64 = 900
    static let conversation = conversationID(channel: "whatsapp", accountID: "default", contactID: "1555")

    /// An in-memory lookup: an allowed contact and the conversation's awaiting calls.
    struct Lookup: InboundLookup {
        var awaiting: [ToolCallState] = []
        var status = ContactStatus.allowed
        func firstSeq(channel: String, accountID: String, externalID: String) -> UInt64? { nil }
        func contact(channel: String, accountID: String, contactID: String) -> ContactState? {
            ContactState(
                channel: channel, accountID: accountID, contactID: contactID, status: status.rawValue,
                pairingCodeHash: nil)
        }
        func awaitingApprovals(conversationID: String) -> [ToolCallState] {
            awaiting.filter { $0.conversationID == conversationID }
        }
    }

    static func call(_ callID: String, job: String = "j1", conversation: String = conversation) -> ToolCallState {
        ToolCallState(
            callID: callID, jobID: job, jobToken: 7, conversationID: conversation, toolName: "todoist_create_task",
            inputJSON: "{}", risk: "medium", status: .awaitingApproval, calledAt: LogTimestamp(microseconds: 1),
            expiresAt: LogTimestamp(microseconds: 2), decidedBy: nil, outputJSON: nil, error: nil, seq: 10)
    }

    static func decide(_ text: String, _ lookup: Lookup) throws -> Decision<InboundDecision> {
        try InboundDecider.ingest(
            InboundMessage(
                channel: "whatsapp", accountID: "default", externalID: "wamid.\(text)", contactID: "1555", text: text),
            policy: .open, enqueueJob: true, lookup: lookup, nextSeq: nextSeq)
    }

    static func received(_ text: String) -> SwitchboardEvent {
        .messageReceived(
            MessageReceived(
                channel: "whatsapp", accountID: "default", externalID: "wamid.\(text)", conversationID: conversation,
                contactID: "1555", text: text))
    }

    static func approval(_ callID: String, _ decision: String) -> SwitchboardEvent {
        .toolApproval(
            ToolApproval(
                callID: callID, jobID: "j1", conversationID: conversation, decision: decision, decidedBy: "1555"))
    }

    @Test(arguments: [
        ("YES a1b2c3", "a1b2c3d4e5f6", true), ("yes A1B2C3", "a1b2c3d4e5f6", true),
        ("No a1b2c3", "a1b2c3d4e5f6", false),
        ("  NO   a1b2c3 ", "a1b2c3d4e5f6", false),
    ])
    func anAnswerWithTheCodeResolvesThatCallAndStartsNoJob(text: String, callID: String, approved: Bool) throws {
        let lookup = Lookup(awaiting: [Self.call("ffff00001111"), Self.call(callID)])
        let decision = try Self.decide(text, lookup)
        #expect(
            decision.outcome
                == .approvalAnswer(
                    messageSeq: Self.nextSeq, conversationID: Self.conversation, callID: callID, approved: approved))
        #expect(decision.events == [Self.received(text), Self.approval(callID, approved ? "approved" : "rejected")])
    }

    @Test func withoutACodeTheOnlyAwaitingCallIsAnswered() throws {
        let decision = try Self.decide("yes", Lookup(awaiting: [Self.call("abcdef123456")]))
        #expect(
            decision.outcome
                == .approvalAnswer(
                    messageSeq: Self.nextSeq, conversationID: Self.conversation, callID: "abcdef123456", approved: true)
        )
        #expect(decision.events.last == Self.approval("abcdef123456", "approved"))
    }

    /// Each of these is an ordinary message: it is recorded and starts a reply job, and no approval is written.
    @Test(arguments: [
        ("YES", ["abcdef123456", "123456abcdef"]),  // no code, two calls waiting: ambiguous
        ("YES 999999", ["abcdef123456"]),  // an unknown (or expired, so not listed) code
        ("YES abcdef", [String]()),  // nothing awaits
        ("yes please", ["abcdef123456"]),  // not a code
        ("YES abcdef and more", ["abcdef123456"]),  // more words
        ("Yesterday", ["abcdef123456"]),
        ("NO abc-12", ["abcdef123456"]),
    ])
    func otherwiseItIsAnOrdinaryMessage(text: String, awaiting: [String]) throws {
        let decision = try Self.decide(text, Lookup(awaiting: awaiting.map { Self.call($0) }))
        #expect(
            decision.outcome
                == .accepted(
                    messageSeq: Self.nextSeq, conversationID: Self.conversation, contactStatus: .allowed,
                    startsJob: true))
        #expect(decision.events == [Self.received(text)])
    }

    @Test func aCallOfAnotherConversationIsNotAnswered() throws {
        let other = Self.call("abcdef123456", conversation: "telegram:default:9")
        let decision = try Self.decide("YES abcdef", Lookup(awaiting: [other]))
        #expect(decision.events == [Self.received("YES abcdef")])
    }

    @Test func onTheWebChatATypedAnswerIsAMessage() throws {
        var message = InboundMessage(
            channel: "web", accountID: "default", externalID: "c-1", contactID: "owner", text: "YES abcdef")
        message.conversationID = Self.conversation
        message.answersApprovalsInText = false  // what the web chat's intake says of its messages
        let decision = try InboundDecider.ingest(
            message, policy: .open, enqueueJob: true, lookup: Lookup(awaiting: [Self.call("abcdef123456")]),
            nextSeq: Self.nextSeq)
        #expect(!decision.events.contains { if case .toolApproval = $0 { true } else { false } })
        #expect(
            decision.outcome
                == .accepted(
                    messageSeq: Self.nextSeq, conversationID: Self.conversation, contactStatus: .allowed,
                    startsJob: true))
    }

    @Test func aContactThatIsNotAllowedAnswersNothing() throws {
        let decision = try Self.decide("YES abcdef", Lookup(awaiting: [Self.call("abcdef123456")], status: .blocked))
        #expect(decision.events == [Self.received("YES abcdef")])
        #expect(
            decision.outcome
                == .accepted(
                    messageSeq: Self.nextSeq, conversationID: Self.conversation, contactStatus: .blocked,
                    startsJob: false))
    }

    @Test func theReplyParser() {
        #expect(ApprovalReply("YES abc123") == ApprovalReply(approve: true, code: "abc123"))
        #expect(ApprovalReply("no") == ApprovalReply(approve: false, code: nil))
        #expect(ApprovalReply("") == nil)
        #expect(ApprovalReply("maybe abc123") == nil)
        #expect(ApprovalReply("YES ab") == nil)
    }
}
