import EventLog
import Foundation
import Projections
import SwitchboardEvents
import Testing

/// A log written by the build before the vocabulary moved out of EventLog (`e19e498`, envelope v1, projection
/// format `switchboard/1`): this build (format `switchboard/3`) must read every record into the vocabulary, leave
/// the old tables alone when it opens the log to read, and rebuild them in place when it opens the log to write. `Fixtures/log-e19e498/data.mdb` was written by
/// that build's `switchboard-test-helper fixture` (every event type, through its engine).
@Suite("Stored format fixture")
struct StoredFormatFixtureTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/log-e19e498/data.mdb").path

    /// A writable copy of the fixture (LMDB writes its lock file beside the data file).
    static func copy(to directory: TemporaryDirectory) throws -> String {
        let path = directory.sub("log")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: fixture, toPath: path + "/data.mdb")
        return path
    }

    /// Event types added to the vocabulary after `e19e498` wrote the fixture.
    static let newerTypes: Set<String> = [
        ConversationSummarized.eventType, InboundIgnored.eventType, WebhookRejected.eventType,
        DeliveryStatusReported.eventType,
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
