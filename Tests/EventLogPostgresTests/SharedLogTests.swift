import EventLog
import EventLogPostgres
import Foundation
import Testing

/// Several processes on one PostgreSQL log (here, several logs opened in one process, each with its own
/// connections, writer thread and lock waits — as separate hosts would be): one gapless order, every append
/// once, and each one's tail woken by the others' commits.
@Suite("Shared PostgreSQL log", .serialized)
struct SharedLogTests {
    @Test func twoWritersShareOneGaplessLogAndWakeEachOthersTails() async throws {
        try await withBackendLog(.postgres, worker: "a", tables: ["kv"]) { a, another in
            let b = try another("b")
            let tail = Task {
                var seen: [UInt64] = []
                for try await record in a.tail(from: 1) {
                    seen.append(record.seq)
                    if seen.count == 200 { break }
                }
                return seen
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (log, name) in [(a, "a"), (b, "b")] {
                    for index in 0..<100 {
                        group.addTask {
                            _ = try await log.transact { context in
                                try context.append(
                                    PendingEvent(type: "test.appended", payload: Array("{\"\(name)\":\(index)}".utf8)))
                                return ()
                            }
                        }
                    }
                }
                for try await _ in group {}
            }
            #expect(try await tail.value == Array(1...200))
            let records = try b.records(from: 1)
            #expect(records.map(\.seq) == Array(1...200))
            #expect(Set(records.map(\.payload)).count == 200)
            #expect(Set(records.map(\.writer.workerID)) == ["a", "b"])
        }
    }

    /// Every writer decides against state current at its commit: a counter incremented 2 × 50 times by two
    /// logs ends at 100 (a lost update would end lower).
    @Test func decisionsSeeTheOtherWritersCommits() async throws {
        try await withBackendLog(.postgres, worker: "a", tables: ["kv"]) { a, another in
            let b = try another("b")
            let key = Array("counter".utf8)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for log in [a, b] {
                    let table = log.table("kv")
                    for _ in 0..<50 {
                        group.addTask {
                            _ = try await log.transact { context in
                                let current =
                                    try context.get(table, key).map { Int(String(decoding: $0, as: UTF8.self))! } ?? 0
                                try context.put(table, key, Array(String(current + 1).utf8))
                                return ()
                            }
                        }
                    }
                }
                for try await _ in group {}
            }
            let value = try a.withSnapshot { try $0.get(a.table("kv"), key) }
            #expect(value.map { String(decoding: $0, as: UTF8.self) } == "100")
        }
    }

    /// Snapshots taken inside snapshots, deeper than the pool keeps connections, each get their own: none waits for
    /// another (one thread waiting for a connection it holds itself would hang).
    @Test func nestedSnapshotsDeeperThanThePoolDoNotWait() async throws {
        try await withBackendLog(.postgres) { log, _ in
            try await log.append([conformanceEvent(1)])
            func nested(_ depth: Int) throws -> [UInt64] {
                try log.withSnapshot { snapshot in
                    let seq = try snapshot.lastSeq
                    return depth == 0 ? [seq] : [seq] + (try nested(depth - 1))
                }
            }
            #expect(try nested(9) == Array(repeating: 1, count: 10))
        }
    }
}
