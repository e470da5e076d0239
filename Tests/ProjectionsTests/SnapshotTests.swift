import EventLog
import SwitchboardEvents
import Foundation
import Projections
import Testing

/// Snapshots of projection state: state at a seq rebuilt from the nearest snapshot equals the rebuild from
/// seq 1, and snapshots that cannot be trusted or read are not used.
@Suite("Projection snapshots", .timeLimit(.minutes(2)))
struct SnapshotTests {
    /// Job cycles, one in three left running and one in five failed, so state changes shape over the log.
    func activity(_ engine: Switchboard, _ round: Int, jobs: Int = 12) async throws {
        for j in 0..<jobs {
            _ = try await engine.enqueueJob(
                NewJob(
                    jobID: "job-\(round)-\(j)", idempotencyKey: "k-\(round)-\(j)", conversationID: "c\(j % 4)-\(round)")
            )
        }
        var index = 0
        while let claim = try await engine.claimJob() {
            defer { index += 1 }
            if index % 3 == 2 { continue }
            if index % 5 == 4 {
                _ = try await engine.failJob(
                    claim.job.jobID, token: claim.token, reason: "r", message: "m", retryable: false)
            } else {
                _ = try await engine.completeJob(claim.job.jobID, token: claim.token)
            }
        }
    }

    /// The digest (at `seq`) of the state `Rebuild.state` builds up to `seq` with `snapshots`, and the snapshot
    /// it started from.
    func fromSnapshots(
        _ log: EventLog, _ seq: UInt64, _ snapshots: StateSnapshots, _ dir: TemporaryDirectory, _ name: String
    ) async throws -> (digest: StateDigest, base: StateSnapshots.Entry?) {
        let (reader, base) = try await Rebuild.state(
            of: log, upTo: seq, snapshots: snapshots, scratchDirectory: dir.sub(name), logger: quietLogger)
        return try await reader.log.closeAfter {
            var digest = try reader.digest()
            digest.seq = seq
            return (digest, base)
        }
    }

    func fromStart(_ log: EventLog, _ seq: UInt64, _ dir: TemporaryDirectory, _ name: String) async throws
        -> StateDigest
    {
        try await Rebuild.digest(of: log, upTo: seq, scratchDirectory: dir.sub(name), logger: quietLogger)
    }

    @Test func stateFromTheNearestSnapshotEqualsTheRebuildFromSeqOne() async throws {
        let dir = TemporaryDirectory()
        try await withEngine { engine in
            let snapshots = StateSnapshots(logDirectory: engine.log.configuration.directory)
            try await activity(engine, 1)
            let first = try #require(try snapshots.take(of: engine.log, logger: quietLogger))
            #expect(first.seq == (try engine.log.lastSeq()))
            #expect(first.format == "switchboard/\(SwitchboardProjector.format.version)")
            #expect(first.entries > 0 && first.bytes > 0)
            #expect(try snapshots.take(of: engine.log, logger: quietLogger) == nil)  // one exists at this seq
            try await activity(engine, 2)
            #expect(try snapshots.take(of: engine.log, minimumGap: 10_000, logger: quietLogger) == nil)  // too close
            let second = try #require(try snapshots.take(of: engine.log, logger: quietLogger))
            try await activity(engine, 3)
            #expect(snapshots.list().map(\.seq) == [first.seq, second.seq])
            let last = try engine.log.lastSeq()

            for (n, seq) in [first.seq - 1, first.seq, first.seq + 1, second.seq - 2, second.seq, last].enumerated() {
                let (digest, base) = try await fromSnapshots(engine.log, seq, snapshots, dir, "state-\(n)")
                #expect(base?.seq == (seq >= second.seq ? second.seq : seq >= first.seq ? first.seq : nil))
                #expect(digest == (try await fromStart(engine.log, seq, dir, "full-\(n)")), "at seq \(seq)")
            }
            // The rebuild reports digests at the snapshots' seqs, which equal the snapshots' own content.
            let outcome = try await Rebuild.run(
                of: engine.log, digestsAt: [first.seq, second.seq], scratchDirectory: dir.sub("verify"),
                logger: quietLogger
            )
            for entry in [first, second] {
                let copy = try snapshots.open(entry, logger: quietLogger)
                var digest = try StateReader(log: copy).digest()
                await copy.close()
                digest.seq = entry.seq
                #expect(outcome.digests[entry.seq] == digest)
            }
            #expect(outcome.final == (try engine.digest()))
        }
    }

    @Test func pruningKeepsTheNewestAndIncompleteOrForeignSnapshotsAreIgnored() async throws {
        try await withEngine { engine in
            let snapshots = StateSnapshots(logDirectory: engine.log.configuration.directory)
            var seqs: [UInt64] = []
            for round in 1...4 {
                try await activity(engine, round, jobs: 3)
                seqs.append(try #require(try snapshots.take(of: engine.log, logger: quietLogger)).seq)
            }
            #expect(snapshots.prune(keeping: 2) == Array(seqs.prefix(2)))
            #expect(snapshots.list().map(\.seq) == Array(seqs.suffix(2)))

            // A copy a killed process left half-done is neither listed nor used, and the next snapshot clears it.
            try FileManager.default.createDirectory(
                atPath: snapshots.directory + "/.staging-99999", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(
                atPath: snapshots.directory + "/00000000000000000001", withIntermediateDirectories: true)
            #expect(snapshots.list().map(\.seq) == Array(seqs.suffix(2)))
            // A snapshot in another projection format is not used.
            let newest = try #require(snapshots.list().last)
            let info = newest.path + "/snapshot.json"
            let text = try String(contentsOfFile: info, encoding: .utf8)
            try text.replacingOccurrences(
                of: "switchboard/\(SwitchboardProjector.format.version)", with: "switchboard/0"
            ).write(
                toFile: info, atomically: true, encoding: .utf8)
            #expect(snapshots.nearest(atOrBefore: .max)?.seq == seqs[2])
            try await activity(engine, 5, jobs: 2)
            _ = try #require(try snapshots.take(of: engine.log, logger: quietLogger))
            #expect(!FileManager.default.fileExists(atPath: snapshots.directory + "/.staging-99999"))
        }
    }

    @Test func aSnapshotWhoseTablesAreInAnOlderFormatFallsBackToSeqOne() async throws {
        let dir = TemporaryDirectory()
        try await withEngine { engine in
            let snapshots = StateSnapshots(logDirectory: engine.log.configuration.directory)
            try await activity(engine, 1, jobs: 4)
            let entry = try #require(try snapshots.take(of: engine.log, logger: quietLogger))
            let seq = try engine.log.lastSeq()
            try await activity(engine, 2, jobs: 2)
            // The listing claims this build's format, but the tables inside are an older format's (written by a
            // projector one version behind): the scratch copy reports them stale and the rebuild starts from seq 1.
            try FileManager.default.removeItem(atPath: entry.path)
            let older = try await openOlderLog(dir.sub("older"), from: engine.log, upTo: seq)
            _ = try older.exportProjections(to: entry.path)
            await older.close()
            let (digest, base) = try await fromSnapshots(engine.log, seq, snapshots, dir, "state")
            #expect(base == nil)
            #expect(digest == (try await fromStart(engine.log, seq, dir, "full")))
        }
    }

    @Test func aDamagedOrVanishedSnapshotFallsBackToSeqOne() async throws {
        let dir = TemporaryDirectory()
        try await withEngine { engine in
            let snapshots = StateSnapshots(logDirectory: engine.log.configuration.directory)
            try await activity(engine, 1, jobs: 4)
            let entry = try #require(try snapshots.take(of: engine.log, logger: quietLogger))
            let seq = entry.seq
            try Data(repeating: 0x5A, count: 4096).write(to: URL(fileURLWithPath: entry.path + "/data.mdb"))
            let (digest, base) = try await fromSnapshots(engine.log, seq, snapshots, dir, "damaged")
            #expect(base == nil)
            #expect(digest == (try await fromStart(engine.log, seq, dir, "full")))
            // Pruned between listing and use.
            let outcome = try await Rebuild.run(
                of: engine.log, upTo: seq,
                from: StateSnapshots.Entry(
                    seq: seq, time: nil, format: "switchboard/2", entries: 0, bytes: 0, path: dir.sub("gone")),
                scratchDirectory: dir.sub("vanished"), logger: quietLogger)
            #expect(outcome.base == nil)
            #expect(outcome.final == digest)
        }
    }

    /// The Switchboard projector under the previous format version.
    struct OlderFormat: Projector {
        let inner = SwitchboardProjector()
        var tables: [String] { inner.tables }
        var format: ProjectionFormat {
            ProjectionFormat(name: "switchboard", version: SwitchboardProjector.format.version - 1)
        }
        func decode(_ record: Record) throws -> SwitchboardEvent? { try inner.decode(record) }
        func apply(_ event: SwitchboardEvent, _ meta: RecordMeta, to tables: some TableWriting) throws {
            try inner.apply(event, meta, to: tables)
        }
    }

    /// A log holding `source`'s records up to `seq`, projected by ``OlderFormat``.
    func openOlderLog(_ directory: String, from source: EventLog, upTo seq: UInt64) async throws -> EventLog {
        let plain = try EventLog(
            EventLogConfiguration(directory: directory, writer: WriterIdentity(role: "t", workerID: "copy")),
            logger: quietLogger)
        let records = try source.records(from: 1, limit: Int(seq))
        try await plain.append(records.map { PendingEvent(type: $0.type, payload: $0.payload) })
        await plain.close()
        var configuration = EventLogConfiguration(
            directory: directory, writer: WriterIdentity(role: "t", workerID: "copy"))
        configuration.projector = OlderFormat()
        return try EventLog(configuration, logger: quietLogger)
    }
}
