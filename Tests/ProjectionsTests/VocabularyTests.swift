@testable import EventLog
import Foundation
import Projections
import SwitchboardEvents
import Testing

/// The vocabulary as the log sees it: records decode once into `SwitchboardEvent`, unknown types stay raw,
/// and a payload that does not decode stops a rebuild with its seq instead of being skipped.
@Suite("Vocabulary and the one rebuild loop")
struct VocabularyTests {
    static func record(_ event: PendingEvent, seq: UInt64 = 7) -> Record {
        Record(
            seq: seq, timestamp: LogTimestamp(microseconds: 1), type: event.type, schemaVersion: event.schemaVersion,
            writer: WriterIdentity(role: "test", workerID: "t"), correlationID: event.correlationID,
            causationID: event.causationID, payloadEncoding: event.payloadEncoding, payload: event.payload)
    }

    static let samples: [SwitchboardEvent] = [
        .jobEnqueued(
            JobEnqueued(
                jobID: "j1", idempotencyKey: "k", conversationID: "c", kind: "reply", triggeringMessageSeq: 3,
                parentJobID: nil, rootJobID: nil, priority: 2, runAt: nil, maxAttempts: 3, payload: ["a": "b"])),
        .leaseDenied(
            LeaseDenied(
                resource: "whatsapp/default", requesterWorkerID: "wa-2", requesterInstance: "i2",
                holderWorkerID: "wa-1", holderInstance: "i1", holderToken: 4,
                holderExpiresAt: LogTimestamp(microseconds: 9), reason: "held", presentedToken: nil)),
        .workerStopped(WorkerStopped(role: "all", workerID: "w", instance: "i", reason: "graceful")),
        .toolResult(ToolResult(callID: "c1", jobID: "j1", jobToken: 5, outputJSON: "{}")),
    ]

    @Test(arguments: samples)
    func anEventRoundTripsThroughItsStoredForm(_ event: SwitchboardEvent) throws {
        let stored = try event.encoded(correlationID: "corr", causationID: 2)
        #expect(stored.type == event.eventType)
        #expect(try SwitchboardEvent(Self.record(stored)) == event)
    }

    @Test func everyCatalogTypeHasACase() throws {
        // Each type of the catalog decodes into a case whose stored type is its own.
        for kind in EventCatalog.allTypes {
            let bogus = PendingEvent(type: kind.eventType, payload: Array("{}".utf8))
            do {
                let event = try SwitchboardEvent(Self.record(bogus))
                #expect(event?.eventType == kind.eventType)
            } catch {
                #expect(error.code == .decoding, "\(kind.eventType): \(error)")
            }
        }
        #expect(Set(EventCatalog.allTypes.map { $0.eventType }).count == EventCatalog.allTypes.count)
    }

    @Test func anUnknownTypeOrANewerSchemaIsNotAnEventOfThisBuild() throws {
        let future = PendingEvent(type: "future.event", schemaVersion: 1, payload: Array("{}".utf8))
        #expect(try SwitchboardEvent(Self.record(future)) == nil)
        var newer = try Self.samples[0].encoded()
        newer.schemaVersion = 2
        #expect(try SwitchboardEvent(Self.record(newer)) == nil)
    }

    @Test func aKnownTypeWithABadPayloadThrowsWithItsSeq() {
        let bad = PendingEvent(type: JobEnqueued.eventType, payload: Array("{\"jobID\":5}".utf8))
        #expect {
            _ = try SwitchboardEvent(Self.record(bad, seq: 41))
        } throws: { error in
            (error as? EventLogError)?.code == .decoding && (error as? EventLogError)?.seq == 41
        }
    }

    /// A log whose record 3 is a `job.enqueued` that does not decode, written without a projector.
    static func logWithABadRecord(_ directory: String) async throws {
        let log = try EventLog(
            EventLogConfiguration(directory: directory, writer: WriterIdentity(role: "test", workerID: "raw")),
            logger: quietLogger)
        try await log.append(WorkerStarted(role: "all", workerID: "w", instance: "i", pid: 1, version: "t"))
        try await log.append(
            JobEnqueued(
                jobID: "j1", idempotencyKey: "k1", conversationID: "c", kind: "reply", triggeringMessageSeq: nil,
                parentJobID: nil, rootJobID: nil, priority: 0, runAt: nil, maxAttempts: 3, payload: [:]))
        try await log.append([PendingEvent(type: JobEnqueued.eventType, payload: Array("{\"jobID\":5}".utf8))])
        try await log.append(WorkerStopped(role: "all", workerID: "w", instance: "i", reason: "graceful"))
        await log.close()
    }

    @Test func theInPlaceRebuildStopsAtARecordThatDoesNotDecode() async throws {
        let dir = TemporaryDirectory()
        try await Self.logWithABadRecord(dir.path)
        var configuration = EventLogConfiguration(
            directory: dir.path, writer: WriterIdentity(role: "test", workerID: "w"))
        configuration.projector = SwitchboardProjector()
        #expect {
            _ = try EventLog(configuration, logger: quietLogger)
        } throws: { error in
            (error as? EventLogError)?.code == .decoding && (error as? EventLogError)?.seq == 3
        }
    }

    @Test func theScratchRebuildStopsAtARecordThatDoesNotDecode() async throws {
        let dir = TemporaryDirectory()
        try await Self.logWithABadRecord(dir.path)
        var configuration = EventLogConfiguration(
            directory: dir.path, writer: WriterIdentity(role: "test", workerID: "w"))
        configuration.projector = SwitchboardProjector()
        configuration.projectionUpgrade = .leave
        let log = try EventLog(configuration, logger: quietLogger)
        await #expect {
            _ = try await Rebuild.digest(of: log, scratchDirectory: dir.sub("scratch"), logger: quietLogger)
        } throws: { error in
            (error as? EventLogError)?.code == .decoding && (error as? EventLogError)?.seq == 3
        }
        #expect(throws: EventLogError.self) { _ = try InvariantChecker.check(log) }
        await log.close()
    }

    @Test func onlyTheProjectorWritesProjectionTablesAndOnlyItsOwnEventsAreTyped() async throws {
        let dir = TemporaryDirectory()
        var configuration = EventLogConfiguration(
            directory: dir.path, writer: WriterIdentity(role: "test", workerID: "w"))
        configuration.projector = SwitchboardProjector()
        configuration.tables = ["t.side"]
        let log = try EventLog(configuration, logger: quietLogger)
        let jobs = log.table(ProjectionTable.jobs)
        let side = log.table("t.side")
        await #expect(throws: EventLogError.self) {
            _ = try await log.transact { context in try context.put(jobs, Array("forged".utf8), [1]) }
        }
        _ = try await log.transact { context in try context.put(side, Array("mine".utf8), [1]) }
        struct Other: Projector {
            var tables: [String] { [] }
            var format: ProjectionFormat { ProjectionFormat(name: "other", version: 1) }
            func decode(_ record: Record) throws -> Int? { nil }
            func apply(_ event: Int, _ meta: RecordMeta, to tables: some TableWriting) throws {}
        }
        await #expect(throws: EventLogError.self) {
            _ = try await log.transact { context in
                try context.append(1, encoded: PendingEvent(type: "x", payload: [1]), projectedBy: Other())
            }
        }
        #expect(try log.withSnapshot { try $0.get(jobs, Array("forged".utf8)) } == nil)
        #expect(try log.withSnapshot { try $0.get(side, Array("mine".utf8)) } == [1])
        #expect(try log.lastSeq() == 0)
        await log.close()
    }
}
