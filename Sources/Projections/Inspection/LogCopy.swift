import EventLog
import Foundation
import Logging

/// What `replay copy` did and found.
public struct CopyReport: Sendable, Equatable, Codable {
    /// Where the records came from (never a password).
    public var source: String
    /// Where they went (never a password).
    public var target: String
    /// Records copied.
    public var records: Int
    /// The source's last seq when the copy began (0: empty).
    public var lastSeq: UInt64
    /// The target's last seq after the copy.
    public var targetLastSeq: UInt64
    /// Records found identical in both logs (seq, time, writer, type, payload and envelope checksum).
    public var identicalRecords: Int
    /// The first seqs that differ or are missing on one side (at most ten).
    public var differingSeqs: [UInt64]
    /// The projection state digest of the source: its live tables, or a rebuild from its records when the live
    /// ones are in an older format (``sourceDigestFrom``).
    public var sourceDigest: String
    /// `live` or `rebuild`.
    public var sourceDigestFrom: String
    /// Entries across the source's projection tables.
    public var sourceEntries: Int
    /// The projection state digest of the target's live tables (made by the import, as appends make them).
    public var targetDigest: String
    /// Entries across the target's projection tables.
    public var targetEntries: Int
    /// Seconds spent copying.
    public var seconds: Double
    /// Seconds spent comparing afterwards.
    public var checkSeconds: Double
    /// What differs, in words (empty when equal).
    public var problems: [String]
    /// `true` when every record and the state digests are equal.
    public var equal: Bool
}

/// The copy behind `replay copy`: a whole log moved to another (empty) log, on either backend, then compared.
public enum LogCopy {
    /// Records per page read and per import batch (one group commit each) unless told otherwise.
    public static let defaultBatch = 2_000

    /// Copies every record of `source` into `target` — an empty log, opened with ``SwitchboardProjector`` —
    /// keeping seqs, times and writers, in batches of `batch` (one group commit each), then compares the two:
    /// record count and last seq, every record and its envelope checksum, and the projection state digests.
    ///
    /// - Parameters:
    ///   - sourceName: where the source is, for the report (never a password).
    ///   - targetName: where the target is, for the report.
    ///   - scratchDirectory: where to rebuild the source's state when its live tables are in an older format.
    /// - Throws: ``EventLogError`` with ``EventLogError/Code/notContinuing`` when the target holds records, or
    ///   another log error that stopped the copy (the target then holds a prefix of the source).
    public static func run(
        from source: EventLog, to target: EventLog, sourceName: String, targetName: String,
        batch: Int = defaultBatch, scratchDirectory: String, logger: Logger
    ) async throws -> CopyReport {
        let size = max(1, batch)
        let held = try await target.read { try $0.lastSeq }
        guard held == 0 else {
            throw EventLogError(
                .notContinuing,
                "the target \(targetName) already holds records (seqs 1...\(held)); copy only into an empty log")
        }
        let clock = ContinuousClock()
        let started = clock.now
        let last = try await source.read { try $0.lastSeq }
        var copied: UInt64 = 0
        var pending = try await page(of: source, from: 1, through: last, limit: size)
        while let final = pending.last {
            async let following = page(of: source, from: final.seq + 1, through: last, limit: size)
            try await target.importRecords(pending, after: copied)
            copied = final.seq
            logger.debug("copy.batch", metadata: ["copy.seq": "\(copied)", "copy.last": "\(last)"])
            pending = try await following
        }
        let copySeconds = started.duration(to: clock.now)
        let checked = clock.now

        var problems: [String] = []
        let compared = try await compare(source, target, through: last, batch: size)
        let sourceNow = try await source.read { try $0.lastSeq }
        let targetLast = try await target.read { try $0.lastSeq }
        if sourceNow != last {
            problems.append(
                "the source moved from seq \(last) to \(sourceNow) during the copy: stop every writer and copy again "
                    + "into an empty target")
        }
        if copied != last || targetLast != last {
            problems.append("the target ends at seq \(targetLast), the source at \(last)")
        }
        if !compared.differing.isEmpty {
            problems.append(
                "\(compared.differingCount) record(s) differ, from seq \(compared.differing[0])")
        }
        let (sourceDigest, from) = try await digest(of: source, through: last, scratch: scratchDirectory, logger)
        let targetDigest = try StateReader.live(target).digest()
        if sourceDigest.hex != targetDigest.hex || sourceDigest.entries != targetDigest.entries {
            problems.append(
                "the projection state differs: source \(sourceDigest.hex.prefix(16))… (\(sourceDigest.entries) "
                    + "entries), target \(targetDigest.hex.prefix(16))… (\(targetDigest.entries) entries)"
                    + (from == "live" ? "; `replay verify` on the source tells whether its live state is sound" : ""))
        }
        return CopyReport(
            source: sourceName, target: targetName, records: Int(copied), lastSeq: last, targetLastSeq: targetLast,
            identicalRecords: compared.identical, differingSeqs: compared.differing, sourceDigest: sourceDigest.hex,
            sourceDigestFrom: from, sourceEntries: sourceDigest.entries, targetDigest: targetDigest.hex,
            targetEntries: targetDigest.entries, seconds: seconds(copySeconds),
            checkSeconds: seconds(checked.duration(to: clock.now)), problems: problems, equal: problems.isEmpty)
    }

    /// Up to `limit` records from `start` on, none past `last`, read in one snapshot off the caller's thread.
    private static func page(of log: EventLog, from start: UInt64, through last: UInt64, limit: Int) async throws
        -> [Record]
    {
        guard start <= last else { return [] }
        let count = Int(min(UInt64(limit), last - start + 1))
        return try await log.read { try $0.records(from: start, limit: count) }
    }

    /// Both logs read page by page side by side: records equal field by field and by envelope checksum.
    private static func compare(_ source: EventLog, _ target: EventLog, through last: UInt64, batch: Int)
        async throws -> (identical: Int, differing: [UInt64], differingCount: Int)
    {
        var identical = 0
        var differing: [UInt64] = []
        var differingCount = 0
        func differs(_ seq: UInt64) {
            differingCount += 1
            if differing.count < 10 { differing.append(seq) }
        }
        var next: UInt64 = 1
        while next <= last {
            let start = next
            async let targetPage = page(of: target, from: start, through: last, limit: batch)
            let ours = try await page(of: source, from: start, through: last, limit: batch)
            let copies = try await targetPage
            let end = min(last, next + UInt64(batch) - 1)
            // Both pages are in seq order; a seq missing on one side leaves its index where it is.
            var (mine, theirs) = (0, 0)
            for seq in next...end {
                let original = mine < ours.count && ours[mine].seq == seq ? ours[mine] : nil
                let copy = theirs < copies.count && copies[theirs].seq == seq ? copies[theirs] : nil
                if original != nil { mine += 1 }
                if copy != nil { theirs += 1 }
                guard let original, let copy, original == copy,
                    try original.envelopeChecksum() == copy.envelopeChecksum()
                else {
                    differs(seq)
                    continue
                }
                identical += 1
            }
            next = end + 1
        }
        return (identical, differing, differingCount)
    }

    /// The source's state digest at `last`: its live tables when current, else a rebuild from its records.
    private static func digest(of log: EventLog, through last: UInt64, scratch: String, _ logger: Logger)
        async throws -> (StateDigest, String)
    {
        if log.projections == .current { return (try StateReader.live(log).digest(), "live") }
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        return (try await Rebuild.digest(of: log, upTo: last, scratchDirectory: scratch, logger: logger), "rebuild")
    }

    private static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
