import EventLog
import Foundation
import Testing

@Suite("Several processes on one environment", .timeLimit(.minutes(2)))
struct MultiProcessTests {
    @Test(arguments: [2, 4])
    func separateProcessesAppendIntoOneGaplessOrder(processes: Int) async throws {
        let dir = TemporaryDirectory()
        let perProcess = 400
        let results = try await withThrowingTaskGroup(of: (Int32, [String]).self) { group in
            for p in 0..<processes {
                group.addTask {
                    // Mixed batch sizes so commits of different sizes interleave.
                    try await runHelper([
                        "append", "--dir", dir.path, "--writer", "proc-\(p)", "--count", "\(perProcess)",
                        "--batch", "\([1, 7, 3, 16][p % 4])",
                    ])
                }
            }
            var all: [(Int32, [String])] = []
            for try await result in group { all.append(result) }
            return all
        }
        for (status, lines) in results {
            #expect(status == 0, "helper failed: \(lines)")
            #expect(lines.last == "done \(perProcess)")
        }
        let log = try openLog(dir.path)
        let records = try log.records(from: 1)
        #expect(records.map(\.seq) == Array(1...UInt64(processes * perProcess)))
        var perWriter: [String: [Int]] = [:]
        var instances: [String: Set<UUID>] = [:]
        for record in records {
            let payload = try testPayload(record)
            perWriter[payload.writer, default: []].append(payload.i)
            instances[record.writer.workerID, default: []].insert(record.writer.instanceID)
            #expect(record.writer.workerID == payload.writer)
        }
        #expect(perWriter.count == processes)
        for (_, indices) in perWriter { #expect(indices == Array(0..<perProcess)) }
        #expect(instances.values.allSatisfy { $0.count == 1 })
        let stamps = records.map(\.timestamp)
        #expect(stamps == stamps.sorted(), "the log clock never decreases across processes")
        await log.close()
    }

    @Test func aWriterKilledInsideItsTransactionNeitherBlocksNorLosesAcknowledgedAppends() async throws {
        let dir = TemporaryDirectory()
        // This process opens the environment first and keeps it open across the crash.
        let log = try openLog(dir.path)
        try await log.append([testEvent(0)])
        let helper = try HelperProcess([
            "append-acked", "--dir", dir.path, "--writer", "victim", "--count", "25", "--hold", "yes",
        ])
        let lines = await helper.lines(until: "in-txn")
        #expect(lines.last == "in-txn", "helper said: \(lines)")
        let acked = lines.compactMap { line -> UInt64? in
            line.hasPrefix("acked ") ? UInt64(line.dropFirst(6)) : nil
        }
        #expect(acked.count == 25)
        // The helper now holds LMDB's writer mutex inside an open write transaction.
        helper.kill(SIGKILL)
        #expect(helper.process.terminationReason == .uncaughtSignal)
        // The robust mutex lets this process take the writer lock; the dead transaction left nothing.
        let seq = try await log.append([testEvent(1)]).lowerBound
        #expect(seq == 27)
        let records = try log.records(from: 1)
        #expect(records.map(\.seq) == Array(1...27))
        #expect(!records.contains { $0.type == "test.never-committed" })
        let stored = Set(records.map(\.seq))
        #expect(acked.allSatisfy(stored.contains))
        #expect(try records.filter { $0.writer.workerID == "victim" }.map { try testPayload($0).i } == Array(0..<25))
        // Another process can write next, too.
        let after = try await runHelper(["append", "--dir", dir.path, "--writer", "next", "--count", "5"])
        #expect(after.status == 0)
        #expect(try log.lastSeq() == 32)
        await log.close()
    }
}
