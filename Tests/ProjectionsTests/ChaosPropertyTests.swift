import EventLog
import EventLogPostgres
import SwitchboardEvents
import Foundation
import Projections
import Testing

@Suite("Multi-process property test", .timeLimit(.minutes(3)))
struct ChaosPropertyTests {
    /// On LMDB the processes share one directory; on PostgreSQL each has its own and they share only the database.
    @Test(arguments: ["lmdb", "postgres"])
    func fourProcessesWithRandomKillsKeepEverySafetyProperty(backend: String) async throws {
        if backend == "postgres" {
            try await PostgresCluster.withPostgres { url, schema in
                try await Self.run(database: (url, schema))
            }
        } else {
            try await Self.run(database: nil)
        }
    }

    static func run(database: (url: String, schema: String)?) async throws {
        let dir = TemporaryDirectory()
        var configuration = EventLogConfiguration(
            directory: dir.sub("log"), writer: WriterIdentity(role: "test", workerID: "observer"))
        if let database { configuration.backend = .postgres(try PostgresURL(database.url), schema: database.schema) }
        let engine = try Switchboard(configuration, logger: quietLogger)
        var seed = 1
        func start(_ slot: Int) throws -> SpawnedProcess {
            seed += 1
            let place =
                database.map { ["--dir", dir.sub("process-\(slot)"), "--database-url", $0.url, "--schema", $0.schema] }
                ?? ["--dir", dir.sub("log")]
            return try SpawnedProcess(
                "switchboard-test-helper",
                ["chaos"] + place + ["--writer", "chaos-\(slot)", "--seconds", "60", "--seed", "\(seed)"])
        }
        var helpers = try (0..<4).map(start)
        for helper in helpers { #expect(await helper.nextLine() == "ready") }
        // Kill one process every 400 committed records (paced by the log itself, not by sleeping) until at
        // least 10 s have passed; a killed process may be anywhere, including inside its write transaction.
        let began = ContinuousClock.now
        var kills = 0
        var seen = 0
        // What the checks below need to have happened at least once (a loaded machine gets there later).
        var needed: Set<String> = [
            DeliverySent.eventType, JobFailed.eventType, JobCompleted.eventType, CommandRejected.eventType,
        ]
        for try await record in engine.log.tail(from: 1) {
            seen += 1
            needed.remove(record.type)
            if seen % 400 == 0 {
                let slot = kills % helpers.count
                helpers[slot].kill(SIGKILL)
                kills += 1
                helpers[slot] = try start(slot)
                #expect(await helpers[slot].nextLine() == "ready")
            }
            if ContinuousClock.now - began >= .seconds(10) && record.seq > 2000 && needed.isEmpty { break }
        }
        for helper in helpers { helper.kill(SIGKILL) }
        #expect(kills >= 3)

        // From the log alone: no two live lease holders, no stale-token completion, claim or send.
        let checker = try InvariantChecker.check(engine.log)
        #expect(checker.violations.isEmpty, "\(checker.violations.prefix(5))")
        #expect(Set(checker.jobStatuses.values).isSubset(of: ["pending", "running", "completed", "dead"]))
        let records = try engine.log.records(from: 1)
        let types = Dictionary(grouping: records, by: \.type).mapValues(\.count)
        // The run exercised what it claims to: handovers, expiries, rejections, retries, sends.
        #expect(types["lease.acquired", default: 0] >= 2)
        #expect(types["command.rejected", default: 0] > 0)
        #expect(types["job.completed", default: 0] > 0)
        #expect(types["job.failed", default: 0] > 0)
        #expect(types["delivery.sent", default: 0] > 0)
        let holders = Set(
            try records.filter { $0.type == "lease.acquired" }.map { try $0.decode(LeaseAcquired.self).ownerInstance })
        #expect(holders.count >= 2, "the lease changed hands between processes")

        // The materialized state equals a rebuild from seq 1.
        let live = try engine.digest()
        let rebuilt = try await Rebuild.digest(
            of: engine.log, scratchDirectory: dir.sub("scratch"), logger: quietLogger)
        #expect(live == rebuilt, "live \(live) rebuilt \(rebuilt)")
        // ... and equals the same records projected through the storage seam into memory, byte for byte.
        let compared = try StorageSeamTests.expectMemoryTablesMatch(engine.log)
        #expect(compared.records > 2000)

        // The duplicate-send audit finds nothing in what the deciders allowed (retries, uncertain and killed
        // sends included) ...
        let clean = try DuplicateAudit.run(engine.log)
        #expect(clean.findings.isEmpty, "\(clean.findings.prefix(5))")
        #expect(clean.summary.sends == types["delivery.sent", default: 0])
        #expect(clean.summary.attempts == types["delivery.attempted", default: 0])
        // ... and exactly the unsafe sends written past them: a second send of a sent delivery, and a call after
        // an uncertain one when the log has one.
        let sent = try #require(records.last { $0.type == DeliverySent.eventType }).decode(DeliverySent.self)
        let duplicate = try await engine.log.append(sent)
        var expected: [(AuditFindingKind, String, UInt64)] = [(.multipleSends, sent.deliveryID, duplicate)]
        let uncertain = try records.filter { $0.type == DeliveryUncertain.eventType }.map {
            try $0.decode(DeliveryUncertain.self)
        }
        if let open = clean.summary.uncertain.first,
            let last = uncertain.last(where: { $0.deliveryID == open.deliveryID })
        {
            let resend = try await engine.log.append(
                DeliveryAttempted(deliveryID: last.deliveryID, token: last.token, leaseToken: 0, attempt: last.attempt))
            expected.insert((.attemptAfterUncertain, last.deliveryID, resend), at: 0)
            // Written under no live lease token, it is a stale-token call as well.
            expected.append((.staleTokenSend, last.deliveryID, resend))
        }
        let unsafe = try DuplicateAudit.run(engine.log).findings
        #expect(unsafe.count == expected.count, "\(unsafe)")
        for (kind, subject, seq) in expected {
            #expect(
                unsafe.contains { $0.kind == kind && $0.subject == subject && $0.seqs.last == seq }, "\(unsafe)")
        }
        await engine.close()
    }
}
