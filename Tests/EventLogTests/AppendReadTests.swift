import EventLog
import Foundation
import Testing

@Suite("Append and read", .timeLimit(.minutes(2)))
struct AppendReadTests {
    @Test func roundTripKeepsEveryEnvelopeField() async throws {
        let dir = TemporaryDirectory()
        let log = try openLog(dir.path, worker: "wa-1")
        let first = try await log.append([
            PendingEvent(
                type: "test.appended", schemaVersion: 3, payload: Array("{\"a\":1}".utf8),
                correlationID: "conv-42", causationID: nil),
            PendingEvent(type: "test.other", payload: [], correlationID: nil, causationID: 1),
        ])
        #expect(first == 1..<3)
        let records = try log.records(from: 1)
        #expect(records.count == 2)
        let a = records[0]
        #expect(a.seq == 1)
        #expect(a.type == "test.appended")
        #expect(a.schemaVersion == 3)
        #expect(a.payload == Array("{\"a\":1}".utf8))
        #expect(a.correlationID == "conv-42")
        #expect(a.causationID == nil)
        #expect(a.writer == log.configuration.writer)
        let b = records[1]
        #expect(b.correlationID == nil)
        #expect(b.causationID == 1)
        #expect(b.payload.isEmpty)
        #expect(b.timestamp >= a.timestamp)
        #expect(try log.record(at: 2) == b)
        #expect(try log.record(at: 3) == nil)
        #expect(try log.lastSeq() == 2)
        await log.close()
    }

    @Test func reopenKeepsEveryRecordAndSeqsStayGapless() async throws {
        let dir = TemporaryDirectory()
        var log = try openLog(dir.path)
        for i in 0..<50 { try await log.append([testEvent(i)]) }
        try await log.append((50..<100).map { testEvent($0) })
        await log.close()
        log = try openLog(dir.path)
        let more = try await log.append([testEvent(100)])
        #expect(more == 101..<102)
        let records = try log.records(from: 1)
        #expect(records.map(\.seq) == Array(1...101))
        #expect(try records.map { try testPayload($0).i } == Array(0...100))
        var previous = LogTimestamp(microseconds: .min)
        for record in records {
            #expect(record.timestamp >= previous)
            previous = record.timestamp
        }
        await log.close()
    }

    @Test func concurrentAppendersShareCommitsAndKeepTheirOwnOrder() async throws {
        let dir = TemporaryDirectory()
        let log = try openLog(dir.path)
        let tasks = 64
        let perTask = 40
        try await withThrowingTaskGroup(of: [UInt64].self) { group in
            for t in 0..<tasks {
                group.addTask {
                    var seqs: [UInt64] = []
                    for i in 0..<perTask {
                        seqs.append(try await log.append([testEvent(i, writer: "task-\(t)")]).lowerBound)
                    }
                    return seqs
                }
            }
            for try await seqs in group { #expect(seqs == seqs.sorted()) }
        }
        let records = try log.records(from: 1)
        #expect(records.map(\.seq) == Array(1...UInt64(tasks * perTask)))
        var perWriter: [String: [Int]] = [:]
        for record in records {
            let payload = try testPayload(record)
            perWriter[payload.writer, default: []].append(payload.i)
        }
        #expect(perWriter.count == tasks)
        for (_, indices) in perWriter { #expect(indices == Array(0..<perTask)) }
        await log.close()
    }

    @Test func snapshotIsAPointInTimeView() async throws {
        let dir = TemporaryDirectory()
        let log = try openLog(dir.path)
        try await log.append((0..<10).map { testEvent($0) })
        // A plain thread holds a snapshot open while this task commits another record.
        let appended = DispatchSemaphore(value: 0)
        let (opened, openedContinuation) = AsyncStream<UInt64>.makeStream()
        let (result, resultContinuation) = AsyncStream<(UInt64, Int)>.makeStream()
        Thread {
            let seen = try? log.withSnapshot { snapshot -> (UInt64, Int) in
                openedContinuation.yield(try snapshot.lastSeq)
                appended.wait()
                return (try snapshot.lastSeq, try snapshot.records(from: 1).count)
            }
            resultContinuation.yield(seen ?? (0, 0))
        }.start()
        var openedIterator = opened.makeAsyncIterator()
        #expect(await openedIterator.next() == 10)
        try await log.append([testEvent(10)])
        appended.signal()
        var resultIterator = result.makeAsyncIterator()
        let inside = await resultIterator.next()
        #expect(inside?.0 == 10)
        #expect(inside?.1 == 10)
        #expect(try log.lastSeq() == 11)
        await log.close()
    }

    @Test func unknownEventTypeIsReadableAsRawRecord() async throws {
        let dir = TemporaryDirectory()
        let log = try openLog(dir.path)
        let seq = try await log.append([
            PendingEvent(type: "future.event.v9", schemaVersion: 9, payload: Array("{\"new\":true}".utf8))
        ]).lowerBound
        let record = try #require(try log.record(at: seq))
        #expect(record.type == "future.event.v9")
        #expect(record.schemaVersion == 9)
        #expect(record.payloadText == "{\"new\":true}")
        await log.close()
    }

    @Test(arguments: [
        PendingEvent(type: "", payload: []),
        PendingEvent(type: "x", payload: [], correlationID: String(repeating: "c", count: 256)),
    ])
    func invalidEventsAreRejectedBeforeTouchingTheLog(_ event: PendingEvent) async throws {
        let dir = TemporaryDirectory()
        let log = try openLog(dir.path)
        try await log.append([testEvent(0)])
        await #expect(throws: EventLogError(.invalidArgument, "")) { try await log.append([testEvent(1), event]) }
        #expect(try log.lastSeq() == 1)
        await log.close()
    }
}
