// Acceptance tests of `replay` against incident logs: each log is built with the engine (and, for what the
// deciders would refuse, with raw appends), closed, then read by the `replay` executable.
import EventLog
import SwitchboardEvents
import Foundation
import Projections
import TestSupport
import Testing

@Suite(.timeLimit(.minutes(2)))
struct ReplayIncidentTests {
    // MARK: Duplicate send

    @Test func auditReportsASecondSendOfOneDeliveryWithItsEvidenceSeqs() async throws {
        let world = try ReplayWorld()
        let worker = ReplayWorld.owner("wa-1")
        let lease = try await world.acquire(as: worker)
        let id = try await world.enqueueDelivery(key: "msg-1:0", to: "+15550001")
        let claim = try await world.deliver(as: worker, leaseToken: lease)
        // A second provider acceptance the deciders would never record.
        let second = try await world.engine.log.append([
            PendingEvent(
                DeliverySent(
                    deliveryID: id, token: claim.token, leaseToken: lease, attempt: 1,
                    providerMessageID: "wamid.again"))
        ]).lowerBound
        let enqueued = try world.onlySeq(of: DeliveryEnqueued.eventType)
        let sends = try world.seqs(of: DeliverySent.eventType)
        try #require(sends.count == 2 && sends.last == second, "\(sends)")
        await world.close()

        let text = try await world.replay("audit", "duplicates")
        #expect(text.status == 1, "\(text)")
        let evidence = "multiple_sends\t\(id)\tseqs \(enqueued),\(sends[0]),\(second)\t"
        #expect(text.lines.filter { $0.hasPrefix(evidence) }.count == 1, "\(text)")
        #expect(text.lines.last == "[FINDINGS] 1", "\(text)")

        let json = try await world.replay("audit", "duplicates", "--json")
        #expect(json.status == 1, "\(json)")
        let findings = try ReplayAuditTests.findings(json)
        try #require(findings.count == 1, "\(json)")
        #expect(findings[0]["kind"] as? String == "multiple_sends")
        #expect(findings[0]["subject"] as? String == id)
        #expect(replayUInts(findings[0]["seqs"]) == [enqueued, sends[0], second])
        #expect((findings[0]["message"] as? String)?.contains("2 times") == true, "\(json)")

        // Up to the first send the log was clean.
        let before = try await world.replay("audit", "duplicates", "--at", "\(sends[0])")
        #expect(before.status == 0, "\(before)")
        #expect(before.lines.last == "[OK] no duplicate or unsafe sends", "\(before)")
    }

    // MARK: Stale lease token

    /// Worker A claims a delivery, loses the account lease to B (A's lease expired), then tries to attempt the
    /// send with its old lease token: the decider rejects it.
    struct StaleAttempt {
        let world: ReplayWorld
        let a = ReplayWorld.owner("wa-a")
        let b = ReplayWorld.owner("wa-b")
        let leaseA: UInt64
        let leaseB: UInt64
        let deliveryID: String
        let claim: DeliveryClaim

        init() async throws {
            world = try ReplayWorld()
            leaseA = try await world.acquire(as: a)
            deliveryID = try await world.enqueueDelivery(key: "msg-7:0", to: "+15550007")
            claim = try await world.claimDelivery(as: a, leaseToken: leaseA)
            world.clock.advance(.seconds(46))  // past the 45 s TTL, within the 120 s claim
            leaseB = try await world.acquire(as: b)
            let attempt = try await world.engine.attemptDelivery(
                deliveryID, token: claim.token, leaseToken: leaseA, as: a)
            #expect(attempt == .rejected(reason: .staleLease))
        }
    }

    @Test func aRejectedStaleTokenAttemptIsNoUnsafeSendButAnOutboundLoopAlert() async throws {
        let incident = try await StaleAttempt()
        let world = incident.world
        #expect(try world.seqs(of: DeliveryAttempted.eventType).isEmpty)
        await world.close()

        let audit = try await world.replay("audit", "duplicates")
        #expect(audit.status == 0, "\(audit)")
        #expect(audit.lines.last == "[OK] no duplicate or unsafe sends", "\(audit)")

        let alerts = try await world.replay("alerts")
        #expect(alerts.status == 2, "\(alerts)")
        #expect(alerts.lines.contains("[ALERT] outbound loop errors: 1 delivery command(s) rejected"), "\(alerts)")
        #expect(alerts.lines.contains("[ALERT] lease heartbeat lost: 1 lease(s) expired without release"))
        #expect(alerts.lines.contains { $0.hasPrefix("[OK] send failures") }, "\(alerts)")
    }

    @Test func theTimelineOfTheDeliveryShowsTheRejectionWithTheNewHolder() async throws {
        let incident = try await StaleAttempt()
        let world = incident.world
        let rejected = try world.onlySeq(of: CommandRejected.eventType)
        await world.close()

        let timeline = try await world.replay("timeline", "--delivery", incident.deliveryID)
        #expect(timeline.status == 0, "\(timeline)")
        // B's tenure settled A's unattempted claim as it began (`delivery.failed`, `tenure_ended`), before A tried.
        let expected = [
            DeliveryEnqueued.eventType, DeliveryClaimed.eventType, DeliveryFailed.eventType, CommandRejected.eventType,
        ]
        #expect(timeline.types == expected, "\(timeline)")
        #expect(timeline.lines.contains { $0.contains(DeliveryFailed.eventType) && $0.contains("tenure_ended") })
        let holderA = "holders=\(ReplayWorld.resource)=\(incident.a)@\(incident.leaseA)"
        let holderB = "holders=\(ReplayWorld.resource)=\(incident.b)@\(incident.leaseB)"
        #expect(timeline.lines.dropFirst().first?.contains(holderA) == true, "\(timeline)")
        let rejection = try #require(timeline.lines.last)
        #expect(rejection.hasPrefix("\(rejected)\t"), "\(rejection)")
        #expect(rejection.contains("\t\(holderB)\t"), "\(rejection)")
        #expect(rejection.contains("\"reason\":\"stale_lease\""), "\(rejection)")

        let json = try await world.replay("timeline", "--delivery", incident.deliveryID, "--json")
        let objects = try json.objects()
        let last = try #require(objects.last)
        #expect(replayUInt(last["seq"]) == rejected)
        #expect(last["leaseHolders"] as? String == "\(ReplayWorld.resource)=\(incident.b)@\(incident.leaseB)")
        let payload = last["payload"] as? [String: Any]
        #expect(payload?["command"] as? String == "delivery.attempt")
        #expect(payload?["workerID"] as? String == "wa-a")
    }

    @Test func aStaleTokenAttemptWrittenPastTheDecidersIsAnUnsafeSend() async throws {
        let incident = try await StaleAttempt()
        let world = incident.world
        let raw = try await world.engine.log.append([
            PendingEvent(
                DeliveryAttempted(
                    deliveryID: incident.deliveryID, token: incident.claim.token, leaseToken: incident.leaseA,
                    attempt: 1))
        ]).lowerBound
        let claimed = try world.onlySeq(of: DeliveryClaimed.eventType)
        await world.close()

        let audit = try await world.replay("audit", "duplicates", "--json")
        #expect(audit.status == 1, "\(audit)")
        let unsafe = try ReplayAuditTests.findings(audit).filter {
            ["stale_token_send", "send_after_lease_expiry"].contains($0["kind"] as? String)
        }
        try #require(unsafe.count == 1, "\(audit)")
        #expect(unsafe[0]["kind"] as? String == "stale_token_send")
        let seqs = replayUInts(unsafe[0]["seqs"])
        #expect(seqs.last == raw && seqs.contains(claimed) && seqs.contains(incident.leaseB), "\(seqs)")
    }

    @Test func anAttemptAfterTheLeaseExpiredUnclaimedIsASendAfterLeaseExpiry() async throws {
        let world = try ReplayWorld()
        let worker = ReplayWorld.owner("wa-1")
        let lease = try await world.acquire(as: worker)
        let id = try await world.enqueueDelivery(key: "msg-8:0", to: "+15550008")
        let claim = try await world.claimDelivery(as: worker, leaseToken: lease)
        world.clock.advance(.seconds(46))  // the lease ran out; nobody took it, nobody recorded the expiry
        let raw = try await world.engine.log.append([
            PendingEvent(DeliveryAttempted(deliveryID: id, token: claim.token, leaseToken: lease, attempt: 1))
        ]).lowerBound
        let claimed = try world.onlySeq(of: DeliveryClaimed.eventType)
        await world.close()

        let audit = try await world.replay("audit", "duplicates")
        #expect(audit.status == 1, "\(audit)")
        let evidence = "send_after_lease_expiry\t\(id)\tseqs \(lease),\(claimed),\(raw)\t"
        #expect(audit.lines.contains { $0.hasPrefix(evidence) }, "\(audit)")
    }

    /// `AuditFinding.subject` is documented as "the delivery, job, message or lease concerned".
    @Test func anUnsafeSendFindingNamesTheDeliveryAsItsSubject() async throws {
        let incident = try await StaleAttempt()
        let world = incident.world
        try await world.engine.log.append(
            DeliveryAttempted(
                deliveryID: incident.deliveryID, token: incident.claim.token, leaseToken: incident.leaseA, attempt: 1))
        await world.close()

        let audit = try await world.replay("audit", "duplicates", "--json")
        let finding = try #require(
            try ReplayAuditTests.findings(audit).first { $0["kind"] as? String == "stale_token_send" }, "\(audit)")
        #expect((finding["message"] as? String)?.contains(incident.deliveryID) == true, "\(audit)")
        #expect(finding["subject"] as? String == incident.deliveryID, "\(audit)")
    }

    // MARK: Crash mid-send

    @Test func aSendWithoutOutcomeBecomesUncertainAndIsNotAttemptedAgain() async throws {
        var settings = EngineSettings.defaults()
        settings.lease = try LeaseTiming(ttl: .seconds(3600), heartbeat: .seconds(60))  // keep the lease
        let world = try ReplayWorld(settings: settings)
        let worker = ReplayWorld.owner("wa-1")
        let lease = try await world.acquire(as: worker)
        let id = try await world.enqueueDelivery(key: "msg-3:0", to: "+15550003")
        let claim = try await world.claimDelivery(as: worker, leaseToken: lease)
        let attempt = try await world.engine.attemptDelivery(id, token: claim.token, leaseToken: lease, as: worker)
        #expect(attempt == .accepted)
        // The process dies mid-send: no outcome. The next claims run after the 120 s visibility.
        for _ in 0..<2 {
            world.clock.advance(.seconds(121))
            let next = try await world.engine.claimDelivery(
                channel: ReplayWorld.channel, accountID: ReplayWorld.account, leaseToken: lease, as: worker)
            guard case .empty = next else {
                Issue.record("expected nothing claimable, got \(next)")
                return
            }
        }
        let enqueued = try world.onlySeq(of: DeliveryEnqueued.eventType)
        let attempted = try world.onlySeq(of: DeliveryAttempted.eventType)
        let uncertain = try world.onlySeq(of: DeliveryUncertain.eventType)
        #expect(try world.seqs(of: DeliveryClaimed.eventType).count == 1)
        await world.close()

        let listed = try await world.replay("deliveries", "list", "--status", "uncertain")
        #expect(listed.status == 0, "\(listed)")
        try #require(listed.lines.count == 1, "\(listed)")
        #expect(listed.lines[0].hasPrefix("\(id)\tuncertain\t\(ReplayWorld.resource)\tto=+15550003\tattempt=1\t"))
        #expect(listed.lines[0].hasSuffix("error=claim expired after the send was attempted"), "\(listed)")
        for status in ["pending", "claimed", "attempting"] {
            let other = try await world.replay("deliveries", "list", "--status", status)
            #expect(other.status == 0 && other.lines.isEmpty, "\(status): \(other)")
        }
        let json = try await world.replay("deliveries", "list", "--status", "uncertain", "--json")
        let object = try #require(try json.objects().first)
        #expect(object["deliveryID"] as? String == id)
        #expect(object["status"] as? String == "uncertain")
        #expect(replayUInt(object["attempt"]) == 1)

        // Not a duplicate send, but an item for an operator: in the summary, with its evidence.
        let audit = try await world.replay("audit", "duplicates")
        #expect(audit.status == 0, "\(audit)")
        let evidence = "uncertain, for an operator to decide: 1: \(id) (seqs \(enqueued),\(attempted),\(uncertain))"
        #expect(audit.lines.contains(evidence), "\(audit)")
        #expect(audit.lines.last == "[OK] no duplicate or unsafe sends", "\(audit)")

        let alerts = try await world.replay("alerts")
        #expect(alerts.status == 2, "\(alerts)")
        #expect(alerts.lines.contains("[ALERT] uncertain deliveries: 1 delivery(ies) uncertain"), "\(alerts)")
    }

    // MARK: Heartbeat loss

    @Test func aLostHeartbeatAlertsAndTheLeaseMovesToTheNextOwner() async throws {
        let world = try ReplayWorld()
        let a = ReplayWorld.owner("wa-a")
        let b = ReplayWorld.owner("wa-b")
        let leaseA = try await world.acquire(as: a)
        world.clock.advance(.seconds(46))  // no renewal within the 45 s TTL
        let leaseB = try await world.acquire(as: b)
        let expired = try world.onlySeq(of: LeaseExpired.eventType)
        #expect(leaseA < expired && expired < leaseB)
        await world.close()

        let alerts = try await world.replay("alerts")
        #expect(alerts.status == 2, "\(alerts)")
        #expect(alerts.lines.contains("[ALERT] lease heartbeat lost: 1 lease(s) expired without release"), "\(alerts)")
        #expect(alerts.lines.filter { $0.hasPrefix("[ALERT]") }.count == 1, "\(alerts)")

        let now = try await world.replay("lease", "get", "--account", "default")
        #expect(now.status == 0)
        #expect(now.lines.count == 1)
        #expect(
            now.lines.first?.hasPrefix("\(ReplayWorld.resource)\theld\towner=\(b)\ttoken=\(leaseB)\t") == true,
            "\(now)")

        let before = try await world.replay("lease", "get", "--account", "default", "--at", "\(expired - 1)")
        #expect(before.status == 0)
        #expect(
            before.lines.first?.hasPrefix("\(ReplayWorld.resource)\theld\towner=\(a)\ttoken=\(leaseA)\t") == true,
            "\(before)")

        let json = try await world.replay("lease", "get", "--account", "default", "--json")
        let lease = try #require(try json.objects().first)
        #expect(lease["ownerWorkerID"] as? String == "wa-b")
        #expect(lease["ownerInstance"] as? String == b.instance)
        #expect(replayUInt(lease["token"]) == leaseB)
        #expect(lease["live"] as? Bool == true)

        let ownedByA = try await world.replay("lease", "owned", "--owner", "wa-a")
        #expect(ownedByA.status == 0)
        #expect(ownedByA.lines.isEmpty, "\(ownedByA)")
        let ownedByB = try await world.replay("lease", "owned", "--owner", "wa-b")
        #expect(ownedByB.lines.count == 1 && ownedByB.lines.first?.contains("owner=\(b)") == true, "\(ownedByB)")

        let accounts = try await world.replay("accounts", "list")
        #expect(accounts.lines == ["\(ReplayWorld.resource)\tholder=\(b)"], "\(accounts)")
    }

    @Test func theAccountTimelineShowsOneHolderAtEveryMoment() async throws {
        let world = try ReplayWorld()
        let a = ReplayWorld.owner("wa-a")
        let b = ReplayWorld.owner("wa-b")
        let leaseA = try await world.acquire(as: a)
        world.clock.advance(.seconds(30))
        _ = try await world.engine.acquireLease(ReplayWorld.resource, as: b)  // denied: A holds it
        world.clock.advance(.seconds(16))
        let leaseB = try await world.acquire(as: b)
        await world.close()

        let timeline = try await world.replay("timeline", "--account", "default")
        #expect(timeline.status == 0, "\(timeline)")
        let rows = timeline.columns
        #expect(
            timeline.types == [
                LeaseAcquired.eventType, LeaseDenied.eventType, LeaseExpired.eventType, LeaseAcquired.eventType,
            ], "\(timeline)")
        let holders = rows.map { $0.first { $0.hasPrefix("holders=") } ?? "" }
        let resource = ReplayWorld.resource
        #expect(
            holders == [
                "holders=\(resource)=\(a)@\(leaseA)", "holders=\(resource)=\(a)@\(leaseA)", "holders=-",
                "holders=\(resource)=\(b)@\(leaseB)",
            ], "\(timeline)")
    }

    // MARK: Reconnect burst

    /// 12 disconnects within 5 minutes (one every 25 s), 11 reconnects.
    static func reconnectBurst() async throws -> ReplayWorld {
        let world = try ReplayWorld()
        let instance = UUID().uuidString
        for index in 0..<12 {
            try await world.engine.log.append(
                ChannelDisconnected(
                    channel: "whatsapp", accountID: "default", workerID: "wa-1", ownerInstance: instance,
                    reason: "closed", code: 1006, willReconnect: true))
            world.clock.advance(.seconds(10))
            if index < 11 {
                try await world.engine.log.append(
                    ChannelConnected(
                        channel: "whatsapp", accountID: "default", workerID: "wa-1", ownerInstance: instance))
            }
            world.clock.advance(.seconds(15))
        }
        await world.close()
        return world
    }

    @Test func aReconnectBurstAlertsAboveTheThresholdOnly() async throws {
        let world = try await Self.reconnectBurst()

        let alerts = try await world.replay("alerts", "--burst-window", "10m", "--lookback", "24h", "--threshold", "10")
        #expect(alerts.status == 2, "\(alerts)")
        #expect(
            alerts.lines.contains(
                "[ALERT] channel disconnect burst: 12 disconnects in the worst 10m window (threshold 10)"), "\(alerts)")
        #expect(alerts.lines.contains("[ALERT] disconnect/reconnect mismatch: 12 disconnects, 11 reconnects"))
        #expect(alerts.lines.count == AlertCheck.Check.allCases.count, "\(alerts)")

        let higher = try await world.replay("alerts", "--burst-window", "10m", "--threshold", "20")
        #expect(higher.status == 2, "\(higher)")  // the mismatch still alerts
        #expect(
            higher.lines.contains(
                "[OK] channel disconnect burst: 12 disconnects in the worst 10m window (threshold 20)"), "\(higher)")
        #expect(higher.lines.contains("[ALERT] disconnect/reconnect mismatch: 12 disconnects, 11 reconnects"))

        let narrow = try await world.replay("alerts", "--burst-window", "1m", "--threshold", "10")
        #expect(
            narrow.lines.contains(
                "[OK] channel disconnect burst: 3 disconnects in the worst 1m window (threshold 10)"), "\(narrow)")
    }

    @Test func burstAlertsAsJSONAndAsOfASeq() async throws {
        let world = try await Self.reconnectBurst()

        let json = try await world.replay("alerts", "--threshold", "10", "--json")
        #expect(json.status == 2, "\(json)")
        let checks = try json.objects()
        #expect(checks.count == AlertCheck.Check.allCases.count)
        let burst = try #require(checks.first { $0["check"] as? String == "channel disconnect burst" })
        #expect(burst["alert"] as? Bool == true)
        #expect(burst["detail"] as? String == "12 disconnects in the worst 10m window (threshold 10)")
        let quiet = try #require(checks.first { $0["check"] as? String == "dead jobs" })
        #expect(quiet["alert"] as? Bool == false)

        // As of seq 9 (5 disconnects, 4 connects so far).
        let early = try await world.replay("alerts", "--threshold", "10", "--at", "9")
        let burstSoFar = "[OK] channel disconnect burst: 5 disconnects in the worst 10m window (threshold 10)"
        #expect(early.lines.contains(burstSoFar), "\(early)")
        #expect(early.lines.contains("[ALERT] disconnect/reconnect mismatch: 5 disconnects, 4 reconnects"), "\(early)")
    }

    // MARK: Dead job

    @Test func aJobFailingThreeTimesIsListedDeadAndAlerts() async throws {
        let world = try ReplayWorld()
        let conversation = conversationID(channel: "whatsapp", accountID: "default", contactID: "+15550006")
        let jobID = try await world.engine.enqueueJob(NewJob(idempotencyKey: "inbound:6", conversationID: conversation))
            .jobID
        var outcomes: [JobFailureOutcome] = []
        for _ in 0..<3 {
            let claim = try await world.claimJob()
            #expect(claim.job.jobID == jobID)
            outcomes.append(
                try await world.engine.failJob(
                    jobID, token: claim.token, reason: "timeout", message: "model timed out", retryable: true))
            world.clock.advance(.seconds(5))  // past the retry backoff (at most 2.4 s)
        }
        #expect(outcomes.last == .dead, "\(outcomes)")
        await world.close()

        let dead = try await world.replay("jobs", "list", "--status", "dead")
        #expect(dead.status == 0, "\(dead)")
        try #require(dead.lines.count == 1, "\(dead)")
        #expect(dead.lines[0].hasPrefix("\(jobID)\tdead\tconv=\(conversation)\tattempt=3/3\t"), "\(dead)")
        #expect(dead.lines[0].hasSuffix("last=timeout"), "\(dead)")
        let pending = try await world.replay("jobs", "list", "--status", "pending")
        #expect(pending.lines.isEmpty, "\(pending)")

        let json = try await world.replay("jobs", "list", "--status", "dead", "--json")
        let job = try #require(try json.objects().first)
        #expect(job["jobID"] as? String == jobID)
        #expect(job["lastMessage"] as? String == "model timed out")

        let alerts = try await world.replay("alerts")
        #expect(alerts.status == 2, "\(alerts)")
        #expect(alerts.lines.contains("[ALERT] dead jobs: 1 job(s) dead"), "\(alerts)")

        let timeline = try await world.replay("timeline", "--job", jobID)
        #expect(timeline.lines.filter { $0.contains("\tjob.failed\t") }.count == 3, "\(timeline)")
        #expect(timeline.lines.last?.contains("\tjob.dead\t") == true, "\(timeline)")
    }

    // MARK: Healthy log

    @Test func aHealthyLogRaisesNoAlertAndNoAuditFinding() async throws {
        let world = try ReplayWorld()
        let worker = ReplayWorld.owner("wa-1")
        let instance = worker.instance
        let lease = try await world.acquire(as: worker)
        try await world.engine.log.append(
            ChannelConnected(channel: "whatsapp", accountID: "default", workerID: "wa-1", ownerInstance: instance))
        for index in 0..<3 {
            let ingest = try await world.engine.ingest(
                InboundMessage(
                    channel: "whatsapp", accountID: "default", externalID: "wamid.in.\(index)", contactID: "+15550010",
                    text: "question \(index)"))
            guard case .accepted(_, let conversation, let jobID?, _) = ingest else {
                Issue.record("expected an accepted message with a job, got \(ingest)")
                return
            }
            let claim = try await world.claimJob()
            #expect(claim.job.jobID == jobID)
            _ = try await world.enqueueDelivery(key: "reply-\(index):0", to: "+15550010", text: "answer \(index)")
            #expect(try await world.engine.completeJob(jobID, token: claim.token, result: "ok") == .accepted)
            #expect(claim.job.conversationID == conversation)
            try await world.deliver(as: worker, leaseToken: lease)
            world.clock.advance(.seconds(10))  // past the per-recipient interval and within the lease...
            #expect(try await world.engine.renewLease(ReplayWorld.resource, token: lease, as: worker).grant != nil)
        }
        try await world.engine.log.append(
            ChannelDisconnected(
                channel: "whatsapp", accountID: "default", workerID: "wa-1", ownerInstance: instance,
                reason: "shutdown", willReconnect: false))
        #expect(try await world.engine.releaseLease(ReplayWorld.resource, token: lease, as: worker).grant != nil)
        await world.close()

        let alerts = try await world.replay("alerts")
        #expect(alerts.status == 0, "\(alerts)")
        #expect(alerts.lines.count == AlertCheck.Check.allCases.count, "\(alerts)")
        #expect(alerts.lines.allSatisfy { $0.hasPrefix("[OK] ") }, "\(alerts)")

        let audit = try await world.replay("audit", "duplicates")
        #expect(audit.status == 0, "\(audit)")
        #expect(audit.lines.last == "[OK] no duplicate or unsafe sends", "\(audit)")
        #expect(audit.lines.contains { $0.hasPrefix("summary: 3 deliveries, 3 provider calls, 3 sent, 0 retries") })

        let sent = try await world.replay("deliveries", "list", "--status", "sent")
        #expect(sent.lines.count == 3, "\(sent)")
        let completed = try await world.replay("jobs", "list", "--status", "completed")
        #expect(completed.lines.count == 3, "\(completed)")
    }
}
