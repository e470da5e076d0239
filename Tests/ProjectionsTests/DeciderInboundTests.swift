import EventLog
import SwitchboardEvents
import Foundation
import Projections
import Testing

/// An inbound message `externalID` from `contact`.
func deciderMessage(
    _ externalID: String, from contact: String = "111", channel: String = "telegram", account: String = "bot",
    text: String? = nil
) -> InboundMessage {
    InboundMessage(
        channel: channel, accountID: account, externalID: externalID, contactID: contact,
        text: text ?? "text of \(externalID)")
}

@Suite struct DeciderInboundTests {
    @Test func sameMessageIngestedTwiceIsADuplicateForever() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine

        let first = try await engine.ingest(deciderMessage("111:7"))
        let accepted = try #require(first.accepted)
        #expect(accepted.contactStatus == .allowed)
        #expect(accepted.conversationID == conversationID(channel: "telegram", accountID: "bot", contactID: "111"))
        let jobID = try #require(accepted.jobID)

        #expect(try await engine.ingest(deciderMessage("111:7")) == .duplicate(firstSeq: accepted.messageSeq))
        // A provider redelivering days later is still a duplicate (the original kept ids for 24–48 h).
        fixture.clock.advance(.seconds(30 * 24 * 3600))
        #expect(
            try await engine.ingest(deciderMessage("111:7", text: "edited"))
                == .duplicate(firstSeq: accepted.messageSeq))

        #expect(try engine.onlySeq(of: MessageReceived.eventType) == accepted.messageSeq)
        // The shell keeps the stored envelope: message.received is correlated to its conversation.
        #expect(try engine.recorded(MessageReceived.eventType).first?.correlationID == accepted.conversationID)
        #expect(try engine.recorded(ContactUpdated.eventType).first?.correlationID == nil)
        #expect(try engine.recorded(JobEnqueued.self).map(\.jobID) == [jobID])
        #expect(try engine.recorded(JobEnqueued.self).first?.triggeringMessageSeq == accepted.messageSeq)
        #expect(try engine.job(jobID)?.conversationID == accepted.conversationID)
        #expect(try engine.history(accepted.conversationID).map(\.text) == ["text of 111:7"])
        await fixture.close()
    }

    @Test(arguments: [
        ("whatsapp", "bot"),
        ("telegram", "other-bot"),
        ("web", "bot"),
    ])
    func sameExternalIDOnAnotherChannelOrAccountIsIndependent(channel: String, account: String) async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        let first = try await engine.ingest(deciderMessage("m-1", channel: "telegram", account: "bot"))

        let second = try await engine.ingest(deciderMessage("m-1", channel: channel, account: account))

        let a = try #require(first.accepted)
        let b = try #require(second.accepted, "\(channel)/\(account) m-1 was taken for a duplicate")
        #expect(a.messageSeq != b.messageSeq)
        #expect(a.conversationID != b.conversationID)
        #expect(a.jobID != nil && b.jobID != nil && a.jobID != b.jobID)
        #expect(try engine.recorded(MessageReceived.eventType).count == 2)
        #expect(try engine.recorded(JobEnqueued.eventType).count == 2)
        // Each stays deduplicated on its own.
        #expect(
            try await engine.ingest(deciderMessage("m-1", channel: channel, account: account))
                == .duplicate(firstSeq: b.messageSeq))
        #expect(
            try await engine.ingest(deciderMessage("m-1", channel: "telegram", account: "bot"))
                == .duplicate(firstSeq: a.messageSeq))
        await fixture.close()
    }

    /// Original weak point §10.11: one shared conversation per channel account leaked between senders.
    @Test func twoContactsOfOneAccountGetTwoConversations() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine

        let alice = try #require(
            try await engine.ingest(deciderMessage("w-1", from: "+1555001", channel: "whatsapp"))
                .accepted)
        let bob = try #require(
            try await engine.ingest(deciderMessage("w-2", from: "+1555002", channel: "whatsapp"))
                .accepted)

        #expect(alice.conversationID != bob.conversationID)
        #expect(try engine.conversation(alice.conversationID)?.contactID == "+1555001")
        #expect(try engine.conversation(bob.conversationID)?.contactID == "+1555002")
        #expect(try engine.conversation(alice.conversationID)?.messageCount == 1)
        #expect(try engine.history(alice.conversationID).map(\.text) == ["text of w-1"])
        #expect(try engine.history(bob.conversationID).map(\.text) == ["text of w-2"])
        #expect(try engine.job(try #require(alice.jobID))?.conversationID == alice.conversationID)
        #expect(try engine.job(try #require(bob.jobID))?.conversationID == bob.conversationID)
        // A second message from alice joins her conversation, not bob's.
        let again = try #require(
            try await engine.ingest(deciderMessage("w-3", from: "+1555001", channel: "whatsapp"))
                .accepted)
        #expect(again.conversationID == alice.conversationID)
        #expect(try engine.history(bob.conversationID).count == 1)
        await fixture.close()
    }

    @Test func allowlistRecordsAnUnknownSendersMessageWithoutAJob() async throws {
        var settings = EngineSettings.defaults()
        settings.contactPolicy = .allowlist
        let fixture = try DeciderFixture(settings: settings)
        let engine = fixture.engine

        let first = try #require(try await engine.ingest(deciderMessage("111:1", from: "111")).accepted)

        #expect(first.contactStatus == .pending)
        #expect(first.jobID == nil)
        #expect(try engine.recorded(MessageReceived.eventType).count == 1)
        #expect(try engine.recorded(JobEnqueued.eventType).isEmpty)
        #expect(try engine.contact(channel: "telegram", accountID: "bot", contactID: "111")?.status == "pending")
        #expect(try engine.history(first.conversationID).map(\.text) == ["text of 111:1"])

        try await engine.setContact(
            channel: "telegram", accountID: "bot", contactID: "111", status: .allowed, by: "ops")
        let second = try #require(try await engine.ingest(deciderMessage("111:2", from: "111")).accepted)

        #expect(second.contactStatus == .allowed)
        let jobID = try #require(second.jobID)
        #expect(try engine.recorded(JobEnqueued.self).map(\.jobID) == [jobID])
        #expect(try engine.recorded(JobEnqueued.self).first?.triggeringMessageSeq == second.messageSeq)
        await fixture.close()
    }

    @Test func blockedContactsMessagesStartNoJob() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        try await engine.setContact(
            channel: "telegram", accountID: "bot", contactID: "666", status: .blocked, by: "ops")

        let result = try #require(try await engine.ingest(deciderMessage("666:1", from: "666")).accepted)

        #expect(result.contactStatus == .blocked)
        #expect(result.jobID == nil)
        #expect(try engine.recorded(JobEnqueued.eventType).isEmpty)
        await fixture.close()
    }

    @Test func pairingAllowsTheContactOnlyWithTheRightCode() async throws {
        var settings = EngineSettings.defaults()
        settings.contactPolicy = .allowlist
        let fixture = try DeciderFixture(settings: settings)
        let engine = fixture.engine
        _ = try await engine.ingest(deciderMessage("222:1", from: "222"))

        try await engine.startPairing(
            channel: "telegram", accountID: "bot", contactID: "222", code: "123456", by: "ops")

        let contact = try #require(try engine.contact(channel: "telegram", accountID: "bot", contactID: "222"))
        #expect(contact.status == "pending")
        #expect(contact.pairingCodeHash != nil && contact.pairingCodeHash != "123456")
        let wrong = try await engine.completePairing(
            channel: "telegram", accountID: "bot", contactID: "222", code: "654321")
        #expect(wrong == .refused(.wrongCode))
        #expect(try engine.contact(channel: "telegram", accountID: "bot", contactID: "222")?.status == "pending")
        let right = try await engine.completePairing(
            channel: "telegram", accountID: "bot", contactID: "222", code: "123456")
        #expect(right == .paired)
        #expect(try engine.contact(channel: "telegram", accountID: "bot", contactID: "222")?.status == "allowed")
        // The code never appears in clear in the log.
        let payloads = try engine.recorded(ContactUpdated.eventType).map { String(decoding: $0.payload, as: UTF8.self) }
        #expect(!payloads.contains { $0.contains("123456") })
        // The paired contact's next message starts a job.
        #expect(try await engine.ingest(deciderMessage("222:2", from: "222")).accepted?.jobID != nil)
        await fixture.close()
    }

    @Test func historyReturnsTheConversationsUserMessagesInOrder() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        var seqs: [UInt64] = []
        for (index, text) in ["one", "two", "three"].enumerated() {
            let result = try await engine.ingest(deciderMessage("111:\(index)", from: "111", text: text))
            seqs.append(try #require(result.accepted).messageSeq)
            // Another contact's message in between must not show up.
            _ = try await engine.ingest(deciderMessage("999:\(index)", from: "999", text: "other \(index)"))
            fixture.clock.advance(.seconds(1))
        }
        let conversation = conversationID(channel: "telegram", accountID: "bot", contactID: "111")

        let history = try engine.history(conversation)

        #expect(history.map(\.text) == ["one", "two", "three"])
        #expect(history.map(\.seq) == seqs)
        #expect(history.allSatisfy { $0.role == "user" })
        #expect(history.map(\.time) == history.map(\.time).sorted())
        #expect(try engine.history(conversation, limit: 2).map(\.text) == ["two", "three"])
        #expect(try engine.conversation(conversation)?.messageCount == 3)
        await fixture.close()
    }
}
