import EventLog
import Foundation
import Projections
import SwitchboardEvents
import Testing

/// A log written by the build before the vocabulary moved out of EventLog (`e19e498`, envelope v1, projection
/// format `switchboard/1`): this build must read every record into the vocabulary, leave the old tables alone when
/// it opens the log to read, and rebuild them in place when it opens the log to write. `Fixtures/log-e19e498/data.mdb`
/// was written by that build's `switchboard-test-helper fixture` (every event type, through its engine).
@Suite("Stored format fixture")
struct StoredFormatFixtureTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/log-e19e498/data.mdb").path

    /// A writable copy of the fixture (LMDB writes its lock file beside the data file).
    static func copy(to directory: TemporaryDirectory, from fixture: String = fixture) throws -> String {
        let path = directory.sub("log")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: fixture, toPath: path + "/data.mdb")
        return path
    }

    /// Event types added to the vocabulary after `e19e498` wrote the fixture.
    static let newerTypes: Set<String> = [
        ConversationSummarized.eventType, InboundIgnored.eventType, WebhookRejected.eventType,
        DeliveryStatusReported.eventType, JobCancelled.eventType, ConversationRenamed.eventType,
        ConversationDeleted.eventType, JobRetriggered.eventType, CommandHandled.eventType,
    ]

    @Test func theOldLogReadsWithoutTouchingItsTables() async throws {
        let dir = TemporaryDirectory()
        let path = try Self.copy(to: dir)
        var configuration = EventLogConfiguration(
            directory: path, writer: WriterIdentity(role: "test", workerID: "fixture"))
        configuration.projector = SwitchboardProjector()
        configuration.projectionUpgrade = .leave
        let log = try EventLog(configuration, logger: quietLogger)
        #expect(
            log.projections
                == .stale(
                    stored: ProjectionFormat(name: "switchboard", version: 1), expected: SwitchboardProjector.format))
        let last = try log.lastSeq()
        #expect(last > 40)
        // Every record decodes into the vocabulary, and together they cover every event type.
        var types = Set<String>()
        for record in try log.records(from: 1) {
            let event = try #require(try SwitchboardEvent(record), "seq \(record.seq) \(record.type)")
            types.insert(event.eventType)
        }
        #expect(types == Set(EventCatalog.allTypes.map { $0.eventType }).subtracting(Self.newerTypes))
        // The live-state reader refuses the old layout rather than misread it; a rebuilt copy reads.
        #expect(throws: EventLogError.self) { try StateReader.live(log) }
        _ = try await Rebuild.digest(of: log, scratchDirectory: dir.sub("scratch"), logger: quietLogger)
        await log.close()
    }

    @Test func aWriterOfThisBuildUpgradesTheOldLogInPlaceAndAppends() async throws {
        let dir = TemporaryDirectory()
        let path = try Self.copy(to: dir)
        let engine = try openEngine(path)
        #expect(engine.log.projections == .current)
        #expect(try InvariantChecker.check(engine.log).violations.isEmpty)
        let before = try engine.log.lastSeq()
        let lease = try await engine.acquireLease("whatsapp/default")
        #expect(lease.grant != nil, "the fixture's lease was released")
        #expect(try engine.log.lastSeq() == before + 1)
        let rebuilt = try await Rebuild.digest(
            of: engine.log, scratchDirectory: dir.sub("scratch"), logger: quietLogger)
        #expect(try engine.digest() == rebuilt)
        await engine.close()
    }
}

/// A log written by the last build of projection format 3 (`1b12033`): this build rebuilds its claim indexes in
/// place, and its queues then claim in the documented order (see `Fixtures/log-1b12033/README.md`).
@Suite("Format 3 fixture")
struct FormatThreeFixtureTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/log-1b12033/data.mdb").path

    @Test func aFormatThreeLogIsRebuiltInPlaceAndItsQueuesClaimInOrder() async throws {
        let dir = TemporaryDirectory()
        let path = try StoredFormatFixtureTests.copy(to: dir, from: Self.fixture)

        var reading = EventLogConfiguration(directory: path, writer: WriterIdentity(role: "test", workerID: "reader"))
        reading.projector = SwitchboardProjector()
        reading.projectionUpgrade = .leave
        let old = try EventLog(reading, logger: quietLogger)
        #expect(
            old.projections
                == .stale(
                    stored: ProjectionFormat(name: "switchboard", version: 3), expected: SwitchboardProjector.format))
        await old.close()

        let engine = try openEngine(path)
        #expect(engine.log.projections == .current)
        #expect(try InvariantChecker.check(engine.log).violations.isEmpty)
        let depths = try engine.reader.queueDepths()
        #expect(depths.jobsReady == 7 && depths.jobsRunning == 2, "\(depths)")
        #expect(depths.deliveriesPending == 4 && depths.deliveriesInFlight == 1, "\(depths)")

        // The running parent's child goes first; the busy conversation, the parent's later job, the job in backoff
        // and the scheduled one wait.
        let child = try #require(try await engine.claimJob())
        #expect(child.job.jobID == "job-child")
        #expect(try await engine.claimJob() == nil)
        // When the busy conversation's job ends, its next job is promoted.
        let busy = try #require(try engine.job("job-busy-0"))
        _ = try await engine.completeJob("job-busy-0", token: busy.token, as: busy.claimedBy)
        #expect(try await engine.claimJob()?.job.jobID == "job-busy-1")

        // Deliveries, under the fixture's lease (still live at the log's time): +1 waits behind its in-flight
        // head, +2 is in backoff, so +5's message goes.
        let lease = try #require(try engine.lease("whatsapp/default"))
        let claim = try await engine.claimDelivery(
            channel: "whatsapp", accountID: "default", leaseToken: lease.token, as: lease.owner)
        guard case .claimed(let waiting) = claim else { throw TestFailure("expected a claim, got \(claim)") }
        #expect(waiting.delivery.idempotencyKey == "waiting")
        let retried = try #require(try engine.deliveries(.pending).first { $0.idempotencyKey == "retried" })
        #expect(
            try await engine.claimDelivery(
                channel: "whatsapp", accountID: "default", leaseToken: lease.token, as: lease.owner)
                == .empty(retryAt: retried.notBefore))

        let rebuilt = try await Rebuild.digest(
            of: engine.log, scratchDirectory: dir.sub("scratch"), logger: quietLogger)
        #expect(try engine.digest() == rebuilt)
        await engine.close()
    }
}
