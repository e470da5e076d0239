import EventLog
import SwitchboardEvents
import Foundation
import Projections
import Testing

/// A new delivery with id `d-<key>` to `recipient`; the `web` channel has no rate limits.
func deciderDelivery(_ key: String, to recipient: String, channel: String = "web", account: String = "main")
    -> NewDelivery
{
    var delivery = NewDelivery(
        idempotencyKey: key, channel: channel, accountID: account, recipient: recipient,
        conversationID: conversationID(channel: channel, accountID: account, contactID: recipient),
        text: "reply \(key)")
    delivery.deliveryID = "d-\(key)"
    return delivery
}

@Suite struct DeciderDeliveryTests {
    /// Claims the next delivery of `channel`/`main`, records the attempt and the provider's acceptance.
    func claimAndSend(_ engine: Switchboard, channel: String = "web", lease: UInt64) async throws -> DeliveryClaim {
        let claim = try await engine.mustClaimDelivery(channel: channel, accountID: "main", leaseToken: lease)
        let attempt = try await engine.attemptDelivery(
            claim.delivery.deliveryID, token: claim.token, leaseToken: lease)
        #expect(attempt == .accepted)
        let sent = try await engine.deliverySent(
            claim.delivery.deliveryID, token: claim.token, providerMessageID: "p-\(claim.delivery.deliveryID)")
        #expect(sent == .accepted)
        return claim
    }

    @Test func enqueueIsIdempotentByKey() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        var again = deciderDelivery("msg-1:0", to: "alice")
        again.deliveryID = "d-other"

        let first = try await engine.enqueueDelivery(deciderDelivery("msg-1:0", to: "alice"))
        let second = try await engine.enqueueDelivery(again)

        #expect(first.deliveryID == "d-msg-1:0" && !first.duplicate)
        #expect(second.deliveryID == "d-msg-1:0" && second.duplicate)
        #expect(try engine.recorded(DeliveryEnqueued.eventType).count == 1)
        #expect(try engine.delivery("d-other") == nil)
        #expect(try engine.deliveries(.pending).map(\.deliveryID) == ["d-msg-1:0"])
        await fixture.close()
    }

    @Test func claimWithTheCurrentLeaseTokenGivesAClaimFencedByItsSeq() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        let lease = try await engine.mustAcquire("web/main")
        _ = try await engine.enqueueDelivery(deciderDelivery("k1", to: "alice"))

        let claim = try await engine.mustClaimDelivery(channel: "web", accountID: "main", leaseToken: lease)

        #expect(claim.token == (try engine.onlySeq(of: DeliveryClaimed.eventType)))
        #expect(claim.leaseToken == lease && claim.attempt == 1)
        #expect(claim.visibleUntil == fixture.now.advanced(by: .seconds(120)))
        let event = try #require(try engine.recorded(DeliveryClaimed.self).first)
        #expect(event.leaseResource == "web/main" && event.leaseToken == lease)
        let state = try #require(try engine.delivery("d-k1"))
        #expect(state.status == .claimed && state.token == claim.token && state.leaseToken == lease)
        await fixture.close()
    }

    @Test func claimWithoutTheAccountLeaseIsRejected() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        let other = Owner(workerID: "tg-2", instance: "other")
        _ = try await engine.enqueueDelivery(deciderDelivery("k1", to: "alice"))

        // Nobody holds it.
        let none = try await engine.claimDelivery(channel: "web", accountID: "main", leaseToken: 1)
        #expect(none == .rejected(reason: .notHeld))
        // Another instance holds it (even presenting its token).
        let othersToken = try await engine.mustAcquire("web/main", as: other)
        let notOwner = try await engine.claimDelivery(channel: "web", accountID: "main", leaseToken: othersToken)
        #expect(notOwner == .rejected(reason: .notOwner))
        // An old tenure of this process.
        _ = try await engine.releaseLease("web/main", token: othersToken, as: other)
        let old = try await engine.mustAcquire("web/main")
        _ = try await engine.releaseLease("web/main", token: old)
        let current = try await engine.mustAcquire("web/main")
        #expect(current > old)
        let stale = try await engine.claimDelivery(channel: "web", accountID: "main", leaseToken: old)
        #expect(stale == .rejected(reason: .staleLease))
        // The current tenure, expired.
        fixture.clock.advance(.seconds(45) + .microseconds(1))
        let expired = try await engine.claimDelivery(channel: "web", accountID: "main", leaseToken: current)
        #expect(expired == .rejected(reason: .expired))

        let rejected = try engine.recorded(CommandRejected.self)
        #expect(rejected.map(\.reason) == ["not_held", "not_owner", "stale_lease", "expired"])
        #expect(rejected.allSatisfy { $0.command == "delivery.claim" && $0.subject == "web/main" })
        #expect(try engine.recorded(DeliveryClaimed.eventType).isEmpty)
        #expect(try engine.delivery("d-k1")?.status == .pending)
        await fixture.close()
    }

    @Test func attemptWithTheCurrentTokensIsAccepted() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        let lease = try await engine.mustAcquire("web/main")
        _ = try await engine.enqueueDelivery(deciderDelivery("k1", to: "alice"))
        let claim = try await engine.mustClaimDelivery(channel: "web", accountID: "main", leaseToken: lease)

        let result = try await engine.attemptDelivery("d-k1", token: claim.token, leaseToken: lease)

        #expect(result == .accepted)
        #expect(try engine.delivery("d-k1")?.status == .attempting)
        let attempted = try #require(try engine.recorded(DeliveryAttempted.self).first)
        #expect(attempted.token == claim.token && attempted.leaseToken == lease && attempted.attempt == 1)
        await fixture.close()
    }

    @Test func attemptWithAStaleDeliveryTokenIsRejected() async throws {
        let fixture = try DeciderFixture(settings: try .longLease())
        let engine = fixture.engine
        let lease = try await engine.mustAcquire("web/main")
        _ = try await engine.enqueueDelivery(deciderDelivery("k1", to: "alice"))
        let first = try await engine.mustClaimDelivery(channel: "web", accountID: "main", leaseToken: lease)
        // The first claim lapses before its attempt; the delivery is claimed again.
        fixture.advance(to: first.visibleUntil.advanced(by: .microseconds(1)))
        _ = try await engine.claimDelivery(channel: "web", accountID: "main", leaseToken: lease)
        fixture.advance(to: try #require(try engine.delivery("d-k1")).notBefore)
        let second = try await engine.mustClaimDelivery(channel: "web", accountID: "main", leaseToken: lease)
        #expect(second.token > first.token)

        let result = try await engine.attemptDelivery("d-k1", token: first.token, leaseToken: lease)

        #expect(result == .rejected(reason: .staleToken))
        let rejected = try #require(try engine.recorded(CommandRejected.self).last)
        #expect(rejected.command == "delivery.attempt" && rejected.reason == "stale_token")
        #expect(rejected.presentedToken == first.token && rejected.currentToken == second.token)
        #expect(try engine.recorded(DeliveryAttempted.eventType).isEmpty)
        #expect(try engine.delivery("d-k1")?.status == .claimed)
        await fixture.close()
    }

    // A batch claim takes what free slots may in one transaction, each claim decided against the ones before it:
    // one head per recipient (the second message to alice waits for the first), then an empty stop.
    @Test func aBatchClaimTakesOneHeadPerRecipientInOneTransaction() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        let lease = try await engine.mustAcquire("web/main")
        for (key, to) in [("k1", "alice"), ("k2", "alice"), ("k3", "bob"), ("k4", "carol")] {
            _ = try await engine.enqueueDelivery(deciderDelivery(key, to: to))
        }
        let before = try engine.log.lastSeq()
        let batch = try await engine.claimDeliveries(channel: "web", accountID: "main", leaseToken: lease, limit: 10)
        #expect(batch.claims.map(\.delivery.deliveryID) == ["d-k1", "d-k3", "d-k4"])
        #expect(batch.stop == .empty(retryAt: nil))
        #expect(batch.claims.map(\.token) == [before + 1, before + 2, before + 3])
        let limited = try await engine.claimDeliveries(channel: "web", accountID: "main", leaseToken: lease, limit: 1)
        #expect(limited.claims.isEmpty && limited.stop == .empty(retryAt: nil))
        await fixture.close()
    }

    // The successor's acquisition settles an attempted claim of the dead tenure in the same transaction
    // (uncertain), long before the claim's own visibility ends; the recipient's next message is claimable at once.
    @Test func aNewTenureSettlesAnAttemptedClaimOfTheOldOneInItsOwnTransaction() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        let successor = Owner(workerID: "wa-2", instance: "successor")
        let lease = try await engine.mustAcquire("web/main")
        _ = try await engine.enqueueDelivery(deciderDelivery("k1", to: "alice"))
        _ = try await engine.enqueueDelivery(deciderDelivery("k2", to: "alice"))
        let claim = try await engine.mustClaimDelivery(channel: "web", accountID: "main", leaseToken: lease)
        #expect(try await engine.attemptDelivery("d-k1", token: claim.token, leaseToken: lease) == .accepted)
        fixture.clock.advance(.seconds(46))  // the lease lapsed; the claim is visible for 120 s

        let newLease = try await engine.mustAcquire("web/main", as: successor)
        let acquired = try #require(try engine.recorded(LeaseAcquired.eventType).last)
        let uncertain = try engine.recorded(DeliveryUncertain.eventType)
        #expect(uncertain.map(\.seq) == [acquired.seq + 1])
        #expect(uncertain.first?.timestamp == acquired.timestamp)
        #expect(try engine.delivery("d-k1")?.status == .uncertain)
        let next = try await engine.mustClaimDelivery(
            channel: "web", accountID: "main", leaseToken: newLease, as: successor)
        #expect(next.delivery.deliveryID == "d-k2")
        // The dead tenure's late word on its send is still recorded.
        #expect(try await engine.deliverySent("d-k1", token: claim.token, providerMessageID: "p-1") == .accepted)
        await fixture.close()
    }

    @Test func attemptUnderALeaseThatExpiredAndWentToAnotherOwnerIsRejected() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        let successor = Owner(workerID: "wa-2", instance: "successor")
        let lease = try await engine.mustAcquire("web/main")
        _ = try await engine.enqueueDelivery(deciderDelivery("k1", to: "alice"))
        let claim = try await engine.mustClaimDelivery(channel: "web", accountID: "main", leaseToken: lease)
        fixture.clock.advance(.seconds(46))

        // Expired, not yet taken over: refused as expired.
        let lapsed = try await engine.attemptDelivery("d-k1", token: claim.token, leaseToken: lease)
        #expect(lapsed == .rejected(reason: .expired))
        // Taken over by another instance: refused as a stale lease.
        let newLease = try await engine.mustAcquire("web/main", as: successor)
        #expect(newLease > lease)
        let stale = try await engine.attemptDelivery("d-k1", token: claim.token, leaseToken: lease)

        #expect(stale == .rejected(reason: .staleLease))
        let rejected = try engine.recorded(CommandRejected.self)
        #expect(rejected.map(\.reason) == ["expired", "stale_lease"])
        #expect(rejected.last?.command == "delivery.attempt")
        #expect(rejected.last?.presentedLeaseToken == lease)
        #expect(try engine.recorded(DeliveryAttempted.eventType).isEmpty)
        // The successor's tenure settled the never-attempted claim as it began: pending again, at once.
        #expect(try engine.delivery("d-k1")?.status == .pending)
        #expect(try engine.recorded(DeliveryFailed.self).map(\.errorCode) == ["tenure_ended"])
        let again = try await engine.mustClaimDelivery(
            channel: "web", accountID: "main", leaseToken: newLease, as: successor)
        #expect(again.delivery.deliveryID == "d-k1")
        await fixture.close()
    }

    @Test func sentMarksTheDeliverySent() async throws {
        let fixture = try DeciderFixture(settings: try .longLease())
        let engine = fixture.engine
        let lease = try await engine.mustAcquire("web/main")
        _ = try await engine.enqueueDelivery(deciderDelivery("k1", to: "alice"))

        let claim = try await claimAndSend(engine, lease: lease)

        let state = try #require(try engine.delivery("d-k1"))
        #expect(state.status == .sent)
        #expect(state.providerMessageID == "p-d-k1")
        #expect(try engine.deliveries(.sent).map(\.deliveryID) == ["d-k1"])
        #expect(try engine.recorded(DeliverySent.self).first?.token == claim.token)
        fixture.clock.advance(.seconds(600))
        #expect(
            try await engine.claimDelivery(channel: "web", accountID: "main", leaseToken: lease)
                == .empty(retryAt: nil))
        await fixture.close()
    }

    /// A transient failure is retried no earlier than the provider's `retry_after` and the backoff.
    @Test(arguments: [nil, 0, 10, 45] as [Int64?])
    func transientFailureIsPendingAgainNotBeforeRetryAfterOrBackoff(retryAfterSeconds: Int64?) async throws {
        let fixture = try DeciderFixture(settings: try .longLease())
        let engine = fixture.engine
        let lease = try await engine.mustAcquire("web/main")
        _ = try await engine.enqueueDelivery(deciderDelivery("k1", to: "alice"))
        let claim = try await engine.mustClaimDelivery(channel: "web", accountID: "main", leaseToken: lease)
        #expect(try await engine.attemptDelivery("d-k1", token: claim.token, leaseToken: lease) == .accepted)
        let failedAt = fixture.now
        let retryAfter = retryAfterSeconds.map { failedAt.advanced(by: .seconds($0)) }

        let result = try await engine.deliveryFailed(
            "d-k1", token: claim.token, permanent: false, retryAfter: retryAfter, errorCode: "429",
            message: "Too Many Requests")

        #expect(result == .accepted)
        let state = try #require(try engine.delivery("d-k1"))
        #expect(state.status == .pending)
        #expect(state.lastError?.contains("429") == true)
        let backoff = state.notBefore.duration(since: failedAt)
        if let retryAfter, retryAfter > failedAt.advanced(by: Duration.seconds(1).withFullJitter) {
            #expect(state.notBefore == retryAfter)
        } else {
            #expect(backoff >= .seconds(1) && backoff <= Duration.seconds(1).withFullJitter)
        }
        if let retryAfter { #expect(state.notBefore >= retryAfter) }
        // Not claimable before notBefore (and told when), claimable at it.
        fixture.advance(to: state.notBefore.advanced(by: .microseconds(-1)))
        #expect(
            try await engine.claimDelivery(channel: "web", accountID: "main", leaseToken: lease)
                == .empty(retryAt: state.notBefore))
        fixture.clock.advance(.microseconds(1))
        let again = try await engine.mustClaimDelivery(channel: "web", accountID: "main", leaseToken: lease)
        #expect(again.attempt == 2 && again.token > claim.token)
        await fixture.close()
    }

    @Test func permanentFailureFailsTheDeliveryForGood() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        let lease = try await engine.mustAcquire("web/main")
        _ = try await engine.enqueueDelivery(deciderDelivery("k1", to: "alice"))
        let claim = try await engine.mustClaimDelivery(channel: "web", accountID: "main", leaseToken: lease)
        _ = try await engine.attemptDelivery("d-k1", token: claim.token, leaseToken: lease)

        let result = try await engine.deliveryFailed(
            "d-k1", token: claim.token, permanent: true, errorCode: "131047", message: "re-engagement required")

        #expect(result == .accepted)
        #expect(try engine.delivery("d-k1")?.status == .failed)
        #expect(try engine.deliveries(.failed).map(\.deliveryID) == ["d-k1"])
        #expect(try engine.recorded(DeliveryFailed.self).first?.permanent == true)
        fixture.clock.advance(.seconds(40))
        #expect(
            try await engine.claimDelivery(channel: "web", accountID: "main", leaseToken: lease)
                == .empty(retryAt: nil))
        await fixture.close()
    }

    @Test func deliveryFailsForGoodAfterFiveAttempts() async throws {
        let fixture = try DeciderFixture(settings: try .longLease())
        let engine = fixture.engine
        let lease = try await engine.mustAcquire("web/main")
        _ = try await engine.enqueueDelivery(deciderDelivery("k1", to: "alice"))

        for attempt in 1...5 {
            if let notBefore = try engine.delivery("d-k1")?.notBefore, notBefore > fixture.now {
                fixture.advance(to: notBefore)
            }
            let claim = try await engine.mustClaimDelivery(channel: "web", accountID: "main", leaseToken: lease)
            #expect(claim.attempt == attempt)
            _ = try await engine.attemptDelivery("d-k1", token: claim.token, leaseToken: lease)
            _ = try await engine.deliveryFailed(
                "d-k1", token: claim.token, permanent: false, errorCode: "500", message: "server error")
            let status = try engine.delivery("d-k1")?.status
            #expect(status == (attempt < 5 ? .pending : .failed), "after attempt \(attempt)")
        }

        #expect(try engine.deliveries(.failed).map(\.deliveryID) == ["d-k1"])
        let failures = try engine.recorded(DeliveryFailed.self)
        #expect(failures.map(\.permanent) == [false, false, false, false, true])
        fixture.clock.advance(.seconds(600))
        #expect(
            try await engine.claimDelivery(channel: "web", accountID: "main", leaseToken: lease)
                == .empty(retryAt: nil))
        await fixture.close()
    }

    @Test func uncertainDeliveryIsListedAndNeverClaimedAgain() async throws {
        let fixture = try DeciderFixture(settings: try .longLease())
        let engine = fixture.engine
        let lease = try await engine.mustAcquire("web/main")
        _ = try await engine.enqueueDelivery(deciderDelivery("k1", to: "alice"))
        let claim = try await engine.mustClaimDelivery(channel: "web", accountID: "main", leaseToken: lease)
        _ = try await engine.attemptDelivery("d-k1", token: claim.token, leaseToken: lease)

        let result = try await engine.deliveryUncertain("d-k1", token: claim.token, reason: "timeout")

        #expect(result == .accepted)
        #expect(try engine.delivery("d-k1")?.status == .uncertain)
        #expect(try engine.deliveries(.uncertain).map(\.deliveryID) == ["d-k1"])
        fixture.clock.advance(.seconds(600))
        #expect(
            try await engine.claimDelivery(channel: "web", accountID: "main", leaseToken: lease)
                == .empty(retryAt: nil))
        #expect(try engine.recorded(DeliveryClaimed.eventType).count == 1)
        #expect(try engine.delivery("d-k1")?.status == .uncertain)
        await fixture.close()
    }

    @Test func claimExpiringBeforeAnyAttemptIsPendingAgainAtTheNextClaim() async throws {
        let fixture = try DeciderFixture(settings: try .longLease())
        let engine = fixture.engine
        let lease = try await engine.mustAcquire("web/main")
        _ = try await engine.enqueueDelivery(deciderDelivery("k1", to: "alice"))
        let claim = try await engine.mustClaimDelivery(channel: "web", accountID: "main", leaseToken: lease)

        fixture.advance(to: claim.visibleUntil)
        _ = try await engine.claimDelivery(channel: "web", accountID: "main", leaseToken: lease)
        #expect(try engine.delivery("d-k1")?.status == .claimed, "at exactly visibleUntil the claim holds")

        fixture.clock.advance(.microseconds(1))
        _ = try await engine.claimDelivery(channel: "web", accountID: "main", leaseToken: lease)

        let state = try #require(try engine.delivery("d-k1"))
        #expect(state.status == .pending)
        #expect(try engine.recorded(DeliveryUncertain.eventType).isEmpty)
        let failed = try #require(try engine.recorded(DeliveryFailed.self).first)
        #expect(failed.token == claim.token && failed.attempt == 1 && !failed.permanent)
        fixture.advance(to: state.notBefore)
        let again = try await engine.mustClaimDelivery(channel: "web", accountID: "main", leaseToken: lease)
        #expect(again.attempt == 2 && again.token > claim.token)
        await fixture.close()
    }

    @Test func claimExpiringAfterTheAttemptIsUncertainAndNotResent() async throws {
        let fixture = try DeciderFixture(settings: try .longLease())
        let engine = fixture.engine
        let lease = try await engine.mustAcquire("web/main")
        _ = try await engine.enqueueDelivery(deciderDelivery("k1", to: "alice"))
        let claim = try await engine.mustClaimDelivery(channel: "web", accountID: "main", leaseToken: lease)
        _ = try await engine.attemptDelivery("d-k1", token: claim.token, leaseToken: lease)
        fixture.advance(to: claim.visibleUntil.advanced(by: .microseconds(1)))

        let next = try await engine.claimDelivery(channel: "web", accountID: "main", leaseToken: lease)

        #expect(next == .empty(retryAt: nil))
        #expect(try engine.delivery("d-k1")?.status == .uncertain)
        #expect(try engine.deliveries(.uncertain).map(\.deliveryID) == ["d-k1"])
        let uncertain = try #require(try engine.recorded(DeliveryUncertain.self).first)
        #expect(uncertain.token == claim.token && uncertain.attempt == 1)
        fixture.clock.advance(.seconds(600))
        #expect(
            try await engine.claimDelivery(channel: "web", accountID: "main", leaseToken: lease)
                == .empty(retryAt: nil))
        #expect(try engine.recorded(DeliveryClaimed.eventType).count == 1)
        await fixture.close()
    }

    @Test func deliveriesToOneRecipientGoOutInOrderWhileOthersProceed() async throws {
        let fixture = try DeciderFixture(settings: try .longLease())
        let engine = fixture.engine
        let lease = try await engine.mustAcquire("web/main")
        _ = try await engine.enqueueDelivery(deciderDelivery("k1", to: "alice"))
        _ = try await engine.enqueueDelivery(deciderDelivery("k2", to: "alice"))
        _ = try await engine.enqueueDelivery(deciderDelivery("k3", to: "bob"))

        let first = try await engine.mustClaimDelivery(channel: "web", accountID: "main", leaseToken: lease)
        #expect(first.delivery.deliveryID == "d-k1")
        let second = try await engine.mustClaimDelivery(channel: "web", accountID: "main", leaseToken: lease)
        #expect(second.delivery.deliveryID == "d-k3", "alice's second message waits for her first")
        #expect(
            try await engine.claimDelivery(channel: "web", accountID: "main", leaseToken: lease)
                == .empty(retryAt: nil))

        // Still behind k1 while k1 waits out a retry.
        _ = try await engine.attemptDelivery("d-k1", token: first.token, leaseToken: lease)
        _ = try await engine.deliveryFailed(
            "d-k1", token: first.token, permanent: false, errorCode: "500", message: "x")
        let retryAt = try #require(try engine.delivery("d-k1")).notBefore
        #expect(
            try await engine.claimDelivery(channel: "web", accountID: "main", leaseToken: lease)
                == .empty(retryAt: retryAt))

        fixture.advance(to: retryAt)
        let retry = try await engine.mustClaimDelivery(channel: "web", accountID: "main", leaseToken: lease)
        #expect(retry.delivery.deliveryID == "d-k1")
        _ = try await engine.attemptDelivery("d-k1", token: retry.token, leaseToken: lease)
        _ = try await engine.deliverySent("d-k1", token: retry.token, providerMessageID: nil)
        let last = try await engine.mustClaimDelivery(channel: "web", accountID: "main", leaseToken: lease)
        #expect(last.delivery.deliveryID == "d-k2")
        await fixture.close()
    }

    @Test func whatsappSpacesSendsToOneUserBySixSeconds() async throws {
        let fixture = try DeciderFixture(settings: try .longLease())
        let engine = fixture.engine
        let lease = try await engine.mustAcquire("whatsapp/main")
        _ = try await engine.enqueueDelivery(deciderDelivery("k1", to: "+15550001", channel: "whatsapp"))
        _ = try await engine.enqueueDelivery(deciderDelivery("k2", to: "+15550001", channel: "whatsapp"))
        _ = try await engine.enqueueDelivery(deciderDelivery("k3", to: "+15550002", channel: "whatsapp"))

        let firstSendAt = fixture.now
        let first = try await claimAndSend(engine, channel: "whatsapp", lease: lease)
        #expect(first.delivery.deliveryID == "d-k1")
        fixture.clock.advance(.seconds(1))
        // The other user is not held back.
        let other = try await claimAndSend(engine, channel: "whatsapp", lease: lease)
        #expect(other.delivery.deliveryID == "d-k3")

        let blocked = try await engine.claimDelivery(channel: "whatsapp", accountID: "main", leaseToken: lease)
        let nextAllowed = firstSendAt.advanced(by: .seconds(6))
        #expect(blocked == .empty(retryAt: nextAllowed))
        fixture.advance(to: nextAllowed.advanced(by: .microseconds(-1)))
        let early = try await engine.claimDelivery(channel: "whatsapp", accountID: "main", leaseToken: lease)
        #expect(early.claimed == nil)
        fixture.clock.advance(.microseconds(1))
        let second = try await engine.mustClaimDelivery(channel: "whatsapp", accountID: "main", leaseToken: lease)
        #expect(second.delivery.deliveryID == "d-k2")
        await fixture.close()
    }

    @Test func telegramGroupGetsAtMostTwentyMessagesPerMinute() async throws {
        let fixture = try DeciderFixture(settings: try .longLease())
        let engine = fixture.engine
        let lease = try await engine.mustAcquire("telegram/main")
        let group = "-100123"
        for index in 0..<21 {
            _ = try await engine.enqueueDelivery(deciderDelivery("g\(index)", to: group, channel: "telegram"))
        }
        _ = try await engine.enqueueDelivery(deciderDelivery("private", to: "5551234", channel: "telegram"))

        let start = fixture.now
        for index in 0..<20 {
            let claim = try await claimAndSend(engine, channel: "telegram", lease: lease)
            #expect(claim.delivery.deliveryID == "d-g\(index)")
            fixture.clock.advance(.seconds(1))  // the per-chat interval
        }

        // 20 sends in the last 20 s: the 21st waits for the first to leave the 60 s window; a private chat
        // is not affected.
        let privateClaim = try await engine.mustClaimDelivery(channel: "telegram", accountID: "main", leaseToken: lease)
        #expect(privateClaim.delivery.deliveryID == "d-private")
        let windowEnd = start.advanced(by: .seconds(60))
        #expect(
            try await engine.claimDelivery(channel: "telegram", accountID: "main", leaseToken: lease)
                == .empty(retryAt: windowEnd))
        fixture.advance(to: windowEnd.advanced(by: .microseconds(-1)))
        let early = try await engine.claimDelivery(channel: "telegram", accountID: "main", leaseToken: lease)
        #expect(early.claimed == nil)
        fixture.clock.advance(.microseconds(1))
        let last = try await engine.mustClaimDelivery(channel: "telegram", accountID: "main", leaseToken: lease)
        #expect(last.delivery.deliveryID == "d-g20")
        await fixture.close()
    }

    @Test func accountWideLimitBlocksAThirdSendWithinTheWindow() async throws {
        var settings = try EngineSettings.longLease()
        settings.deliveries.rateLimits["whatsapp"] = RateLimits(
            perRecipientInterval: .seconds(6), perAccount: (count: 2, window: .seconds(1)))
        let fixture = try DeciderFixture(settings: settings)
        let engine = fixture.engine
        let lease = try await engine.mustAcquire("whatsapp/main")
        for user in 1...3 {
            let delivery = deciderDelivery("k\(user)", to: "+1555000\(user)", channel: "whatsapp")
            _ = try await engine.enqueueDelivery(delivery)
        }

        let start = fixture.now
        _ = try await claimAndSend(engine, channel: "whatsapp", lease: lease)
        fixture.clock.advance(.milliseconds(100))
        _ = try await claimAndSend(engine, channel: "whatsapp", lease: lease)

        let windowEnd = start.advanced(by: .seconds(1))
        #expect(
            try await engine.claimDelivery(channel: "whatsapp", accountID: "main", leaseToken: lease)
                == .empty(retryAt: windowEnd))
        fixture.advance(to: windowEnd.advanced(by: .microseconds(-1)))
        let early = try await engine.claimDelivery(channel: "whatsapp", accountID: "main", leaseToken: lease)
        #expect(early.claimed == nil)
        fixture.clock.advance(.microseconds(1))
        let third = try await engine.mustClaimDelivery(channel: "whatsapp", accountID: "main", leaseToken: lease)
        #expect(third.delivery.deliveryID == "d-k3")
        await fixture.close()
    }

    @Test func defaultDeliverySettings() {
        let settings = DeliverySettings()
        #expect(settings.visibility == .seconds(120))
        #expect(settings.maxAttempts == 5)
        #expect(settings.uncertainPolicy == .hold)
        // The channels' limits are the agent's to give (Workers' `Channel`): none here.
        #expect(settings.rateLimits.isEmpty)
    }
}
