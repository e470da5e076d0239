import EventLog
import Foundation
import Synchronization
import Testing

/// `Durability.durable`: commits leave their meta page unsynced and callers are acknowledged once a later sync
/// (the next commit's, or an explicit one when the writer is idle) has put it on disk.
@Suite("Deferred meta sync: acknowledged only once durable", .timeLimit(.minutes(3)))
struct DeferredSyncTests {
    /// Sequential appends, then concurrent ones, then a decider: the mix that exercises both ways a group
    /// becomes durable (an explicit sync when idle, the next group's commit under load).
    static func appendMix(_ log: EventLog) async throws -> [Range<UInt64>] {
        var returned: [Range<UInt64>] = []
        for i in 0..<6 { returned.append(try await log.append([testEvent(i)])) }
        try await withThrowingTaskGroup(of: [Range<UInt64>].self) { group in
            for task in 0..<8 {
                group.addTask {
                    var mine: [Range<UInt64>] = []
                    for i in 0..<6 {
                        let events = (0...(i % 3)).map { testEvent(1000 * task + 10 * i + $0, writer: "t\(task)") }
                        mine.append(try await log.append(events))
                    }
                    return mine
                }
            }
            for try await mine in group { returned += mine }
        }
        let committed = try await log.transact { context in
            try context.append(testEvent(99_999))
        }
        returned.append(committed.seqs)
        return returned
    }

    @Test func aPowerCutAtAnyAcknowledgementLosesNothingAcknowledged() async throws {
        let dir = TemporaryDirectory()
        let model = PowerCutModel(directory: dir.path)
        let log = try openLog(dir.path) { $0.writerProbe = { model.observe($0) } }
        try model.start()
        let returned = try await log.closeAfter { try await Self.appendMix(log) }
        let report = model.report
        #expect(report.problems.isEmpty, "\(report.problems)")
        #expect(report.checks > 0)
        // Cuts that undo a commit did happen: the copies lacked the newest commit, yet held every acknowledgement.
        #expect(report.cuts > 0)
        #expect(report.syncs > 0, "the sequential appends are synced explicitly")
        let acknowledged = Set(report.acknowledged.flatMap { Array($0) })
        #expect(
            returned.allSatisfy { $0.allSatisfy(acknowledged.contains) }, "every returned seq went through the probe")
        // 6 sequential events, 8 tasks of 1+2+3+1+2+3 events, 1 from the decider.
        #expect(acknowledged == Set(1...103))
    }

    /// The same check on `relaxed`, which acknowledges at once: the model must catch what a power cut undoes
    /// there, or it would prove nothing about `durable`.
    @Test func theModelCatchesAcknowledgementsBeforeTheMetaSync() async throws {
        let dir = TemporaryDirectory()
        let model = PowerCutModel(directory: dir.path)
        let log = try openLog(dir.path) {
            $0.durability = .relaxed
            $0.writerProbe = { model.observe($0) }
        }
        try model.start()
        _ = try await log.closeAfter { try await Self.appendMix(log) }
        let report = model.report
        #expect(report.checks > 0)
        #expect(report.syncs == 0)
        #expect(report.problems.contains { $0.contains("lost by a power cut") }, "\(report.problems)")
    }

    @Test func aSequentialAppenderPaysTheCommitAndTheMetaSyncForEachAppend() async throws {
        try await withLog { log in
            let commits = log.commitCount
            let syncs = log.syncCount
            for i in 0..<20 { try await log.append([testEvent(i)]) }
            #expect(log.commitCount - commits == 20)
            #expect(log.syncCount - syncs == 40)
        }
    }

    @Test func manyConcurrentAppendersAllReturnAndShareAboutOneSyncPerGroupCommit() async throws {
        let appenders = 64
        let perAppender = 40
        // A window long enough that resumed callers are back within it even on a loaded machine (the test suite
        // runs in parallel on two cores); with callers that never come back it only delays the final syncs.
        try await withLog({ $0.groupCommitWindow = .milliseconds(100) }) { log in
            let commits = log.commitCount
            let syncs = log.syncCount
            let returned = try await withDeadline(.seconds(90), "\(appenders) appenders") {
                try await withThrowingTaskGroup(of: [UInt64].self) { group in
                    for task in 0..<appenders {
                        group.addTask {
                            var seqs: [UInt64] = []
                            for i in 0..<perAppender {
                                seqs += try await log.append([testEvent(i, writer: "a\(task)")])
                            }
                            return seqs
                        }
                    }
                    var all: [UInt64] = []
                    for try await seqs in group { all += seqs }
                    return all
                }
            }
            let total = appenders * perAppender
            #expect(returned.sorted() == Array(1...UInt64(total)))
            #expect(try log.lastSeq() == UInt64(total))
            let groupCommits = log.commitCount - commits
            let groupSyncs = log.syncCount - syncs
            let perCommit = Double(groupSyncs) / Double(groupCommits)
            #expect(groupCommits < total / 4, "appends share group commits: \(groupCommits) for \(total)")
            #expect(perCommit < 1.5, "\(groupSyncs) syncs for \(groupCommits) group commits of \(total) appends")
        }
    }

    @Test func aDeciderThatWritesNothingCostsNoSync() async throws {
        try await withLog { log in
            try await log.append([testEvent(0)])
            let syncs = log.syncCount
            let seen = try await log.transact { context in context.lastSeq }
            #expect(seen.value == 1)
            #expect(seen.seqs.isEmpty)
            #expect(log.syncCount == syncs)
        }
    }

    /// A group that does not fit the map fails alone; the group before it, committed and waiting for its meta
    /// sync, is still acknowledged, and every append returns.
    @Test func aFullMapUnderConcurrentLoadFailsOnlyWhatDidNotFit() async throws {
        let dir = TemporaryDirectory()
        let big = PendingEvent(type: "test.big", payload: [UInt8](repeating: 0x42, count: 12 << 10))
        let log = try openLog(dir.path) {
            $0.initialMapSize = 1 << 20
            $0.maxMapSize = 2 << 20
        }
        let outcomes = try await withDeadline(.seconds(60), "appenders until the map is full") {
            await withTaskGroup(of: [Result<Range<UInt64>, EventLogError>].self) { group in
                for _ in 0..<16 {
                    group.addTask {
                        var mine: [Result<Range<UInt64>, EventLogError>] = []
                        while true {
                            do {
                                mine.append(.success(try await log.append([big])))
                            } catch let error as EventLogError {
                                mine.append(.failure(error))
                                return mine
                            } catch {
                                return mine
                            }
                        }
                    }
                }
                var all: [Result<Range<UInt64>, EventLogError>] = []
                for await mine in group { all += mine }
                return all
            }
        }
        let acknowledged = outcomes.compactMap { try? $0.get() }.map(\.lowerBound).sorted()
        let failures = outcomes.compactMap { outcome -> EventLogError? in
            if case .failure(let error) = outcome { return error }
            return nil
        }
        #expect(failures.count == 16)
        #expect(failures.allSatisfy { $0.code == .mapFull }, "\(failures)")
        #expect(!acknowledged.isEmpty)
        #expect(acknowledged == Array(1...UInt64(acknowledged.count)), "acknowledged seqs are the log's first ones")
        #expect(try log.lastSeq() == UInt64(acknowledged.count), "nothing committed went unacknowledged")
        await log.close()
        let reopened = try openLog(dir.path)
        #expect(try reopened.records(from: 1).map(\.seq) == acknowledged)
        await reopened.close()
    }
}
