import EventLog
import EventLogPostgres
import Foundation
import Synchronization
import Testing

/// The log's guarantees, run against both backends: the same calls, the same answers. (The LMDB-only ones —
/// map growth, reader slots, a SIGKILLed writer mid-transaction — stay in EventLogTests.)
@Suite("Backend conformance", .serialized)
struct BackendConformanceTests {
    @Test(arguments: LogBackendKind.allCases)
    func appendsAreGaplessAndReadBackAsWritten(backend: LogBackendKind) async throws {
        try await withBackendLog(backend) { log, _ in
            try await withThrowingTaskGroup(of: Range<UInt64>.self) { group in
                for index in 0..<40 { group.addTask { try await log.append([conformanceEvent(index)]) } }
                for try await _ in group {}
            }
            var caused = conformanceEvent(99)
            caused.correlationID = "conversation-1"
            caused.causationID = 3
            caused.payloadEncoding = PayloadEncoding(rawValue: 7)
            let seqs = try await log.append([caused, conformanceEvent(100)])
            #expect(seqs == 41..<43)
            let records = try log.records(from: 1)
            #expect(records.map(\.seq) == Array(1...42))
            #expect(Set(records.prefix(40).map(\.payload)).count == 40)
            #expect(zip(records, records.dropFirst()).allSatisfy { $0.timestamp <= $1.timestamp })
            let read = try #require(try log.record(at: 41))
            #expect(read.correlationID == "conversation-1" && read.causationID == 3)
            #expect(read.payloadEncoding.rawValue == 7 && read.payload == caused.payload)
            #expect(read.writer == log.configuration.writer)
            #expect(try log.record(at: 43) == nil && log.lastSeq() == 42)
            #expect(try log.records(from: 40, limit: 2).map(\.seq) == [40, 41])
        }
    }

    /// A command that throws after writing leaves nothing behind; the others of its group commit.
    @Test(arguments: LogBackendKind.allCases)
    func aRejectedCommandLeavesNoTrace(backend: LogBackendKind) async throws {
        struct Rejected: Error {}
        try await withBackendLog(backend, tables: ["kv"]) { log, _ in
            let table = log.table("kv")
            let outcomes = try await withThrowingTaskGroup(of: Bool.self) { group in
                for index in 0..<30 {
                    group.addTask {
                        do {
                            _ = try await log.transact { context in
                                try context.put(table, Array("k\(index)".utf8), [UInt8(index)])
                                try context.append(conformanceEvent(index))
                                if index % 3 == 0 { throw Rejected() }
                                return index
                            }
                            return true
                        } catch is Rejected {
                            return false
                        }
                    }
                }
                var outcomes: [Bool] = []
                for try await outcome in group { outcomes.append(outcome) }
                return outcomes
            }
            #expect(outcomes.filter { $0 }.count == 20)
            let records = try log.records(from: 1)
            #expect(records.map(\.seq) == Array(1...20))
            let written = try records.map { try JSONDecoder().decode([String: Int].self, from: Data($0.payload))["i"]! }
            #expect(Set(written) == Set((0..<30).filter { $0 % 3 != 0 }))
            try log.withSnapshot { snapshot in
                for index in 0..<30 {
                    let value = try snapshot.get(table, Array("k\(index)".utf8))
                    #expect(value == (index % 3 == 0 ? nil : [UInt8(index)]), "k\(index)")
                }
                #expect(try snapshot.count(table) == 20)
            }
        }
    }

    /// Inside a transaction, reads see its own writes, and scans merge them with what is stored, in LMDB's key
    /// order — compared, step by step, with the in-memory reference backend.
    @Test(arguments: LogBackendKind.allCases)
    func aTransactionSeesItsOwnWritesInKeyOrder(backend: LogBackendKind) async throws {
        try await withBackendLog(backend, tables: ["kv"]) { log, _ in
            let table = log.table("kv")
            let reference = MemoryTables(["kv"])
            let mirror = try #require(reference.table("kv"))
            var random = SeededGenerator(state: 26)
            for round in 0..<6 {
                // A round of random puts and deletes, with reads and scans checked as they go.
                let operations = (0..<40).map { _ in
                    (
                        put: random.next() % 3 != 0, key: randomKey(&random),
                        value: [UInt8(truncatingIfNeeded: random.next())]
                    )
                }
                let starts = (0..<4).map { _ in randomKey(&random) }
                for (put, key, value) in operations {
                    if put { try reference.put(mirror, key, value) } else { try reference.delete(mirror, key) }
                }
                let expected = try starts.map { start in try scanned(reference, mirror, from: start, limit: 7) }
                let expectedAll = try scanned(reference, mirror, from: nil, limit: .max)
                let (reads, seen) = try await log.transact { context -> ([Bool], [[[UInt8]]]) in
                    let writer = context.tables
                    var reads: [Bool] = []
                    for (put, key, value) in operations {
                        if put { try context.put(table, key, value) } else { try context.delete(table, key) }
                        reads.append(try writer.get(table, key) == (put ? value : nil))
                    }
                    return (
                        reads,
                        try starts.map { try scanned(writer, table, from: $0, limit: 7) }
                            + [try scanned(writer, table, from: nil, limit: .max)]
                    )
                }.value
                #expect(reads.allSatisfy { $0 }, "round \(round): a read missed the transaction's own write")
                #expect(seen == expected + [expectedAll], "round \(round)")
                let stored = try log.withSnapshot { try scanned($0, table, from: nil) }
                #expect(stored == expectedAll, "round \(round), after commit")
            }
        }
    }

    /// Keys outside LMDB's limits are refused on both, so a log moves between them as it is.
    @Test(arguments: LogBackendKind.allCases)
    func keysOutsideLMDBsLimitsAreRefused(backend: LogBackendKind) async throws {
        try await withBackendLog(backend, tables: ["kv"]) { log, _ in
            let table = log.table("kv")
            for key in [[], [UInt8](repeating: 7, count: 512)] {
                await #expect(throws: EventLogError.self) {
                    try await log.transact { context in try context.put(table, key, [1]) }
                }
            }
            _ = try await log.transact { context in try context.put(table, [UInt8](repeating: 7, count: 511), [1]) }
            #expect(try log.withSnapshot { try $0.count(table) } == 1)
        }
    }

    @Test(arguments: LogBackendKind.allCases)
    func tailsSeeEveryCommitInOrderAndCheckpointsPersist(backend: LogBackendKind) async throws {
        try await withBackendLog(backend) { log, _ in
            let tail = Task {
                var seqs: [UInt64] = []
                for try await record in log.tail(from: 1) {
                    seqs.append(record.seq)
                    if seqs.count == 60 { break }
                }
                return seqs
            }
            try await withThrowingTaskGroup(of: Range<UInt64>.self) { group in
                for index in 0..<60 { group.addTask { try await log.append([conformanceEvent(index)]) } }
                for try await _ in group {}
            }
            #expect(try await tail.value == Array(1...60))
            try await log.saveCheckpoint("reader", seq: 42)
            try await log.saveCheckpoint("reader", seq: 57)
            #expect(try log.checkpoint("reader") == 57 && log.checkpoint("other") == nil)
            #expect(try log.lastSeq() == 60, "a checkpoint appends nothing")
        }
    }
}

/// A test event carrying `index`.
func conformanceEvent(_ index: Int) -> PendingEvent {
    PendingEvent(type: "test.appended", payload: Array("{\"i\":\(index)}".utf8))
}

func randomKey(_ random: inout SeededGenerator) -> [UInt8] {
    let length = 1 + Int(random.next() % 4)
    return (0..<length).map { _ in [0x00, 0x01, 0x7F, 0x80, 0xFF][Int(random.next() % 5)] }
}

/// Up to `limit` entries of a scan from `start`.
func scanned(_ tables: some TableReading, _ table: Table, from start: [UInt8]?, limit: Int) throws -> [[UInt8]] {
    var out: [[UInt8]] = []
    guard limit > 0 else { return out }
    try tables.scan(table, from: start) { key, value in
        out.append(key + [0xEE] + value)
        return out.count < limit
    }
    return out
}

func scanned(_ snapshot: borrowing Snapshot, _ table: Table, from start: [UInt8]?) throws -> [[UInt8]] {
    var out: [[UInt8]] = []
    try snapshot.scan(table, from: start) { key, value in
        out.append(key + [0xEE] + value)
        return true
    }
    return out
}
