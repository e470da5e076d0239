// Acceptance tests of `replay audit duplicates`: only real safety problems are findings; retries after a
// definite failure and unresolved uncertain deliveries are in the summary.
import EventLog
import SwitchboardEvents
import Foundation
import Projections
import TestSupport
import Testing

@Suite(.timeLimit(.minutes(2)))
struct ReplayAuditTests {
    /// The summary object of an audit run with `--json`.
    static func summary(_ run: ReplayRun) throws -> [String: Any] {
        try #require(try run.object()["summary"] as? [String: Any], "\(run)")
    }

    /// The findings of an audit run with `--json`.
    static func findings(_ run: ReplayRun) throws -> [[String: Any]] {
        try #require(try run.object()["findings"] as? [[String: Any]], "\(run)")
    }

    /// A world whose lease lasts the whole test, so only what the test does is in the log.
    static func world(uncertainPolicy: UncertainPolicy = .hold) throws -> ReplayWorld {
        var settings = EngineSettings.defaults()
        settings.lease = try LeaseTiming(ttl: .seconds(3600), heartbeat: .seconds(60))
        settings.deliveries.uncertainPolicy = uncertainPolicy
        return try ReplayWorld(settings: settings)
    }

    @Test func rateLimitRetriesAreCountedAndAreNoFinding() async throws {
        let world = try Self.world()
        let worker = ReplayWorld.owner("wa-1")
        let lease = try await world.acquire(as: worker)
        let id = try await world.enqueueDelivery(key: "msg-429:0", to: "+15550429")
        // Two 429s with retryAfter, then the provider accepts: attempt → failed → attempt → failed → attempt → sent.
        for _ in 0..<2 {
            let claim = try await world.claimDelivery(as: worker, leaseToken: lease)
            #expect(
                try await world.engine.attemptDelivery(id, token: claim.token, leaseToken: lease, as: worker)
                    == .accepted)
            let failed = try await world.engine.deliveryFailed(
                id, token: claim.token, permanent: false, retryAfter: world.clock.now.advanced(by: .seconds(30)),
                errorCode: "429", message: "rate limited", as: worker)
            #expect(failed == .accepted)
            world.clock.advance(.seconds(31))
        }
        try await world.deliver(as: worker, leaseToken: lease)
        #expect(try world.seqs(of: DeliveryAttempted.eventType).count == 3)
        #expect(try world.seqs(of: DeliveryFailed.eventType).count == 2)
        await world.close()

        let text = try await world.replay("audit", "duplicates")
        #expect(text.status == 0, "\(text)")
        #expect(text.lines.last == "[OK] no duplicate or unsafe sends", "\(text)")
        #expect(
            text.lines.contains { $0.contains("3 provider calls, 1 sent, 2 retries after a definite failure") },
            "\(text)")

        let json = try await world.replay("audit", "duplicates", "--json")
        #expect(json.status == 0, "\(json)")
        #expect(try Self.findings(json).isEmpty, "\(json)")
        let summary = try Self.summary(json)
        #expect(summary["retriesAfterFailure"] as? Int == 2, "\(json)")
        #expect(summary["attempts"] as? Int == 3 && summary["sends"] as? Int == 1, "\(json)")
        #expect((summary["uncertain"] as? [Any])?.isEmpty == true, "\(json)")
    }

    @Test func aCallAfterAnUncertainOneIsAFindingWithItsEvidence() async throws {
        // The `retry` uncertain policy resends an uncertain delivery: exactly what the audit must show.
        let world = try Self.world(uncertainPolicy: .retry)
        let worker = ReplayWorld.owner("wa-1")
        let lease = try await world.acquire(as: worker)
        let id = try await world.enqueueDelivery(key: "msg-u:0", to: "+15550100")
        let first = try await world.claimDelivery(as: worker, leaseToken: lease)
        #expect(
            try await world.engine.attemptDelivery(id, token: first.token, leaseToken: lease, as: worker) == .accepted)
        #expect(
            try await world.engine.deliveryUncertain(id, token: first.token, reason: "timeout", as: worker) == .accepted
        )
        world.clock.advance(.seconds(60))  // past the retry backoff
        try await world.deliver(as: worker, leaseToken: lease)
        let enqueued = try world.onlySeq(of: DeliveryEnqueued.eventType)
        let attempts = try world.seqs(of: DeliveryAttempted.eventType)
        let uncertain = try world.onlySeq(of: DeliveryUncertain.eventType)
        try #require(attempts.count == 2, "\(attempts)")
        await world.close()

        let text = try await world.replay("audit", "duplicates")
        #expect(text.status == 1, "\(text)")
        let evidence = "attempt_after_uncertain\t\(id)\tseqs \(enqueued),\(attempts[0]),\(uncertain),\(attempts[1])\t"
        #expect(text.lines.first?.hasPrefix(evidence) == true, "\(text)")
        #expect(text.lines.last == "[FINDINGS] 1", "\(text)")

        let json = try await world.replay("audit", "duplicates", "--json")
        #expect(json.status == 1, "\(json)")
        let findings = try Self.findings(json)
        try #require(findings.count == 1, "\(json)")
        #expect(findings[0]["kind"] as? String == "attempt_after_uncertain")
        #expect(replayUInts(findings[0]["seqs"]) == [enqueued, attempts[0], uncertain, attempts[1]])
        // It was sent in the end: no longer an open uncertain item.
        #expect((try Self.summary(json)["uncertain"] as? [Any])?.isEmpty == true, "\(json)")
    }

    @Test func aSecondCallWhileTheFirstHasNoOutcomeIsAFinding() async throws {
        let world = try Self.world()
        let worker = ReplayWorld.owner("wa-1")
        let lease = try await world.acquire(as: worker)
        let id = try await world.enqueueDelivery(key: "msg-n:0", to: "+15550101")
        let claim = try await world.claimDelivery(as: worker, leaseToken: lease)
        #expect(
            try await world.engine.attemptDelivery(id, token: claim.token, leaseToken: lease, as: worker) == .accepted)
        // A buggy sender calls the provider again without recording the first call's outcome.
        let second = try await world.engine.log.append([
            PendingEvent(DeliveryAttempted(deliveryID: id, token: claim.token, leaseToken: lease, attempt: 1))
        ]).lowerBound
        let enqueued = try world.onlySeq(of: DeliveryEnqueued.eventType)
        let first = try #require(try world.seqs(of: DeliveryAttempted.eventType).first)
        await world.close()

        let json = try await world.replay("audit", "duplicates", "--json")
        #expect(json.status == 1, "\(json)")
        let findings = try Self.findings(json)
        try #require(findings.count == 1, "\(json)")
        #expect(findings[0]["kind"] as? String == "attempt_after_uncertain")
        #expect(findings[0]["subject"] as? String == id)
        #expect(replayUInts(findings[0]["seqs"]) == [enqueued, first, second])
        // The second call has no outcome either.
        let open = try #require(try Self.summary(json)["withoutOutcome"] as? [[String: Any]])
        #expect(open.map { $0["deliveryID"] as? String } == [id], "\(json)")
    }

    @Test func anUnresolvedUncertainDeliveryIsInTheSummaryNotAFinding() async throws {
        let world = try Self.world()
        let worker = ReplayWorld.owner("wa-1")
        let lease = try await world.acquire(as: worker)
        let id = try await world.enqueueDelivery(key: "msg-h:0", to: "+15550102")
        let claim = try await world.claimDelivery(as: worker, leaseToken: lease)
        #expect(
            try await world.engine.attemptDelivery(id, token: claim.token, leaseToken: lease, as: worker) == .accepted)
        #expect(
            try await world.engine.deliveryUncertain(id, token: claim.token, reason: "timeout", as: worker) == .accepted
        )
        let enqueued = try world.onlySeq(of: DeliveryEnqueued.eventType)
        let attempted = try world.onlySeq(of: DeliveryAttempted.eventType)
        let uncertain = try world.onlySeq(of: DeliveryUncertain.eventType)
        await world.close()

        let text = try await world.replay("audit", "duplicates")
        #expect(text.status == 0, "\(text)")
        #expect(
            text.lines.contains(
                "uncertain, for an operator to decide: 1: \(id) (seqs \(enqueued),\(attempted),\(uncertain))"),
            "\(text)")
        #expect(text.lines.last == "[OK] no duplicate or unsafe sends", "\(text)")
        let json = try await world.replay("audit", "duplicates", "--json")
        let items = try #require(try Self.summary(json)["uncertain"] as? [[String: Any]], "\(json)")
        #expect(items.count == 1 && items.first?["deliveryID"] as? String == id, "\(json)")
        #expect(replayUInts(items.first?["seqs"]) == [enqueued, attempted, uncertain])
    }

    @Test func anEmptyLogIsCleanAndItsJSONIsOneObject() async throws {
        let world = try ReplayWorld()
        await world.close()

        let json = try await world.replay("audit", "duplicates", "--json")
        #expect(json.status == 0, "\(json)")
        #expect(try Self.findings(json).isEmpty)
        #expect(try Self.summary(json)["lastSeq"] as? Int == 0, "\(json)")
    }

    @Test func aNoLogDirectoryIsOneLineNamingItForEveryCommand() async throws {
        let directory = TemporaryDirectory()
        let missing = directory.sub("nothing-here")
        let commands: [[String]] = [
            ["audit", "duplicates"], ["state"], ["jobs", "list", "--json"], ["snapshots", "list"], ["tail"],
            ["verify"],
        ]
        for command in commands {
            let run = try await ReplayWorld.replayErrors(command + ["--data-dir", missing])
            #expect(run.status == 1, "\(command): \(run)")
            #expect(
                run.lines == [
                    "replay: no event log in \(missing) — start the agent (scripts/run.sh) or pass --data-dir"
                ], "\(command): \(run)")
            #expect(!FileManager.default.fileExists(atPath: missing), "\(command) created \(missing)")
        }
    }
}
