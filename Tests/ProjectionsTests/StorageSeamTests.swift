import EventLog
import Foundation
import Projections
import SwitchboardEvents
import Testing

/// The storage seam (docs/architecture.md): the projector writes through `TableWriting` only, so a second backend
/// that keeps key-ordered byte tables reproduces LMDB's projections byte for byte from the same records.
@Suite("Storage seam")
struct StorageSeamTests {
    static let fixtures = ["log-e19e498", "log-1b12033"].map {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/\($0)/data.mdb")
            .path
    }

    /// Each fixture's records, projected into memory one at a time (as appends apply them) and as a bulk replay
    /// (as a rebuild does), equal the tables LMDB holds after opening the log.
    @Test(arguments: fixtures) func memoryTablesReproduceLMDB(fixture: String) async throws {
        let dir = TemporaryDirectory()
        let path = try StoredFormatFixtureTests.copy(to: dir, from: fixture)
        let engine = try openEngine(path)
        try await engine.log.closeAfter {
            let compared = try Self.expectMemoryTablesMatch(engine.log)
            // The fixture fills the tables (every event type): the comparison is not of empty sets.
            #expect(compared.records >= 40 && compared.entries > 40)
        }
    }

    /// Projects every record of `log` into memory one at a time (as appends apply them) and as a bulk replay (as a
    /// rebuild does) and expects both to equal the tables LMDB holds; returns how much was compared.
    @discardableResult
    static func expectMemoryTablesMatch(_ log: EventLog) throws -> (records: Int, entries: Int) {
        let projector = SwitchboardProjector()
        let appended = MemoryTables(projector.tables)
        let rebuilt = MemoryTables(projector.tables, replaying: true)
        var records = 0
        try log.withSnapshot { snapshot in
            try snapshot.forEach { record in
                records += 1
                if let event = try projector.decode(record) {
                    try projector.apply(event, RecordMeta(record), to: appended)
                    try projector.apply(event, RecordMeta(record), to: rebuilt)
                }
                return true
            }
        }
        rebuilt.replaying = false
        try projector.finishReplay(rebuilt)

        var entries = 0
        for name in projector.tables {
            var stored: [(key: [UInt8], value: [UInt8])] = []
            try log.withSnapshot { snapshot in
                try snapshot.scan(log.table(name)) { key, value in
                    stored.append((key, value))
                    return true
                }
            }
            for memory in [appended, rebuilt] {
                let rows = memory.entries(try #require(memory.table(name)))
                #expect(rows.map(\.key) == stored.map(\.key), "\(name): keys differ")
                #expect(rows.map(\.value) == stored.map(\.value), "\(name): values differ")
            }
            entries += stored.count
        }
        return (records, entries)
    }

    /// The memory backend keeps LMDB's order (unsigned bytes, shorter prefix first) and its scan semantics.
    @Test func memoryTablesOrderKeysAsLMDBDoes() throws {
        let tables = MemoryTables(["t"])
        let t = try #require(tables.table("t"))
        for key: [UInt8] in [[0xFF], [0x01, 0x00], [0x01], [0x80, 0x01], [0x00]] { try tables.put(t, key, key) }
        try tables.put(t, [0x01], [0x42])
        var seen: [[UInt8]] = []
        try tables.scan(t, from: [0x01]) { key, _ in
            seen.append(key)
            return seen.count < 3
        }
        #expect(seen == [[0x01], [0x01, 0x00], [0x80, 0x01]])
        #expect(try tables.get(t, [0x01]) == [0x42])
        #expect(try tables.delete(t, [0x01]))
        #expect(try !tables.delete(t, [0x01]))
        #expect(try tables.withValue(t, [0x01]) { $0 == nil })
        try tables.removeAll(t)
        #expect(tables.entries(t).isEmpty)
    }
}
