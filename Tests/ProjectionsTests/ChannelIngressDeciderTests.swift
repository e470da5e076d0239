import EventLog
import Foundation
import Projections
import SwitchboardEvents
import Testing

/// The channel ingress decider on a real log: DM policies, the pairing code issued once, approval by code, ignored
/// updates and provider statuses deduplicated, batches all or nothing.
@Suite struct ChannelIngressDeciderTests {
    static func message(_ id: String, from contact: String = "4242", text: String = "hello") -> InboundMessage {
        InboundMessage(channel: "telegram", accountID: "default", externalID: id, contactID: contact, text: text)
    }

    static func pairing(_ code: String = "ABCD-EFGH") -> SenderAccess {
        SenderAccess(policy: .pairing, pairingCode: code, pairingReply: "your code is \(code)")
    }

    @Test func anUnknownSenderGetsOneCodeAndNothingElseUntilApproved() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        let first = try await engine.ingest([.message(Self.message("4242:1"), Self.pairing("ABCD-EFGH"))])
        guard case .message(_, let conversation, let jobID, let status, let pairing?) = first[0] else {
            Issue.record("the first message issues a code: \(first)")
            return
        }
        #expect(jobID == nil)
        #expect(status == .pending)
        // More messages: recorded, never processed, and no second code (even with a fresh one offered).
        let more = try await engine.ingest([
            .message(Self.message("4242:2"), Self.pairing("WXYZ-2345")),
            .message(Self.message("4242:3"), Self.pairing("QRST-6789")),
        ])
        for outcome in more {
            guard case .message(_, _, nil, .pending, nil) = outcome else {
                Issue.record("a pending sender's message starts nothing and sends no code: \(outcome)")
                return
            }
        }
        #expect(try engine.history(conversation).count == 3)
        #expect(try engine.recorded(JobEnqueued.self).isEmpty)
        let codes = try engine.recorded(DeliveryEnqueued.self)
        #expect(codes.map(\.deliveryID) == [pairing])
        #expect(codes.first?.text == "your code is ABCD-EFGH")
        #expect(codes.first?.recipient == "4242")
        #expect(codes.first?.kind == "pairing_code")
        // The code is stored hashed only.
        let contact = try #require(try engine.contact(channel: "telegram", accountID: "default", contactID: "4242"))
        #expect(contact.access == .pending)
        #expect(contact.pairingCodeHash != nil && contact.pairingCodeHash?.contains("ABCD") == false)
        // Only the text sent to the sender carries the code; the contact's records hold its hash.
        #expect(
            !(try engine.recorded(ContactUpdated.eventType).contains {
                $0.payloadText.contains("ABCD") || $0.payloadText.contains("EFGH")
            }))

        // A wrong code and another channel's code find nothing.
        #expect(try await engine.approvePairing(channel: "telegram", code: "WXYZ-2345", by: "owner") == .notFound)
        #expect(try await engine.approvePairing(channel: "whatsapp", code: "ABCD-EFGH", by: "owner") == .notFound)
        // Case and dashes do not matter.
        let approved = try await engine.approvePairing(
            channel: "telegram", code: "abcd efgh", by: "owner", confirmation: "approved!")
        guard case .approved(let allowed) = approved else {
            Issue.record("the right code approves: \(approved)")
            return
        }
        #expect(allowed.contactID == "4242")
        #expect(try engine.recorded(ContactUpdated.self).last?.changedBy == "operator:owner")
        #expect(try engine.recorded(DeliveryEnqueued.self).last?.text == "approved!")
        // The code is spent.
        #expect(try await engine.approvePairing(channel: "telegram", code: "ABCD-EFGH", by: "owner") == .notFound)

        let next = try await engine.ingest([.message(Self.message("4242:4"), Self.pairing("MNPQ-2222"))])
        guard case .message(_, _, let job?, .allowed, nil) = next[0] else {
            Issue.record("the next message after approval is processed: \(next)")
            return
        }
        #expect(try engine.recorded(JobEnqueued.self).map(\.jobID) == [job])
        await fixture.close()
    }

    @Test func theAllowlistLetsSendersInAtOnceAndOthersAreRecordedWithoutACode() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        let outcomes = try await engine.ingest([
            .message(Self.message("1:1", from: "1"), SenderAccess(policy: .allowlist, allowlisted: true)),
            .message(Self.message("2:1", from: "2"), SenderAccess(policy: .allowlist)),
        ])
        guard case .message(_, _, _?, .allowed, nil) = outcomes[0],
            case .message(_, _, nil, .pending, nil) = outcomes[1]
        else {
            Issue.record("allowlisted: answered; other: recorded only — \(outcomes)")
            return
        }
        #expect(try engine.recorded(DeliveryEnqueued.self).isEmpty)
        // Added to the list later: the pending contact becomes allowed with its next message.
        let later = try await engine.ingest([
            .message(Self.message("2:2", from: "2"), SenderAccess(policy: .pairing, allowlisted: true))
        ])
        guard case .message(_, _, _?, .allowed, nil) = later[0] else {
            Issue.record("an allowlisted pending contact is allowed: \(later)")
            return
        }
        #expect(try engine.recorded(ContactUpdated.self).last?.changedBy == "allowlist")
        await fixture.close()
    }

    @Test func openAnswersEveryoneAndDisabledNobody() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        let open = try await engine.ingest([.message(Self.message("9:1", from: "9"), SenderAccess(policy: .open))])
        guard case .message(let messageSeq, _, let jobID?, .allowed, nil) = open[0] else {
            Issue.record("open: answered — \(open)")
            return
        }
        // The job is projected with what its reply needs (format 6): no second read of the log.
        let job = try #require(try engine.job(jobID))
        #expect(job.triggeringMessageSeq == messageSeq)
        #expect(job.replyToExternalID == "9:1")
        // The same, now allowed, contact under `disabled`: recorded, nothing started.
        let off = try await engine.ingest([
            .message(Self.message("9:2", from: "9"), SenderAccess(policy: .disabled)),
            .message(Self.message("8:1", from: "8"), SenderAccess(policy: .disabled)),
        ])
        guard case .message(_, _, nil, .allowed, nil) = off[0], case .message(_, _, nil, .pending, nil) = off[1] else {
            Issue.record("disabled: nothing processed — \(off)")
            return
        }
        #expect(try engine.recorded(JobEnqueued.self).count == 1)
        await fixture.close()
    }

    @Test func aReplayedMessageOrUpdateIsRecordedOnce() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        let ignored = InboundIgnored(
            channel: "telegram", accountID: "default", externalID: "update:77", kind: "callback_query",
            reason: "unsupported_kind")
        let items: [IngressItem] = [
            .message(Self.message("5:5", from: "5"), SenderAccess(policy: .open)), .ignored(ignored),
        ]
        let first = try await engine.ingest(items)
        let again = try await engine.ingest(items)
        guard case .message(let seq, _, _, _, _) = first[0], case .recorded(let ignoredSeq, nil) = first[1] else {
            Issue.record("first sight records both: \(first)")
            return
        }
        #expect(again == [.duplicate(firstSeq: seq), .duplicate(firstSeq: ignoredSeq)])
        #expect(try engine.recorded(MessageReceived.self).count == 1)
        #expect(try engine.recorded(InboundIgnored.self) == [ignored])
        // Within one batch too.
        let twice = try await engine.ingest([
            .message(Self.message("6:1", from: "6"), SenderAccess(policy: .open)),
            .message(Self.message("6:1", from: "6"), SenderAccess(policy: .open)),
        ])
        guard case .message(let sixSeq, _, _, _, _) = twice[0] else {
            Issue.record("\(twice)")
            return
        }
        #expect(twice[1] == .duplicate(firstSeq: sixSeq))
        await fixture.close()
    }

    @Test func statusesAreMatchedToTheDeliveryByProviderIDInAnyOrder() async throws {
        let fixture = try DeciderFixture(settings: try .longLease())
        let engine = fixture.engine
        func status(_ state: String) -> IngressItem {
            .status(
                DeliveryStatusReported(
                    channel: "whatsapp", accountID: "default", providerMessageID: "wamid.X1", status: state,
                    recipient: "15550001"))
        }
        // `read` before anything, even before our delivery.sent is recorded.
        let early = try await engine.ingest([status("read")])
        guard case .recorded(_, nil) = early[0] else {
            Issue.record("a status before delivery.sent is recorded without a delivery: \(early)")
            return
        }
        let token = try await engine.mustAcquire("whatsapp/default")
        let enqueued = try await engine.enqueueDelivery(
            NewDelivery(
                idempotencyKey: "k1", channel: "whatsapp", accountID: "default", recipient: "15550001",
                conversationID: "c1", text: "hi"))
        let claim = try await engine.mustClaimDelivery(channel: "whatsapp", accountID: "default", leaseToken: token)
        _ = try await engine.attemptDelivery(claim.delivery.deliveryID, token: claim.token, leaseToken: token)
        _ = try await engine.deliverySent(claim.delivery.deliveryID, token: claim.token, providerMessageID: "wamid.X1")
        let later = try await engine.ingest([status("delivered"), status("read"), status("sent")])
        #expect(later[0] == .recorded(seq: try engine.log.lastSeq() - 1, deliveryID: enqueued.deliveryID))
        guard case .duplicate = later[1], case .recorded(_, enqueued.deliveryID?) = later[2] else {
            Issue.record("read again is a duplicate; sent (late) is recorded against the delivery: \(later)")
            return
        }
        let statuses = try engine.deliveryStatuses(
            channel: "whatsapp", accountID: "default", providerMessageID: "wamid.X1")
        #expect(statuses.map(\.status.status) == ["read", "delivered", "sent"])
        #expect(try engine.recorded(DeliveryStatusReported.self).last?.deliveryID == enqueued.deliveryID)
        await fixture.close()
    }

    @Test func partsAreEnqueuedAllOrNone() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        func part(_ index: Int, key: String) -> NewDelivery {
            var delivery = NewDelivery(
                idempotencyKey: key, channel: "telegram", accountID: "default", recipient: "1", conversationID: "c",
                text: "part \(index)")
            delivery.part = index
            return delivery
        }
        let results = try await engine.enqueueDeliveries([part(0, key: "m#0"), part(1, key: "m#1")])
        #expect(results.map(\.duplicate) == [false, false])
        // A bad part refuses the whole batch.
        var bad = part(1, key: "")
        bad.recipient = ""
        await #expect(throws: ProjectionError.self) {
            _ = try await engine.enqueueDeliveries([part(0, key: "n#0"), bad])
        }
        #expect(try engine.recorded(DeliveryEnqueued.self).map(\.idempotencyKey) == ["m#0", "m#1"])
        await fixture.close()
    }
}
