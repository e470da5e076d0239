import EventLog
import SwitchboardEvents
import Foundation
import Logging

/// One problem `verify` found.
public struct VerifyProblem: Sendable, Equatable, Codable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable, Codable, CaseIterable {
        /// A seq without a record.
        case missingRecord = "missing_record"
        /// A record that fails its checksum or does not parse (``EventLogError`` of the read).
        case unreadableRecord = "unreadable_record"
        /// The live projection tables are in another format than this build's.
        case staleProjections = "stale_projections"
        /// The live state differs from a rebuild.
        case projectionMismatch = "projection_mismatch"
        /// A snapshot differs from the rebuild at its seq.
        case snapshotMismatch = "snapshot_mismatch"
        /// A snapshot that cannot be opened.
        case snapshotUnreadable = "snapshot_unreadable"
    }

    public var kind: Kind
    /// The record's or snapshot's seq, when the problem has one.
    public var seq: UInt64?
    /// What is wrong and what to do.
    public var message: String

    public var description: String {
        switch kind {
        case .missingRecord, .unreadableRecord: "seq \(seq ?? 0): \(message)"
        case .staleProjections, .projectionMismatch: "projections: \(message)"
        case .snapshotMismatch, .snapshotUnreadable: "snapshot \(seq ?? 0): \(message)"
        }
    }
}

/// What `verify` checked and found.
public struct VerifyReport: Sendable, Equatable, Codable {
    /// Records read.
    public var records: Int
    /// The last seq of the log.
    public var lastSeq: UInt64
    public var problems: [VerifyProblem]
    /// What the digest comparison found (or why it was skipped), in words.
    public var digests: String
    /// `true` when there is no problem.
    public var ok: Bool
}

/// The checks behind `replay verify`.
public enum Verification {
    /// Checks every record (checksums, gapless seqs), then — when they are all sound and the live tables are in
    /// this build's format — rebuilds every projection in `scratchDirectory` and compares its digest with the live
    /// state and with every snapshot of `snapshots`.
    public static func run(
        _ log: EventLog, snapshots: StateSnapshots, scratchDirectory: String, logger: Logger
    ) async throws -> VerifyReport {
        var expected: UInt64 = 1
        var problems: [VerifyProblem] = []
        var count = 0
        try log.withSnapshot { snapshot in
            let last = try snapshot.lastSeq
            // Record by record, so one corrupt record is reported and the check goes on past it.
            while expected <= last {
                do {
                    if try snapshot.record(at: expected) != nil {
                        count += 1
                    } else {
                        problems.append(VerifyProblem(kind: .missingRecord, seq: expected, message: "missing (gap)"))
                    }
                } catch let error as EventLogError {
                    problems.append(
                        VerifyProblem(
                            kind: .unreadableRecord, seq: expected, message: "\(error.code): \(error.message)"))
                }
                expected += 1
            }
        }
        var digests = "skipped (records failed)"
        if problems.isEmpty && log.projections != .current {
            digests = "skipped (live projections are stale)"
            problems.append(
                VerifyProblem(
                    kind: .staleProjections, seq: nil,
                    message: "\(log.projections); an agent of this build rebuilds them when it starts"))
        } else if problems.isEmpty {
            let live = try StateReader.live(log).digest()
            defer { try? FileManager.default.removeItem(atPath: scratchDirectory) }
            // Snapshots are checked against the same rebuild: its digest at each snapshot's seq.
            let entries = snapshots.list()
                .filter { $0.format == SwitchboardProjector.format.description && $0.seq <= live.seq }
            let rebuilt = try await Rebuild.run(
                of: log, upTo: live.seq, digestsAt: Set(entries.map(\.seq)), scratchDirectory: scratchDirectory,
                logger: logger)
            if live == rebuilt.final {
                digests = "rebuild digest \(live.hex.prefix(16))… equals live (\(live.entries) entries)"
            } else {
                digests = "rebuild digest \(rebuilt.final.hex.prefix(16))… differs from live \(live.hex.prefix(16))…"
                problems.append(VerifyProblem(kind: .projectionMismatch, seq: nil, message: digests))
            }
            for entry in entries {
                do {
                    let copy = try snapshots.open(entry, logger: logger)
                    var stored = try await copy.closeAfter { try StateReader(log: copy).digest() }
                    stored.seq = entry.seq
                    if stored != rebuilt.digests[entry.seq] {
                        problems.append(
                            VerifyProblem(
                                kind: .snapshotMismatch, seq: entry.seq,
                                message: "digest \(stored.hex.prefix(16))… differs from the rebuild's "
                                    + "\(rebuilt.digests[entry.seq]?.hex.prefix(16) ?? "none")… at that seq; "
                                    + "delete \(entry.path)"))
                    }
                } catch {
                    problems.append(
                        VerifyProblem(
                            kind: .snapshotUnreadable, seq: entry.seq,
                            message: "unreadable (\(error)); delete \(entry.path)"))
                }
            }
            if !entries.isEmpty { digests += "; \(entries.count) snapshot(s) checked" }
        }
        return VerifyReport(
            records: count, lastSeq: expected - 1, problems: problems, digests: digests, ok: problems.isEmpty)
    }
}
