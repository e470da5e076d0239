import EventLog
import Foundation
import Testing

@Suite("Tailing across processes", .timeLimit(.minutes(2)))
struct TailTests {
    static func seqs(_ lines: [String]) -> [UInt64] {
        lines.compactMap { line in
            guard line.hasPrefix("record ") else { return nil }
            return UInt64(line.dropFirst(7).prefix { $0 != " " })
        }
    }

    @Test func aReaderInAnotherProcessReceivesEveryRecordInOrder() async throws {
        let dir = TemporaryDirectory()
        let log = try openLog(dir.path)
        try await log.append((0..<10).map { testEvent($0) })
        let reader = try HelperProcess(["tail", "--dir", dir.path, "--from", "1", "--count", "310"])
        #expect(await reader.nextLine() == "ready")
        // Single appends and batches, while the reader waits at the end of the log.
        for i in 10..<110 { try await log.append([testEvent(i)]) }
        for batch in 0..<10 { try await log.append((0..<20).map { testEvent(110 + batch * 20 + $0) }) }
        let (status, lines) = await reader.finish()
        #expect(status == 0)
        #expect(Self.seqs(lines) == Array(1...310))
        #expect(lines.last == "done 310")
        await log.close()
    }

    @Test func aLateReaderCatchesUpFromItsCheckpointThenGoesLive() async throws {
        let dir = TemporaryDirectory()
        let log = try openLog(dir.path)
        try await log.append((0..<100).map { testEvent($0) })
        // First run: reads 30 records, saving its checkpoint after each, and stops.
        let first = try await runHelper(["tail", "--dir", dir.path, "--checkpoint", "reader-a", "--count", "30"])
        #expect(Self.seqs(first.lines) == Array(1...30))
        #expect(try log.checkpoint("reader-a") == 30)
        // Second run resumes after 30: catches up on 31...100 from disk, then receives new commits live.
        let second = try HelperProcess(["tail", "--dir", dir.path, "--checkpoint", "reader-a", "--count", "100"])
        var seen: [UInt64] = []
        while seen.last != 100, let line = await second.nextLine() {
            seen += Self.seqs([line])
        }
        #expect(seen == Array(31...100))
        for i in 100..<130 { try await log.append([testEvent(i)]) }
        let (status, rest) = await second.finish()
        #expect(status == 0)
        #expect(Self.seqs(rest) == Array(101...130))
        #expect(try log.checkpoint("reader-a") == 130)
        await log.close()
    }

    @Test func aTailInThisProcessWakesOnCommitAndEndsOnCancel() async throws {
        let dir = TemporaryDirectory()
        let log = try openLog(dir.path)
        let (received, continuation) = AsyncStream<UInt64>.makeStream()
        let reader = Task {
            for try await record in log.tail(from: 1) { continuation.yield(record.seq) }
            continuation.finish()
        }
        var iterator = received.makeAsyncIterator()
        for i in 0..<20 {
            let seq = try await log.append([testEvent(i)]).lowerBound
            #expect(await iterator.next() == seq)
        }
        reader.cancel()
        #expect(await iterator.next() == nil)
        try await reader.value
        await log.close()
    }

    @Test func aTailWakesByPollingWhenNoDoorbellRings() async throws {
        // Another process commits but its doorbell ring is lost (as when a writer dies between commit and
        // ring): the poll fallback still delivers. Removing the doorbell file makes the inotify watch useless.
        let dir = TemporaryDirectory()
        let log = try openLog(dir.path) { $0.pollInterval = .milliseconds(20) }
        let (received, continuation) = AsyncStream<UInt64>.makeStream()
        let reader = Task {
            for try await record in log.tail(from: 1) { continuation.yield(record.seq) }
        }
        var iterator = received.makeAsyncIterator()
        try await log.append([testEvent(0)])
        #expect(await iterator.next() == 1)
        try FileManager.default.removeItem(atPath: dir.sub("doorbell"))
        let helper = try await runHelper(["append", "--dir", dir.path, "--writer", "other", "--count", "3"])
        #expect(helper.status == 0)
        #expect(await iterator.next() == 2)
        #expect(await iterator.next() == 3)
        #expect(await iterator.next() == 4)
        reader.cancel()
        await log.close()
    }
}

@Suite("Closing", .timeLimit(.minutes(1)))
struct CloseTests {
    @Test func closingEndsTailsAndRefusesFurtherWork() async throws {
        let dir = TemporaryDirectory()
        let log = try openLog(dir.path)
        try await log.append([testEvent(0)])
        let (received, continuation) = AsyncStream<UInt64>.makeStream()
        let reader = Task {
            for try await record in log.tail(from: 1) { continuation.yield(record.seq) }
            continuation.finish()
        }
        var iterator = received.makeAsyncIterator()
        #expect(await iterator.next() == 1)
        await log.close()
        // The tail waiting at the end of the log ends instead of touching a closed environment.
        #expect(await iterator.next() == nil)
        try await reader.value
        #expect(throws: EventLogError(.closed, "")) { try log.lastSeq() }
        await #expect(throws: EventLogError(.closed, "")) { try await log.append([testEvent(1)]) }
        // Closed for good in this process: it can be opened again.
        let again = try openLog(dir.path)
        #expect(try again.lastSeq() == 1)
        await again.close()
    }

    @Test func withLogClosesTheLogAndRemovesItsDirectoryWhenTheBodyThrows() async throws {
        struct Failed: Error {}
        var opened: EventLog?
        var directory = ""
        do {
            try await withLog { log in
                opened = log
                directory = log.configuration.directory
                try await log.append([testEvent(0)])
                throw Failed()
            }
            Issue.record("withLog did not rethrow the body's error")
        } catch is Failed {}
        let log = try #require(opened)
        #expect(!directory.isEmpty)
        // The writer thread has ended (appends are refused), the environment is closed, the directory is gone.
        await #expect(throws: EventLogError(.closed, "")) { try await log.append([testEvent(1)]) }
        #expect(throws: EventLogError(.closed, "")) { try log.lastSeq() }
        #expect(!FileManager.default.fileExists(atPath: directory))
    }
}

@Suite("Closing while tails wait and appends run", .timeLimit(.minutes(3)))
struct CloseRaceTests {
    /// How one tail ended.
    enum TailEnd: Equatable { case finished, closed }

    @Test func closeRacingWaitingTailsAndAppendsEndsEveryTailAndReturns() async throws {
        for iteration in 0..<200 {
            let dir = TemporaryDirectory()
            let log = try openLog(dir.path) {
                $0.durability = .unsynced
                $0.pollInterval = .milliseconds(10)
            }
            try await log.append([testEvent(0)])
            let ends = try await withDeadline(.seconds(10), "close racing tails (iteration \(iteration))") {
                try await withThrowingTaskGroup(of: TailEnd?.self) { group in
                    // Tails that wait at the end of the log for the next record.
                    for _ in 0..<3 {
                        group.addTask {
                            do {
                                for try await _ in log.tail(from: 2) {}
                                return .finished
                            } catch let error as EventLogError where error.code == .closed {
                                return .closed
                            }
                        }
                    }
                    // Appends until the log refuses them.
                    for writer in 0..<2 {
                        group.addTask {
                            var i = 1
                            while true {
                                do {
                                    try await log.append([testEvent(i, writer: "w\(writer)")])
                                } catch let error as EventLogError where error.code == .closed {
                                    return nil
                                }
                                i += 1
                            }
                        }
                    }
                    // Two closers at once, at a varying point of the race: closing is idempotent.
                    for closer in 0..<2 {
                        group.addTask {
                            for _ in 0..<((iteration + closer) % 7) { await Task.yield() }
                            await log.close()
                            return nil
                        }
                    }
                    var ends: [TailEnd] = []
                    for try await end in group { if let end { ends.append(end) } }
                    return ends
                }
            }
            #expect(ends.count == 3)
            #expect(throws: EventLogError(.closed, "")) { try log.lastSeq() }
            // Closed for good: the environment can be opened again in this process.
            let again = try openLog(dir.path)
            #expect(try again.lastSeq() >= 1)
            await again.close()
        }
    }
}
