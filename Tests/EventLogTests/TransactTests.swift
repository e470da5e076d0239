import EventLog
import Foundation
import Testing

/// The write-transaction seam: read current state, decide, append or reject — atomically.
@Suite("Deciders inside the write transaction", .timeLimit(.minutes(2)))
struct TransactTests {
    static let counterKey = Array("counter".utf8)

    static func readCounter(_ value: [UInt8]?) -> Int {
        guard let value, value.count == 8 else { return 0 }
        return Int(value.withUnsafeBytes { $0.loadUnaligned(as: Int64.self) })
    }

    static func bytes(_ n: Int) -> [UInt8] { withUnsafeBytes(of: Int64(n)) { Array($0) } }

    struct Rejected: Error {}

    @Test func concurrentDecidersSeeCurrentStateAndNeverLoseAnUpdate() async throws {
        let dir = TemporaryDirectory()
        let log = try openLog(dir.path, tables: ["state"])
        let state = log.table("state")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<200 {
                group.addTask {
                    _ = try await log.transact { context in
                        let current = Self.readCounter(try context.get(state, Self.counterKey))
                        try context.put(state, Self.counterKey, Self.bytes(current + 1))
                        return try context.append(
                            PendingEvent(type: "counter.incremented", payload: Array("{\"to\":\(current + 1)}".utf8)))
                    }
                }
            }
            try await group.waitForAll()
        }
        let final = try log.withSnapshot { Self.readCounter(try $0.get(state, Self.counterKey)) }
        #expect(final == 200)
        // Each event carries the value it decided on: 1...200 in log order.
        let decided = try log.records(from: 1).map { record in
            try JSONDecoder().decode([String: Int].self, from: Data(record.payload))["to"]!
        }
        #expect(decided == Array(1...200))
        await log.close()
    }

    @Test func aRejectedCommandRollsBackOnlyItsOwnChanges() async throws {
        let dir = TemporaryDirectory()
        let log = try openLog(dir.path, tables: ["state"])
        let state = log.table("state")
        // Many commands race into the same group commits; every third one writes, appends, then rejects.
        let results = try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
            for n in 0..<90 {
                group.addTask {
                    do {
                        _ = try await log.transact { context in
                            try context.put(state, Array("key-\(n)".utf8), [1])
                            try context.append(testEvent(n))
                            if n % 3 == 0 { throw Rejected() }
                        }
                        return (n, true)
                    } catch is Rejected {
                        return (n, false)
                    }
                }
            }
            var all: [Int: Bool] = [:]
            for try await (n, ok) in group { all[n] = ok }
            return all
        }
        #expect(results.count == 90)
        #expect(results.filter { !$0.value }.keys.sorted() == stride(from: 0, to: 90, by: 3).map { $0 })
        let records = try log.records(from: 1)
        #expect(records.map(\.seq) == Array(1...60))
        let committed = Set(try records.map { try testPayload($0).i })
        #expect(committed == Set((0..<90).filter { $0 % 3 != 0 }))
        try log.withSnapshot { snapshot in
            for n in 0..<90 {
                let stored = try snapshot.get(state, Array("key-\(n)".utf8))
                #expect((stored != nil) == (n % 3 != 0))
            }
        }
        await log.close()
    }

    @Test func contextReportsSeqsTimeAndReadsItsOwnAppends() async throws {
        let dir = TemporaryDirectory()
        let log = try openLog(dir.path)
        try await log.append([testEvent(0)])
        let committed = try await log.transact { context -> [UInt64] in
            #expect(context.lastSeq == 1)
            let a = try context.append(testEvent(1))
            let b = try context.append(testEvent(2))
            #expect(try context.record(at: a)?.type == "test.appended")
            #expect(try context.record(at: 1) != nil)
            return [a, b]
        }
        #expect(committed.value == [2, 3])
        #expect(committed.seqs == 2..<4)
        let stored = try #require(try log.record(at: 3))
        #expect(stored.timestamp == committed.timestamp)
        await log.close()
    }

    @Test func logClockNeverGoesBackwardsEvenWhenTheWallClockDoes() async throws {
        // A writer whose clock runs an hour ahead (another process, a skewed host) stamps records; a later
        // writer with a correct clock keeps that time instead of going back, so expiry never moves back.
        let dir = TemporaryDirectory()
        let ahead = LogTimestamp.wallClock().advanced(by: .seconds(3600))
        var log = try openLog(dir.path) { $0.wallClock = { ahead } }
        try await log.append([testEvent(0)])
        await log.close()
        log = try openLog(dir.path)
        let committed = try await log.transact { context in context.now }
        #expect(committed.value == ahead)
        try await log.append([testEvent(1)])
        let stamps = try log.records(from: 1).map(\.timestamp)
        #expect(stamps.count == 2)
        #expect(stamps.allSatisfy { $0 == ahead })
        await log.close()
    }
}
