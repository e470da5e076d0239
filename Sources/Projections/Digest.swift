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
    ///
    /// The next batch is read and its payloads decoded on the other cores while the writer applies a batch.
    public static func digest(
        of source: EventLog, upTo seq: UInt64? = nil, scratchDirectory: String, batch: Int = 20_000, logger: Logger
    ) async throws -> StateDigest {
        let projector = SwitchboardProjector()
        var configuration = EventLogConfiguration(
            directory: scratchDirectory, writer: WriterIdentity(role: "rebuild", workerID: "rebuild"))
        configuration.projector = projector
        configuration.durability = .relaxed
        let scratch = try EventLog(configuration, logger: logger)
        defer { scratch.close() }
        let last = try seq ?? source.lastSeq()
        @Sendable func decoded(from next: UInt64) throws -> [ProjectedRecord] {
            try decodeInParallel(source.records(from: next, limit: min(batch, Int(last - next + 1))))
        }
        var upcoming: Task<[ProjectedRecord], any Error>? = last >= 1 ? Task.detached { try decoded(from: 1) } : nil
        while let task = upcoming {
            let projected = try await task.value
            guard let final = projected.last else { break }
            let next = final.seq + 1
            upcoming = next <= last ? Task.detached { try decoded(from: next) } : nil
            _ = try await scratch.transact { context in
                let tables = context.tables
                for record in projected { try projector.apply(record, to: tables) }
            }
        }
        var digest = try scratch.withSnapshot { try StateDigest.of($0, log: scratch) }
        digest.seq = last
        return digest
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
    /// Decodes the payloads of `records` on every core (each record independently), so applying them — which
    /// must happen in order, on the writer thread — does not also pay for decoding.
    static func decodeInParallel(_ records: [Record]) throws -> [ProjectedRecord] {
        var projected = records.map(ProjectedRecord.init)
        let failure = FailureBox()
        let chunks = max(1, ProcessInfo.processInfo.activeProcessorCount)
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
