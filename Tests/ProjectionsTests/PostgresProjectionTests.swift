import EventLog
import EventLogPostgres
import Foundation
import Projections
import SwitchboardEvents
import Testing

/// The projector through PostgreSQL (issue 26): the fixtures' records appended to a log on PostgreSQL leave the
/// same tables, byte for byte, as the in-memory reference backend projects from the same records — applied one
/// append at a time through the writer's transaction, and again after a rebuild in place.
@Suite("Projections on PostgreSQL", .serialized)
struct PostgresProjectionTests {
    @Test(arguments: StorageSeamTests.fixtures)
    func theProjectorWritesTheSameTablesThroughPostgreSQL(fixture: String) async throws {
        let dir = TemporaryDirectory()
        let path = try StoredFormatFixtureTests.copy(to: dir, from: fixture)
        let source = try openEngine(path)
        let events = try source.log.records(from: 1).map {
            PendingEvent(
                type: $0.type, schemaVersion: $0.schemaVersion, payload: $0.payload,
                payloadEncoding: $0.payloadEncoding,
                correlationID: $0.correlationID, causationID: $0.causationID)
        }
        await source.log.close()
        try await PostgresCluster.withPostgres { url, schema in
            var configuration = EventLogConfiguration(
                directory: dir.sub("pg"), writer: WriterIdentity(role: "test", workerID: "pg"))
            configuration.backend = .postgres(try PostgresURL(url), schema: schema)
            let engine = try Switchboard(configuration, settings: .defaults(), logger: quietLogger)
            try await engine.log.closeAfter {
                var start = 0
                while start < events.count {
                    let end = min(events.count, start + 7)
                    try await engine.log.append(Array(events[start..<end]))
                    start = end
                }
                let compared = try StorageSeamTests.expectMemoryTablesMatch(engine.log)
                #expect(compared.records == events.count && compared.entries > 40)
                // A state snapshot of the PostgreSQL log is the same LMDB layout, with the same state.
                let export = try engine.log.exportProjections(to: dir.sub("export"))
                #expect(export.seq == UInt64(events.count) && export.entries == compared.entries)
                var copy = EventLogConfiguration(
                    directory: dir.sub("export"), writer: WriterIdentity(role: "test", workerID: "reader"))
                copy.projectionUpgrade = .leave
                copy.createIfMissing = false
                let exported = try Switchboard(copy, logger: quietLogger)
                let exportedDigest = try exported.digest()
                #expect(try exported.log.exportedSeq() == UInt64(events.count))
                await exported.close()
                let live = try engine.digest()
                // The copy holds no records (its own last seq is 0): the tables are what must be equal.
                #expect(live.hex == exportedDigest.hex && live.entries == exportedDigest.entries)
            }
            // Tables written by an older build: the next writer rebuilds them in place from the events.
            _ = try await PostgresCluster.shared().psql("UPDATE \(schema).head SET projection_format = 'switchboard/1'")
            var reader = configuration
            reader.projectionUpgrade = .leave
            let stale = try Switchboard(reader, settings: .defaults(), logger: quietLogger)
            #expect(stale.log.projections != .current)
            await stale.log.close()
            let rebuilt = try Switchboard(configuration, settings: .defaults(), logger: quietLogger)
            try await rebuilt.log.closeAfter {
                #expect(rebuilt.log.projections == .current)
                let compared = try StorageSeamTests.expectMemoryTablesMatch(rebuilt.log)
                #expect(compared.records == events.count)
            }
        }
    }
}
