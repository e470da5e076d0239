import Crypto
import EventLog
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
        for name in ProjectionTables.all {
            let table = log.table(name)
            hasher.update(data: Array("\(name)\u{0}".utf8))
            try snapshot.scan(table) { key, value in
                var lengths = (UInt32(key.count).bigEndian, UInt32(value.count).bigEndian)
                withUnsafeBytes(of: &lengths) { hasher.update(bufferPointer: $0) }
                hasher.update(data: key)
                hasher.update(data: value)
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
        of source: EventLog, upTo seq: UInt64? = nil, scratchDirectory: String, batch: Int = 20_000, logger: Logger
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
    /// The next batch is read and its payloads decoded on the other cores while the writer applies a batch.
    public static func run(
        of source: EventLog, upTo seq: UInt64? = nil, from base: StateSnapshots.Entry? = nil,
        digestsAt: Set<UInt64> = [], scratchDirectory: String, batch: Int = 20_000, logger: Logger
    ) async throws -> Outcome {
        let projector = SwitchboardProjector()
        let last = try seq ?? source.lastSeq()
        let (scratch, start, used) = try openScratch(
            scratchDirectory, base: base.flatMap { $0.seq <= last ? $0 : nil }, logger: logger)
        return try await scratch.closeAfter {
            try await apply(
                source, into: scratch, projector: projector, from: start, upTo: last, base: used,
                digestsAt: digestsAt, batch: batch)
        }
    }

    /// The body of ``run(of:upTo:from:digestsAt:scratchDirectory:batch:logger:)``: applies `source` from `start`
    /// to `last` to the open `scratch` log.
    private static func apply(
        _ source: EventLog, into scratch: EventLog, projector: SwitchboardProjector, from start: UInt64,
        upTo last: UInt64, base used: StateSnapshots.Entry?, digestsAt: Set<UInt64>, batch: Int
    ) async throws -> Outcome {
        let checkpoints = digestsAt.filter { $0 >= start && $0 <= last }.sorted()
        var digests: [UInt64: StateDigest] = [:]
        func digestNow(at seq: UInt64) throws -> StateDigest {
            var digest = try scratch.withSnapshot { try StateDigest.of($0, log: scratch) }
            digest.seq = seq
            return digest
        }
        /// The next batch ends at the next checkpoint, so the state can be digested there.
        @Sendable func decoded(from next: UInt64) throws -> [ProjectedRecord] {
            let stop = checkpoints.first { $0 >= next } ?? last
            // One core fewer than there are: the writer thread applies the previous batch meanwhile, and
            // decoding (about 2 µs a record) keeps ahead of applying (about 5) with the rest.
            return try decodeInParallel(
                source.records(from: next, limit: min(batch, Int(stop - next + 1))),
                threads: ProcessInfo.processInfo.activeProcessorCount - 1)
        }
        var upcoming: Task<[ProjectedRecord], any Error>? =
            start <= last ? Task.detached { try decoded(from: start) } : nil
        while let task = upcoming {
            let projected = try await task.value
            guard let final = projected.last else { break }
            let next = final.seq + 1
            upcoming = next <= last ? Task.detached { try decoded(from: next) } : nil
            _ = try await scratch.transact { context in
                let tables = context.tables
                for record in projected { try projector.apply(record, to: tables) }
            }
            if checkpoints.contains(final.seq) { digests[final.seq] = try digestNow(at: final.seq) }
        }
        return Outcome(final: try digestNow(at: last), digests: digests, base: used)
    }

    /// The scratch environment, and the first seq to apply: a copy of `base` when this build can read it,
    /// otherwise empty.
    static func openScratch(_ directory: String, base: StateSnapshots.Entry?, logger: Logger) throws
        -> (EventLog, start: UInt64, base: StateSnapshots.Entry?)
    {
        func open() throws -> EventLog {
            var configuration = EventLogConfiguration(
                directory: directory, writer: WriterIdentity(role: "rebuild", workerID: "rebuild"))
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

/// Reads a log in batches whose payloads are decoded on every core, then hands records over in seq order.
enum DecodedBatches {
    static func forEach(
        _ log: EventLog, upTo last: UInt64? = nil, batch: Int = 20_000, _ body: (ProjectedRecord) throws -> Void
    ) throws {
        let end = try last ?? log.lastSeq()
        var next: UInt64 = 1
        while next <= end {
            let records = try log.records(from: next, limit: min(batch, Int(end - next + 1)))
            guard let final = records.last else { return }
            for record in try Rebuild.decodeInParallel(records) { try body(record) }
            next = final.seq + 1
        }
    }
}

extension Rebuild {
    /// Decodes the payloads of `records` on several cores (each record independently), so applying them — which
    /// must happen in order, on the writer thread — does not also pay for decoding.
    /// `threads`: how many to decode on (at least one; by default one per core).
    static func decodeInParallel(
        _ records: [Record], threads: Int = ProcessInfo.processInfo.activeProcessorCount
    ) throws -> [ProjectedRecord] {
        var projected = records.map(ProjectedRecord.init)
        let failure = FailureBox()
        let chunks = max(1, threads)
        projected.withUnsafeMutableBufferPointer { buffer in
            let base = DisjointSlots(buffer: buffer)
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                let size = (base.buffer.count + chunks - 1) / chunks
                let range = (chunk * size)..<min(base.buffer.count, (chunk + 1) * size)
                for index in range {
                    do {
                        base.buffer[index].typed = try records[index].event()
                    } catch {
                        failure.set(error)
                    }
                }
            }
        }
        if let error = failure.error { throw error }
        return projected
    }
}

/// Each concurrent iteration writes only its own index range, and `concurrentPerform` returns before the
/// buffer goes away.
private struct DisjointSlots: @unchecked Sendable {
    let buffer: UnsafeMutableBufferPointer<ProjectedRecord>
}

private final class FailureBox: @unchecked Sendable {  // `lock` guards `stored`.
    private let lock = NSLock()
    private var stored: (any Error)?
    var error: (any Error)? { lock.withLock { stored } }
    func set(_ error: any Error) { lock.withLock { if stored == nil { stored = error } } }
}
