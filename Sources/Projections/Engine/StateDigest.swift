import Crypto
import EventLog
import SwitchboardEvents
import Foundation
import Logging

/// A SHA-256 over every projection table (names, keys and values, in order), with the seq it describes.
public struct StateDigest: Sendable, Equatable, CustomStringConvertible {
    /// The last seq the state includes.
    public var seq: UInt64
    /// Entries across all tables.
    public var entries: Int
    /// Hex SHA-256.
    public var hex: String

    public var description: String { "\(hex.prefix(16))… at seq \(seq) (\(entries) entries)" }

    /// The digest of the projection state in `snapshot` (the live state of a log opened with the projector).
    public static func of(_ snapshot: borrowing Snapshot, log: EventLog) throws -> StateDigest {
        var hasher = SHA256()
        var entries = 0
        for name in ProjectionTable.all {
            let table = log.table(name)
            hasher.update(data: Array("\(name)\u{0}".utf8))
            try snapshot.scanBytes(table) { key, value in
                var lengths = (UInt32(key.count).bigEndian, UInt32(value.count).bigEndian)
                withUnsafeBytes(of: &lengths) { hasher.update(bufferPointer: $0) }
                hasher.update(bufferPointer: key)
                hasher.update(bufferPointer: value)
                entries += 1
                return true
            }
        }
        let hex = hasher.finalize().map { String(format: "%02x", $0) }.joined()
        return StateDigest(seq: try snapshot.lastSeq, entries: entries, hex: hex)
    }
}

/// Rebuilds projection state from the log into a scratch environment, to compare with the live state or to
/// see the state as it was at a seq.
public enum Rebuild {
    /// Applies `source`'s records 1...`seq` (all when `nil`) to fresh projection tables in `scratchDirectory`
    /// and returns the digest. The scratch log holds only projection tables (no records).
    public static func digest(
        of source: EventLog, upTo seq: UInt64? = nil, scratchDirectory: String,
        batch: Int = ProjectionReplay.defaultBatch, logger: Logger
    ) async throws -> StateDigest {
        try await run(of: source, upTo: seq, scratchDirectory: scratchDirectory, batch: batch, logger: logger).final
    }

    /// What a rebuild produced.
    public struct Outcome: Sendable {
        /// The digest of the state at the last seq applied.
        public var final: StateDigest
        /// The digests at the seqs asked for in `digestsAt`, by seq.
        public var digests: [UInt64: StateDigest]
        /// The snapshot the rebuild started from (`nil`: from seq 1).
        public var base: StateSnapshots.Entry?
    }

    /// Rebuilds into `scratchDirectory` the state at `seq` (the end when `nil`): from the snapshot `base` when
    /// given and readable by this build (its `data.mdb` is copied first), otherwise from seq 1. Also returns the
    /// digests at each seq of `digestsAt` that lies in the replayed range.
    ///
    /// This is ``ProjectionReplay`` (the one rebuild loop) writing into the scratch copy, one transaction per
    /// batch, on a thread of its own. A record that does not decode stops it with that record's seq.
    ///
    /// `initialMapSize` sizes the scratch environment at first (it grows as it fills; the tests start it small).
    public static func run(
        of source: EventLog, upTo seq: UInt64? = nil, from base: StateSnapshots.Entry? = nil,
        digestsAt: Set<UInt64> = [], scratchDirectory: String, batch: Int = ProjectionReplay.defaultBatch,
        initialMapSize: Int? = nil, logger: Logger
    ) async throws -> Outcome {
        try await onOwnThread {
            let projector = SwitchboardProjector.forReplay()
            let last = try seq ?? source.lastSeq()
            let (scratch, start, used) = try openScratch(
                scratchDirectory, base: base.flatMap { $0.seq <= last ? $0 : nil }, initialMapSize: initialMapSize,
                logger: logger)
            defer { scratch.close() }
            let checkpoints = Set(digestsAt.filter { $0 >= start && $0 <= last })
            var digests: [UInt64: StateDigest] = [:]
            func digestNow(at seq: UInt64) throws -> StateDigest {
                var digest = try scratch.withSnapshot { try StateDigest.of($0, log: scratch) }
                digest.seq = seq
                return digest
            }
            try ProjectionReplay.run(
                projector, of: source, from: start, through: last, batch: batch, stops: checkpoints.sorted()
            ) { records in
                try scratch.applyToProjections(projector, records)
                if let final = records.last?.meta.seq, checkpoints.contains(final) {
                    try scratch.finishProjectionReplay(projector)
                    digests[final] = try digestNow(at: final)
                }
            }
            try scratch.finishProjectionReplay(projector)
            return Outcome(final: try digestNow(at: last), digests: digests, base: used)
        }
    }

    /// The scratch environment, and the first seq to apply: a copy of `base` when this build can read it,
    /// otherwise empty.
    static func openScratch(
        _ directory: String, base: StateSnapshots.Entry?, initialMapSize: Int? = nil, logger: Logger
    ) throws -> (EventLog, start: UInt64, base: StateSnapshots.Entry?) {
        func open() throws -> EventLog {
            var configuration = EventLogConfiguration(
                directory: directory, writer: WriterIdentity(role: "rebuild", workerID: "rebuild"))
            if let initialMapSize { configuration.initialMapSize = initialMapSize }
            configuration.projector = SwitchboardProjector()
            configuration.projectionUpgrade = .leave
            // A scratch copy is rebuilt when in doubt: syncing it would only wait for the disk.
            configuration.durability = .unsynced
            return try EventLog(configuration, logger: logger)
        }
        if let base {
            // Any failure — a snapshot pruned since it was listed, a damaged copy, an older format inside — falls
            // back to seq 1: snapshots only save time.
            var reason = "unreadable"
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                try FileManager.default.copyItem(atPath: base.path + "/data.mdb", toPath: directory + "/data.mdb")
                let scratch = try open()
                if scratch.projections == .current, let seq = try scratch.exportedSeq(), seq == base.seq {
                    return (scratch, seq + 1, base)
                }
                reason = "\(scratch.projections)"
                scratch.close()
            } catch {
                reason = "\(error)"
            }
            logger.warning(
                "snapshot.unusable", metadata: ["snapshot.seq": "\(base.seq)", "snapshot.reason": "\(reason)"])
            try? FileManager.default.removeItem(atPath: directory)
        }
        return (try open(), 1, nil)
    }
}

/// Runs blocking work (LMDB transactions, CPU-bound loops) on a thread of its own, off the cooperative pool.
func onOwnThread<R: Sendable>(_ body: @escaping @Sendable () throws -> R) async throws -> R {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.stackSize = 8 << 20
        thread.start()
    }
}
