import EventLog
import Foundation
import Testing

/// Projection tables carry their format: an older format is rebuilt from the log on open, a newer one is refused,
/// and a process whose format no longer matches the stored one stops writing.
@Suite("Projection format and in-place rebuild", .timeLimit(.minutes(2)))
struct ProjectionFormatTests {
    /// Version 1 counts events in `t.count` and keeps a table only it uses; version 2 stores the sum of the
    /// payloads' `i` instead (a different value for the same events) and drops that table.
    struct Counter: Projector {
        var version: Int
        var name = "counter"

        var tables: [String] { version == 1 ? ["t.count", "t.v1_only"] : ["t.count"] }
        var format: ProjectionFormat { ProjectionFormat(name: name, version: version) }

        func decode(_ record: Record) throws -> TestPayload? {
            try JSONDecoder().decode(TestPayload.self, from: Data(record.payload))
        }

        func apply(_ event: TestPayload, _ meta: RecordMeta, to tables: some TableWriting) throws {
            let table = tables.table(at: 0)
            let current = TransactTests.readCounter(try tables.get(table, Array("value".utf8)))
            try tables.put(table, Array("value".utf8), TransactTests.bytes(current + (version == 1 ? 1 : event.i)))
            if version == 1 { try tables.put(tables.table(at: 1), Array("seen".utf8), [1]) }
        }
    }

    func open(
        _ dir: TemporaryDirectory, _ projector: (any Projector)?, upgrade: ProjectionUpgrade = .rebuildInPlace,
        tables: [String] = []
    ) throws -> EventLog {
        try openLog(dir.path, tables: tables) {
            $0.projector = projector
            $0.projectionUpgrade = upgrade
        }
    }

    func count(_ log: EventLog) throws -> Int {
        try log.withSnapshot { TransactTests.readCounter(try $0.get(log.table("t.count"), Array("value".utf8))) }
    }

    /// Writes events 1...n with projector version 1.
    func written(_ dir: TemporaryDirectory, _ n: Int) async throws {
        let log = try open(dir, Counter(version: 1))
        for i in 1...n { try await log.append([testEvent(i)]) }
        #expect(try count(log) == n)
        await log.close()
    }

    @Test func aNewLogRecordsItsFormatAndReopensWithoutRebuilding() async throws {
        let dir = TemporaryDirectory()
        try await written(dir, 3)
        let log = try open(dir, Counter(version: 1))
        #expect(log.projections == .current)
        #expect(try count(log) == 3)
        await log.close()
    }

    @Test func anOlderFormatIsRebuiltInPlaceAndItsRetiredTablesDropped() async throws {
        let dir = TemporaryDirectory()
        try await written(dir, 10)
        let log = try open(dir, Counter(version: 2))
        #expect(log.projections == .current)
        #expect(try count(log) == (1...10).reduce(0, +))  // version 2's value, from every event of the log
        try await log.append([testEvent(100)])
        #expect(try count(log) == 155)
        await log.close()
        // The table only version 1 used is gone (opening it again creates it empty).
        let reopened = try open(dir, Counter(version: 2), tables: ["t.v1_only"])
        #expect(try reopened.withSnapshot { try $0.count(reopened.table("t.v1_only")) } == 0)
        #expect(try count(reopened) == 155)
        await reopened.close()
    }

    @Test func theInPlaceRebuildAppliesEveryRecordOnceAcrossItsBatches() async throws {
        let dir = TemporaryDirectory()
        let plain = try open(dir, nil)
        let n = 25_001  // over two batches of 10 000, and one record more
        for first in stride(from: 1, through: n, by: 1_000) {
            try await plain.append((first...min(n, first + 999)).map { testEvent($0) })
        }
        await plain.close()
        let log = try open(dir, Counter(version: 2))
        #expect(try count(log) == n * (n + 1) / 2)
        await log.close()
    }

    @Test func tablesOfALogWrittenWithoutAProjectorAreBuiltOnOpen() async throws {
        let dir = TemporaryDirectory()
        let plain = try open(dir, nil)
        for i in 1...4 { try await plain.append([testEvent(i)]) }
        await plain.close()
        let log = try open(dir, Counter(version: 2))
        #expect(try count(log) == 10)
        await log.close()
    }

    @Test func aNewerFormatIsRefusedSoAnOlderBuildCannotWriteOverIt() async throws {
        let dir = TemporaryDirectory()
        try await written(dir, 2)
        try await open(dir, Counter(version: 2)).close()
        #expect {
            try open(dir, Counter(version: 1))
        } throws: { error in
            (error as? EventLogError)?.code == .versionMismatch && "\(error)".contains("newer build")
        }
        #expect(throws: EventLogError(.versionMismatch, "")) { try open(dir, Counter(version: 3, name: "other")) }
    }

    @Test func aReadOnlyOpenLeavesAnOlderFormatAndItsWritesAreRefused() async throws {
        let dir = TemporaryDirectory()
        try await written(dir, 5)
        let log = try open(dir, Counter(version: 2), upgrade: .leave)
        #expect(
            log.projections
                == .stale(stored: ProjectionFormat(name: "counter", version: 1), expected: Counter(version: 2).format))
        #expect(try count(log) == 5)  // untouched: still version 1's value
        // A writer whose format is not the stored one must not write its layout over it.
        await #expect(throws: EventLogError(.versionMismatch, "")) { try await log.append([testEvent(6)]) }
        #expect(try log.lastSeq() == 5)
        await log.close()
        let upgraded = try open(dir, Counter(version: 2))
        #expect(try count(upgraded) == 15)
        await upgraded.close()
    }
}
