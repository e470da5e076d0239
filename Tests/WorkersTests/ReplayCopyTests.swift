// Acceptance tests of `replay copy`: a log with real Switchboard history moved LMDB → PostgreSQL → LMDB by the
// spawned executable, checked at each step, and the targets it refuses.
import EventLog
import Foundation
import Projections
import SwitchboardEvents
import TestSupport
import Testing

@Suite(.timeLimit(.minutes(5)))
struct ReplayCopyTests {
    @Test func copiesLMDBToPostgresAndBackWithEveryRecordAndDigestEqual() async throws {
        let world = try await Self.busyWorld()
        let source = try Self.records(in: world.path)
        let digest = try Self.liveDigest(in: world.path)
        #expect(Set(source.map(\.writer)).count == 2, "two writer identities in the source")
        let back = TemporaryDirectory()
        let backPath = back.path + "/copy"

        try await PostgresCluster.withPostgres { url, schema in
            // LMDB → PostgreSQL, in batches of 7 (several group commits), as JSON.
            let toPostgres = try await Self.replay([
                "copy", "--from", "lmdb:\(world.path)", "--to", "postgres:\(url)", "--to-schema", schema,
                "--batch", "7", "--json",
            ])
            #expect(toPostgres.status == 0, "\(toPostgres)")
            let report = try toPostgres.object()
            #expect(report["equal"] as? Bool == true, "\(toPostgres)")
            #expect(replayUInt(report["records"]) == UInt64(source.count))
            #expect(replayUInt(report["lastSeq"]) == source.last?.seq)
            #expect(replayUInt(report["targetLastSeq"]) == source.last?.seq)
            #expect(replayUInt(report["identicalRecords"]) == UInt64(source.count))
            #expect(report["sourceDigest"] as? String == digest.hex, "\(toPostgres)")
            #expect(report["targetDigest"] as? String == digest.hex, "\(toPostgres)")
            #expect(report["sourceDigestFrom"] as? String == "live")
            #expect(replayUInt(report["targetEntries"]) == UInt64(digest.entries))
            #expect((report["problems"] as? [Any])?.isEmpty == true)
            #expect((report["target"] as? String)?.hasPrefix("postgres:postgres://postgres@") == true)

            // `replay verify` on the PostgreSQL copy: records, gapless seqs, rebuild digest equals live.
            let verify = try await Self.replay(["verify", "--database-url", url, "--schema", schema])
            #expect(verify.status == 0, "\(verify)")
            #expect(verify.lines.last?.hasPrefix("[OK] \(source.count) records") == true, "\(verify)")
            #expect(verify.lines.last?.contains("rebuild digest \(digest.hex.prefix(16))… equals live") == true)

            // PostgreSQL → a second LMDB directory (created), in text.
            let toLMDB = try await Self.replay([
                "copy", "--from", "postgres:\(url)", "--from-schema", schema, "--to", "lmdb:\(backPath)",
            ])
            #expect(toLMDB.status == 0, "\(toLMDB)")
            #expect(toLMDB.lines.first?.hasPrefix("copied \(source.count) records (seqs 1...\(source.count))") == true)
            #expect(
                toLMDB.lines.contains(
                    "records: \(source.count) of \(source.count) identical (seq, time, writer, type, "
                        + "payload, envelope checksum)"), "\(toLMDB)")
            #expect(
                toLMDB.lines.contains {
                    $0.hasPrefix(
                        "state digest: source \(digest.hex.prefix(16))… (live, \(digest.entries) entries), "
                            + "target \(digest.hex.prefix(16))…")
                }, "\(toLMDB)")
            #expect(toLMDB.lines.last == "[OK] the copy equals the source", "\(toLMDB)")
        }

        // The final copy, record by record, against the source.
        let copied = try Self.records(in: backPath)
        #expect(copied.count == source.count)
        for (original, copy) in zip(source, copied) {
            #expect(original.seq == copy.seq && original.timestamp == copy.timestamp, "seq \(original.seq)")
            #expect(original.writer == copy.writer && original.type == copy.type, "seq \(original.seq)")
            #expect(original.payload == copy.payload && original == copy, "seq \(original.seq)")
            #expect(try original.envelopeChecksum() == copy.envelopeChecksum(), "seq \(original.seq)")
        }
        #expect(try Self.liveDigest(in: backPath) == digest)
        let verifyBack = try await Self.replay(["verify", "--data-dir", backPath])
        #expect(verifyBack.status == 0, "\(verifyBack)")
    }

    @Test func refusesATargetThatHoldsRecordsAndNeverPrintsThePassword() async throws {
        let world = try ReplayWorld()
        _ = try await world.engine.enqueueJob(NewJob(idempotencyKey: "inbound:1", conversationID: "c-1"))
        _ = try await world.claimJob()
        let copied = try world.engine.log.lastSeq()
        await world.close()
        let occupied = try ReplayWorld()
        _ = try await occupied.engine.enqueueJob(NewJob(idempotencyKey: "inbound:2", conversationID: "c-2"))
        let held = try occupied.engine.log.lastSeq()
        await occupied.close()

        let intoLMDB = try await ReplayWorld.replayErrors([
            "copy", "--from", "lmdb:\(world.path)", "--to", "lmdb:\(occupied.path)",
        ])
        #expect(intoLMDB.status == 1, "\(intoLMDB)")
        #expect(
            intoLMDB.lines == [
                "replay: the target lmdb:\(occupied.path) already holds records (seqs 1...\(held)); copy only into "
                    + "an empty log"
            ], "\(intoLMDB)")
        #expect(try Self.records(in: occupied.path).count == Int(held), "the target is left as it was")

        let cluster = try await PostgresCluster.shared()
        let schema = PostgresCluster.uniqueSchemaName()
        defer { cluster.dropSchema(schema) }
        let secret = "s3cret-Pw9"
        let url = cluster.url(overTCP: true).replacingOccurrences(
            of: "postgres://postgres@", with: "postgres://postgres:\(secret)@")
        let first = try await Self.replay(["copy", "--from", "lmdb:\(world.path)", "--to", url, "--to-schema", schema])
        #expect(first.status == 0, "\(first)")
        #expect(first.lines.first?.contains("postgres://postgres:***@127.0.0.1") == true, "\(first)")
        let again = try await ReplayWorld.replayErrors([
            "copy", "--from", "lmdb:\(world.path)", "--to", "postgres:\(url)", "--to-schema", schema,
        ])
        #expect(again.status == 1, "\(again)")
        #expect(again.lines.count == 1, "\(again)")
        #expect(again.lines.first?.hasPrefix("replay: the target postgres:postgres://postgres:***@") == true)
        #expect(
            again.lines.first?.hasSuffix("already holds records (seqs 1...\(copied)); copy only into an empty log")
                == true)
        for run in [first, again] {
            #expect(!run.lines.joined().contains(secret), "the password printed: \(run)")
        }

        let nowhere = try await ReplayWorld.replayErrors(["copy", "--from", "lmdb:\(world.path)", "--to", url + "x:"])
        #expect(nowhere.status == 1 && !nowhere.lines.joined().contains(secret), "\(nowhere)")
        let unknown = try await ReplayWorld.replayErrors(["copy", "--from", "mysql://x", "--to", "lmdb:/tmp/x"])
        #expect(unknown.lines == ["replay: --from takes lmdb:DIR or postgres:URL"], "\(unknown)")
        let missing = try await ReplayWorld.replayErrors([
            "copy", "--from", "lmdb:\(world.path)/none", "--to", "lmdb:\(occupied.path)/new",
        ])
        #expect(missing.lines == ["replay: no event log in lmdb:\(world.path)/none"], "\(missing)")
    }

    /// The fixture logs of older builds (every event type of vocabulary v1, projections in an older format): the
    /// source's digest is a rebuild of its records, the target's is made by the import; `postgres:` alone takes
    /// `DATABASE_URL`.
    @Test(arguments: ["log-e19e498", "log-1b12033"])
    func copiesAnOlderBuildsLogWithItsStateRebuilt(fixture: String) async throws {
        let directory = TemporaryDirectory()
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../ProjectionsTests/Fixtures/\(fixture)/data.mdb").standardizedFileURL
        try FileManager.default.copyItem(atPath: fixtures.path, toPath: directory.path + "/data.mdb")
        let source = try Self.records(in: directory.path)
        try #require(!source.isEmpty)

        try await PostgresCluster.withPostgres { url, schema in
            let (status, lines) = try await SpawnedProcess.run(
                "replay",
                ["copy", "--from", "lmdb:\(directory.path)", "--to", "postgres:", "--to-schema", schema, "--json"],
                environment: ["DATABASE_URL": url])
            let run = ReplayRun(status: status, lines: lines)
            #expect(run.status == 0, "\(run)")
            let report = try run.object()
            #expect(report["equal"] as? Bool == true, "\(run)")
            #expect(report["sourceDigestFrom"] as? String == "rebuild", "\(run)")
            #expect(replayUInt(report["identicalRecords"]) == UInt64(source.count))
            #expect(report["sourceDigest"] as? String == report["targetDigest"] as? String)
            let verify = try await Self.replay(["verify", "--database-url", url, "--schema", schema])
            #expect(verify.status == 0, "\(verify)")
        }
    }

    // MARK: Support

    /// Runs `replay` with exactly `arguments`, reading its standard output.
    static func replay(_ arguments: [String]) async throws -> ReplayRun {
        let (status, lines) = try await SpawnedProcess.run("replay", arguments)
        return ReplayRun(status: status, lines: lines)
    }

    /// A closed log of real Switchboard history by two processes: a WhatsApp lease renewed, inbound messages
    /// answered by jobs claimed and completed, deliveries claimed, attempted and sent; then another writer's jobs.
    static func busyWorld() async throws -> ReplayWorld {
        let world = try ReplayWorld()
        let worker = ReplayWorld.owner("wa-1")
        let lease = try await world.acquire(as: worker)
        for index in 0..<4 {
            let ingest = try await world.engine.ingest(
                InboundMessage(
                    channel: "whatsapp", accountID: "default", externalID: "wamid.in.\(index)", contactID: "+15550010",
                    text: "question \(index)"))
            guard case .accepted(_, _, let jobID?, _) = ingest else {
                Issue.record("expected an accepted message with a job, got \(ingest)")
                throw ReplayTestFailure()
            }
            let claim = try await world.claimJob()
            _ = try await world.enqueueDelivery(key: "reply-\(index):0", to: "+15550010", text: "answer \(index)")
            #expect(try await world.engine.completeJob(jobID, token: claim.token, result: "ok") == .accepted)
            try await world.deliver(as: worker, leaseToken: lease)
            world.clock.advance(.seconds(10))
            #expect(try await world.engine.renewLease(ReplayWorld.resource, token: lease, as: worker).grant != nil)
        }
        await world.close()

        // A second process (another writer identity) carries on with the same log.
        var configuration = EventLogConfiguration(
            directory: world.path, writer: WriterIdentity(role: "core", workerID: "core-2"))
        let clock = world.clock
        configuration.wallClock = { clock.now }
        let engine = try Switchboard(configuration, settings: .defaults(), logger: replayQuietLogger)
        for index in 0..<3 {
            _ = try await engine.enqueueJob(NewJob(idempotencyKey: "later:\(index)", conversationID: "c-later"))
            if let claim = try await engine.claimJob() {
                _ = try await engine.completeJob(claim.job.jobID, token: claim.token, result: "done \(index)")
            }
        }
        await engine.close()
        return world
    }

    /// Opens the LMDB log in `directory` as a reader (never creating one nor rebuilding its projections).
    static func withLog<R>(in directory: String, _ body: (EventLog) throws -> R) throws -> R {
        var configuration = EventLogConfiguration(
            directory: directory, writer: WriterIdentity(role: "test", workerID: "reader"))
        configuration.projector = SwitchboardProjector()
        configuration.createIfMissing = false
        configuration.projectionUpgrade = .leave  // an older build's log stays as it was
        let log = try EventLog(configuration, logger: replayQuietLogger)
        defer { log.close() }
        return try body(log)
    }

    static func records(in directory: String) throws -> [Record] {
        try withLog(in: directory) { try $0.records(from: 1) }
    }

    static func liveDigest(in directory: String) throws -> StateDigest {
        try withLog(in: directory) { try StateReader.live($0).digest() }
    }
}
