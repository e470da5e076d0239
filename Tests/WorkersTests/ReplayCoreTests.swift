@testable import EventLog
import SwitchboardEvents
import Foundation
import Logging
import Projections
import TestSupport
import Testing

/// A settable wall clock, so incidents are built without sleeping.
private final class Clock: @unchecked Sendable {  // `lock` guards `current`.
    private let lock = NSLock()
    private var current: LogTimestamp
    init() { current = LogTimestamp.wallClock().advanced(by: .seconds(-3600)) }
    var now: LogTimestamp { lock.withLock { current } }
    func advance(_ d: Duration) { lock.withLock { current = current.advanced(by: d) } }
}

private func engine(_ dir: String, _ clock: Clock, worker: String = "wa-1") throws -> Switchboard {
    var configuration = EventLogConfiguration(directory: dir, writer: WriterIdentity(role: "test", workerID: worker))
    configuration.wallClock = { clock.now }
    var settings = EngineSettings.defaults()
    settings.deliveries.rateLimits = [:]
    return try Switchboard(
        configuration, settings: settings, logger: Logger(label: "t", factory: { _ in SwiftLogNoOpLogHandler() }))
}

private func replay(_ arguments: [String]) async throws -> (status: Int32, lines: [String]) {
    try await SpawnedProcess.run("replay", arguments)
}

private func jsonLines(_ lines: [String]) -> [[String: Any]] {
    lines.flatMap { line -> [[String: Any]] in
        let value = try? JSONSerialization.jsonObject(with: Data(line.utf8))
        return (value as? [[String: Any]]) ?? (value as? [String: Any]).map { [$0] } ?? []
    }
}

/// One delivery enqueued and claimed under a fresh lease; returns the claim.
private func claimedDelivery(_ e: Switchboard, key: String = "m1:0") async throws -> (DeliveryClaim, LeaseGrant) {
    let grant = try #require(try await e.acquireLease("whatsapp/default").grant)
    _ = try await e.enqueueDelivery(
        NewDelivery(
            idempotencyKey: key, channel: "whatsapp", accountID: "default", recipient: "+1555",
            conversationID: "whatsapp:default:+1555", text: "hello"))
    guard
        case .claimed(let claim) = try await e.claimDelivery(
            channel: "whatsapp", accountID: "default", leaseToken: grant.token)
    else { throw CancellationError() }
    return (claim, grant)
}

@Suite("replay against known incidents", .timeLimit(.minutes(2)))
struct ReplayCoreTests {
    @Test func aDuplicateSendIsFoundWithItsEvidence() async throws {
        let dir = TemporaryDirectory()
        let clock = Clock()
        let e = try engine(dir.path, clock)
        let (claim, grant) = try await claimedDelivery(e)
        let id = claim.delivery.deliveryID
        #expect(try await e.attemptDelivery(id, token: claim.token, leaseToken: grant.token) == .accepted)
        #expect(try await e.deliverySent(id, token: claim.token, providerMessageID: "wamid.1") == .accepted)
        // A second send, written raw as a buggy sender would (the deciders never allow it).
        let second = try await e.log.append(
            DeliverySent(
                deliveryID: id, token: claim.token, leaseToken: grant.token, attempt: 1, providerMessageID: "wamid.2"))
        await e.close()
        let text = try await replay(["audit", "duplicates", "--data-dir", dir.path])
        #expect(text.status == 1)
        #expect(
            text.lines.contains { $0.hasPrefix("multiple_sends\t\(id)") && $0.contains("\(second)") }, "\(text.lines)")
        let json = try await replay(["audit", "duplicates", "--data-dir", dir.path, "--json"])
        let report = try #require(jsonLines(json.lines).first)
        let findings = try #require(report["findings"] as? [[String: Any]])
        let finding = try #require(findings.first { $0["kind"] as? String == "multiple_sends" })
        #expect((finding["seqs"] as? [UInt64])?.last == second)
        #expect(json.status == 1)
    }

    @Test func aStaleTokenAttemptIsRefusedShownInTheTimelineAndRaisesAnAlert() async throws {
        let dir = TemporaryDirectory()
        let clock = Clock()
        let a = try engine(dir.path, clock)
        let (claim, grant) = try await claimedDelivery(a)
        // A's lease runs out; B (same WORKER_ID, another process) takes the account over.
        clock.advance(.seconds(46))
        let b = Owner(workerID: "wa-1", instance: "second-process")
        let taken = try #require(try await a.acquireLease("whatsapp/default", as: b).grant)
        #expect(taken.token > grant.token)
        let refused = try await a.attemptDelivery(
            claim.delivery.deliveryID, token: claim.token, leaseToken: grant.token)
        #expect(refused == .rejected(reason: .staleLease))
        await a.close()
        let audit = try await replay(["audit", "duplicates", "--data-dir", dir.path])
        #expect(audit.status == 0, "\(audit.lines)")
        #expect(audit.lines.last?.hasPrefix("[OK]") == true)
        let alerts = try await replay(["alerts", "--data-dir", dir.path])
        #expect(alerts.status == 2)
        #expect(alerts.lines.contains { $0.hasPrefix("[ALERT] outbound loop errors") })
        #expect(alerts.lines.contains { $0.hasPrefix("[ALERT] lease heartbeat lost") })
        let timeline = try await replay(["timeline", "--data-dir", dir.path, "--delivery", claim.delivery.deliveryID])
        let rejected = try #require(timeline.lines.first { $0.contains("command.rejected") })
        #expect(rejected.contains("holders=whatsapp/default=wa-1#second-"), "\(rejected)")
        // The same stale attempt written raw (bypassing the decider) is what the audit exists to find.
        let raw = try engine(dir.path, clock)
        _ = try await raw.log.append(
            DeliveryAttempted(
                deliveryID: claim.delivery.deliveryID, token: claim.token, leaseToken: grant.token, attempt: 1))
        await raw.close()
        let found = try await replay(["audit", "duplicates", "--data-dir", dir.path])
        #expect(found.status == 1)
        #expect(found.lines.contains { $0.hasPrefix("stale_token_send") || $0.hasPrefix("send_after_lease_expiry") })
    }

    @Test func aCrashMidSendLeavesAnUncertainDeliveryThatIsNeverResent() async throws {
        let dir = TemporaryDirectory()
        let clock = Clock()
        let e = try engine(dir.path, clock)
        let (claim, grant) = try await claimedDelivery(e)
        #expect(
            try await e.attemptDelivery(claim.delivery.deliveryID, token: claim.token, leaseToken: grant.token)
                == .accepted)
        // The sender dies before recording the outcome; its claim (120 s) runs out.
        clock.advance(.seconds(121))
        let renewed = try #require(try await e.acquireLease("whatsapp/default").grant)
        #expect(
            try await e.claimDelivery(channel: "whatsapp", accountID: "default", leaseToken: renewed.token)
                == .empty(retryAt: nil))
        await e.close()
        let list = try await replay(["deliveries", "list", "--status", "uncertain", "--data-dir", dir.path])
        #expect(list.lines.count == 1)
        #expect(list.lines.first?.hasPrefix(claim.delivery.deliveryID) == true)
        let audit = try await replay(["audit", "duplicates", "--data-dir", dir.path])
        #expect(audit.status == 0, "\(audit.lines)")
        #expect(
            audit.lines.contains {
                $0.hasPrefix("uncertain, for an operator to decide: 1: \(claim.delivery.deliveryID) ")
            }, "\(audit.lines)")
        let export = try await replay(["export", "--data-dir", dir.path])
        #expect(jsonLines(export.lines).filter { $0["type"] as? String == "delivery.attempted" }.count == 1)
    }

    @Test func aHeartbeatLossShowsInAlertsAndInTheLeaseHistory() async throws {
        let dir = TemporaryDirectory()
        let clock = Clock()
        let e = try engine(dir.path, clock)
        let first = try #require(try await e.acquireLease("whatsapp/default").grant)
        let beforeExpiry = try e.log.lastSeq()
        clock.advance(.seconds(60))
        let other = Owner(workerID: "wa-2", instance: "B")
        #expect(try await e.acquireLease("whatsapp/default", as: other).grant != nil)
        await e.close()
        let now = try await replay(["lease", "get", "--account", "default", "--data-dir", dir.path])
        #expect(now.lines.first?.contains("owner=wa-2#b") == true, "\(now.lines)")
        let then = try await replay([
            "lease", "get", "--account", "default", "--data-dir", dir.path, "--at", "\(beforeExpiry)",
        ])
        #expect(then.lines.first?.contains("token=\(first.token)") == true, "\(then.lines)")
        let owned = try await replay(["lease", "owned", "--owner", "wa-1", "--data-dir", dir.path])
        #expect(owned.lines.isEmpty)
        let alerts = try await replay(["alerts", "--data-dir", dir.path, "--json"])
        #expect(alerts.status == 2)
        #expect(
            jsonLines(alerts.lines).contains {
                $0["check"] as? String == "lease heartbeat lost" && $0["alert"] as? Bool == true
            })
    }

    @Test func aReconnectBurstAndADeadJobRaiseAlertsAndAHealthyLogDoesNot() async throws {
        let dir = TemporaryDirectory()
        let clock = Clock()
        let e = try engine(dir.path, clock)
        // Healthy so far: one job through its whole cycle.
        _ = try await e.enqueueJob(NewJob(idempotencyKey: "ok", conversationID: "c0"))
        let ok = try #require(try await e.claimJob())
        #expect(try await e.completeJob(ok.job.jobID, token: ok.token) == .accepted)
        let healthy = try await replay(["alerts", "--data-dir", dir.sub(""), "--at", "\(try e.log.lastSeq())"])
        #expect(healthy.status == 0, "\(healthy.lines)")
        #expect(healthy.lines.allSatisfy { $0.hasPrefix("[OK]") })
        // 12 disconnects within 5 minutes, 11 reconnects.
        for index in 0..<12 {
            try await e.log.append(
                ChannelDisconnected(
                    channel: "whatsapp", accountID: "default", workerID: "wa-1",
                    ownerInstance: "A", reason: "socket closed", code: 1006, willReconnect: true))
            if index < 11 {
                try await e.log.append(
                    ChannelConnected(
                        channel: "whatsapp", accountID: "default", workerID: "wa-1",
                        ownerInstance: "A", leaseToken: nil, detail: nil))
            }
            clock.advance(.seconds(25))
        }
        // A job that fails three times.
        _ = try await e.enqueueJob(NewJob(idempotencyKey: "bad", conversationID: "c1"))
        for _ in 0..<3 {
            clock.advance(.seconds(60))
            let claim = try #require(try await e.claimJob())
            _ = try await e.failJob(
                claim.job.jobID, token: claim.token, reason: "server_error", message: "500", retryable: true)
        }
        await e.close()
        let alerts = try await replay(["alerts", "--burst-window", "10m", "--threshold", "10", "--data-dir", dir.path])
        #expect(alerts.status == 2)
        #expect(
            alerts.lines.contains { $0.hasPrefix("[ALERT] channel disconnect burst: 12 disconnects") },
            "\(alerts.lines)")
        #expect(alerts.lines.contains { $0.hasPrefix("[ALERT] disconnect/reconnect mismatch") })
        #expect(alerts.lines.contains { $0.hasPrefix("[ALERT] dead jobs: 1") })
        let higher = try await replay(["alerts", "--threshold", "20", "--data-dir", dir.path])
        #expect(higher.lines.contains { $0.hasPrefix("[OK] channel disconnect burst") })
        let dead = try await replay(["jobs", "list", "--status", "dead", "--data-dir", dir.path])
        #expect(dead.lines.count == 1)
        #expect(dead.lines.first?.contains("attempt=3/3") == true)
        let bad = try await replay(["jobs", "list", "--status", "bogus", "--data-dir", dir.path])
        #expect(bad.status != 0)
    }

    @Test func verifyCatchesATamperedProjectionAndStateAtShowsThePast() async throws {
        let dir = TemporaryDirectory()
        let clock = Clock()
        let e = try engine(dir.path, clock)
        _ = try await e.enqueueJob(NewJob(jobID: "job-1", idempotencyKey: "k", conversationID: "c"))
        let claim = try #require(try await e.claimJob())
        let whileRunning = try e.log.lastSeq()
        let runningTime = try #require(try e.log.record(at: whileRunning)).timestamp
        clock.advance(.seconds(1))
        #expect(try await e.completeJob(claim.job.jobID, token: claim.token) == .accepted)
        await e.close()
        let clean = try await replay(["verify", "--data-dir", dir.path])
        #expect(clean.status == 0)
        #expect(clean.lines.last?.contains("equals live") == true, "\(clean.lines)")
        let past = try await replay(["state", "--data-dir", dir.path, "--at", "\(whileRunning)", "--json"])
        let pastJobs = try #require(jsonLines(past.lines).first?["jobs"] as? [String: Int])
        #expect(pastJobs == ["running": 1])
        let byTime = try await replay(["state", "--data-dir", dir.path, "--at", runningTime.description, "--json"])
        #expect(jsonLines(byTime.lines).first?["jobs"] as? [String: Int] == ["running": 1])
        let present = try await replay(["state", "--data-dir", dir.path, "--json"])
        #expect(jsonLines(present.lines).first?["jobs"] as? [String: Int] == ["completed": 1])

        // Change projection state behind the projector's back.
        var configuration = EventLogConfiguration(
            directory: dir.path, writer: WriterIdentity(role: "test", workerID: "x"))
        configuration.projector = SwitchboardProjector()
        let log = try EventLog(configuration, logger: Logger(label: "t", factory: { _ in SwiftLogNoOpLogHandler() }))
        let dead = log.table(ProjectionTable.jobDead)
        _ = try await log.transact { context in
            try context.projectionWriter.put(dead, Array("job-1".utf8), [])
        }
        await log.close()
        let tampered = try await replay(["verify", "--data-dir", dir.path])
        #expect(tampered.status == 1)
        #expect(tampered.lines.contains { $0.contains("differs from live") }, "\(tampered.lines)")
    }

    @Test func staleProjectionsAreReportedByReplayAndRebuiltByTheNextWriter() async throws {
        let dir = TemporaryDirectory()
        // A log whose projections were never recorded in this build's format: written without the projector.
        let plain = try EventLog(
            EventLogConfiguration(directory: dir.path, writer: WriterIdentity(role: "test", workerID: "old")),
            logger: Logger(label: "t", factory: { _ in SwiftLogNoOpLogHandler() }))
        for id in ["job-a", "job-b"] {
            try await plain.append(
                JobEnqueued(jobID: id, idempotencyKey: id, conversationID: "c-\(id)", kind: "reply", maxAttempts: 3))
        }
        await plain.close()

        let (listStatus, listErrors) = try await SpawnedProcess(
            "replay", ["jobs", "list", "--data-dir", dir.path], readStandardError: true
        ).finish()
        #expect(listStatus == 1)
        #expect(listErrors.contains { $0.contains("start an agent of this build to rebuild them") }, "\(listErrors)")
        let stale = try await replay(["verify", "--data-dir", dir.path])
        #expect(stale.status == 1)
        #expect(
            stale.lines.contains { $0.contains("[FAIL] projections: projection tables are in format unrecorded") },
            "\(stale.lines)")
        // A rebuilt copy still answers.
        let copy = try await replay(["jobs", "list", "--data-dir", dir.path, "--at", "2"])
        #expect(copy.status == 0)
        #expect(copy.lines.filter { $0.hasPrefix("job-") }.count == 2, "\(copy.lines)")

        // The next process that opens the log to write rebuilds the tables in place.
        let e = try engine(dir.path, Clock())
        #expect(e.log.projections == .current)
        #expect(try StateReader(log: e.log).jobs().map(\.jobID) == ["job-a", "job-b"])
        await e.close()
        let verified = try await replay(["verify", "--data-dir", dir.path])
        #expect(verified.status == 0, "\(verified.lines)")
    }

    @Test func conversationsAreOnePerContactAndAMissingLogIsAnError() async throws {
        let dir = TemporaryDirectory()
        let clock = Clock()
        let e = try engine(dir.path, clock)
        for (contact, text) in [("+1", "hi from one"), ("+2", "hi from two"), ("+1", "again")] {
            var message = InboundMessage(
                channel: "whatsapp", accountID: "default", externalID: "wamid.\(text)",
                contactID: contact, text: text)
            message.providerTimestamp = nil
            _ = try await e.ingest(message)
        }
        await e.close()
        let all = try await replay(["conversations", "show", "--data-dir", dir.path])
        #expect(all.lines.count == 2)
        let one = try await replay(["conversations", "show", "--id", "whatsapp:default:+1", "--data-dir", dir.path])
        #expect(one.lines.map { $0.split(separator: "\t").last.map(String.init) } == ["hi from one", "again"])
        let export = try await replay(["export", "--from", "2", "--to", "3", "--data-dir", dir.path])
        #expect(jsonLines(export.lines).map { $0["seq"] as? Int } == [2, 3])
        let missing = try await replay(["state", "--data-dir", dir.sub("nope")])
        #expect(missing.status != 0)
        #expect(!FileManager.default.fileExists(atPath: dir.sub("nope")))
    }
}
