import EventLog
import Foundation
@testable import Projections
import Testing

/// A rebuild keeps the job states it changes in memory until its batch ends (`SwitchboardProjector.forReplay()`)
/// and reads each batch in parts on background threads. Whatever the batch size — a job enqueued in one batch
/// and claimed, failed or completed in the next, or in the same one — the state it builds is the live state.
@Suite("Rebuild in batches", .timeLimit(.minutes(2)))
struct RebuildBatchTests {
    @Test func aRebuildInBatchesOfAnySizeEqualsTheLiveState() async throws {
        let dir = TemporaryDirectory()
        let clock = TestClock()
        let engine = try openEngine(dir.sub("log"), clock: clock)
        func round(_ n: Int) async throws {
            for c in 0..<4 {
                var job = NewJob(idempotencyKey: "k-\(n)-\(c)", conversationID: "c\(c)")
                job.maxAttempts = 2
                _ = try await engine.enqueueJob(job)
            }
            // One conversation's job runs a child job; one fails once and then completes; one dies; one is left
            // pending or running for the next round.
            for step in 0..<3 {
                guard let claim = try await engine.claimJob() else { break }
                let id = claim.job.jobID
                switch step {
                case 0:
                    var child = NewJob(idempotencyKey: "child-\(n)", conversationID: claim.job.conversationID)
                    child.parentJobID = id
                    _ = try await engine.enqueueJob(child)
                    _ = try await engine.heartbeatJob(id, token: claim.token)
                    _ = try await engine.completeJob(id, token: claim.token, result: "done \(n)")
                case 1:
                    _ = try await engine.failJob(
                        id, token: claim.token, reason: "provider_error", message: "503", retryable: true)
                default:
                    _ = try await engine.failJob(
                        id, token: claim.token, reason: "bad_request", message: "400", retryable: false)
                }
            }
            clock.advance(.seconds(30))  // retries come due
            let delivery = try await engine.enqueueDelivery(
                NewDelivery(
                    idempotencyKey: "m-\(n)", channel: "web", accountID: "default", recipient: "u\(n % 3)",
                    conversationID: "c0", text: "hello \(n)"))
            _ = delivery
        }
        for n in 0..<6 { try await round(n) }
        // A point in the middle, with jobs claimed and pending: a rebuild that stops there must see it too.
        let middle = try engine.log.lastSeq()
        let middleDigest = try engine.digest()
        for n in 6..<12 { try await round(n) }
        let live = try engine.digest()
        let last = try engine.log.lastSeq()
        #expect(last > 150)

        for batch in [1, 2, 3, 7, 64, 10_000] {
            let rebuilt = try await Rebuild.digest(
                of: engine.log, scratchDirectory: dir.sub("batch-\(batch)"), batch: batch, logger: quietLogger)
            #expect(rebuilt == live, "batch \(batch)")
        }
        let outcome = try await Rebuild.run(
            of: engine.log, digestsAt: [middle], scratchDirectory: dir.sub("middle"), batch: 5, logger: quietLogger)
        #expect(outcome.digests[middle] == middleDigest)
        #expect(outcome.final == live)
        let upToMiddle = try await Rebuild.digest(
            of: engine.log, upTo: middle, scratchDirectory: dir.sub("up-to-middle"), logger: quietLogger)
        #expect(upToMiddle == middleDigest)
        await engine.close()
    }

    /// A batch that fills the scratch environment's map is applied again in a grown one, from the state before
    /// it (the job states it had kept in memory are dropped with the transaction), and the rebuild equals the live
    /// state. (The job transitions set fields from their events, so applying one twice would not show here: what
    /// this checks is the growth path with states kept in memory.)
    @Test func aBatchThatFillsTheMapIsAppliedAgainFromTheStateBeforeIt() async throws {
        let dir = TemporaryDirectory()
        let engine = try openEngine(dir.sub("log"))
        let text = String(repeating: "x", count: 2_000)
        for n in 0..<900 {
            var job = NewJob(idempotencyKey: "k\(n)", conversationID: "c\(n % 50)")
            job.payload = ["text": text]
            _ = try await engine.enqueueJob(job)
            if n % 3 == 0, let claim = try await engine.claimJob() {
                _ = try await engine.completeJob(claim.job.jobID, token: claim.token, result: "r\(n)")
            }
        }
        let live = try engine.digest()
        let rebuilt = try await Rebuild.run(
            of: engine.log, scratchDirectory: dir.sub("small-map"), initialMapSize: 1 << 20, logger: quietLogger)
        #expect(rebuilt.final == live)
        // The map grew: the state does not fit in the 1 MiB it started with.
        let size = try FileManager.default.attributesOfItem(atPath: dir.sub("small-map/data.mdb"))[.size] as? Int
        #expect((size ?? 0) > 1 << 20)
        await engine.close()
    }

    /// Building the claim indexes after a rebuild reads only the status of each stored job until it finds one
    /// that waits or runs: that reading agrees with the full decoding, and a cut value is corrupt, not a guess.
    @Test(arguments: JobStatus.allCases)
    func aStoredJobsStatusReadsWithoutDecodingTheRest(status: JobStatus) throws {
        var job = jobState(
            "j-\(status)", root: "root-1", seq: 9, status: status, visibleUntil: LogTimestamp(microseconds: 5))
        job.payload = ["text": "hello", "tools": "1", "é": "ü"]
        job.result = status == .completed ? "done" : nil
        let stored = StateCoding.encode(job)
        #expect(try stored.withUnsafeBytes { try JobState.status(of: $0) } == status)
        #expect(try StateCoding.decode(JobState.self, stored).status == status)
        let cut = Array(stored.prefix(stored.count / 2))
        #expect(throws: DecodingError.self) { try cut.withUnsafeBytes { try JobState.status(of: $0) } }
    }

    /// The parts of a batch are read concurrently; a damaged record still stops the rebuild with its own seq,
    /// the first one, never a later part's.
    @Test func aCorruptRecordStopsTheRebuildAtItsSeq() async throws {
        let dir = TemporaryDirectory()
        var engine = try openEngine(dir.sub("log"))
        for n in 0..<40 {
            let key = n == 13 ? "marker-rebuild-corrupt-me" : "k\(n)"
            _ = try await engine.enqueueJob(NewJob(idempotencyKey: key, conversationID: "c\(n)"))
        }
        let target = try #require(try engine.log.records(from: 1).first { $0.payloadText.contains("corrupt-me") })
        await engine.close()
        #expect(try corruptEveryOccurrence(of: "marker-rebuild-corrupt-me", in: dir.sub("log/data.mdb")) >= 1)

        engine = try openEngine(dir.sub("log"))
        for batch in [8, 10_000] {
            let error = try await #require(throws: EventLogError.self) {
                _ = try await Rebuild.digest(
                    of: engine.log, scratchDirectory: dir.sub("scratch-\(batch)"), batch: batch, logger: quietLogger)
            }
            #expect(error.code == .corruptRecord, "\(error)")
            #expect(error.seq == target.seq, "\(error)")
        }
        await engine.close()
    }
}
