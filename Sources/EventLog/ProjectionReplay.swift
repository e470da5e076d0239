import Foundation

/// A stored record as a projector decoded it: the record, its envelope and its event (`nil` when the
/// projector does not know the record's type).
public struct DecodedRecord<Event: Sendable>: Sendable {
    /// The stored record (with its payload bytes, for display).
    public var record: Record
    public var meta: RecordMeta
    public var event: Event?

    public init(_ record: Record, event: Event?) {
        self.record = record
        meta = RecordMeta(record)
        self.event = event
    }
}

/// The one loop that replays stored records through a projector: used by the in-place projection upgrade,
/// the scratch rebuild (`replay --at`, `verify`) and every reader that needs the decoded history (invariant
/// checks, audits).
///
/// Records are read on the calling thread (a transaction is bound to its thread), in batches; each batch's
/// payloads are decoded on all cores but one while the calling thread hands the previous batch, in seq order,
/// to `body`. A record whose payload does not decode stops the replay with an error naming its seq: nothing
/// is ever skipped silently. (A record of a type the projector does not know is not a failure: it is passed on
/// with a `nil` event, as the projector itself ignores it when it is appended.)
public enum ProjectionReplay {
    /// Records per batch unless told otherwise.
    public static let defaultBatch = 10_000

    /// Replays `first...last`. `read(from, limit)` returns up to `limit` records from `from` on; a batch also
    /// ends at each seq of `stops`, so `body` sees the state there at the end of a batch.
    public static func run<P: Projector>(
        _ projector: P, from first: UInt64, through last: UInt64, batch: Int = defaultBatch, stops: [UInt64] = [],
        read: (_ from: UInt64, _ limit: Int) throws -> [Record],
        _ body: ([DecodedRecord<P.Event>]) throws -> Void
    ) throws {
        guard first <= last else { return }
        let stops = stops.filter { $0 >= first && $0 <= last }.sorted()
        let size = max(1, batch)
        func next(from seq: UInt64) throws -> BatchDecoding<P>? {
            guard seq <= last else { return nil }
            let stop = stops.first { $0 >= seq } ?? last
            let records = try read(seq, Int(min(UInt64(size), stop - seq + 1)))
            return records.isEmpty ? nil : BatchDecoding(projector, records)
        }
        var upcoming = try next(from: first)
        while let decoding = upcoming {
            let (records, decoded) = decoding.wait()
            guard let final = records.last else { return }
            upcoming = try next(from: final.seq + 1)
            try body(try decoded.get())
        }
    }

    /// The records `first...last` of `log`, decoded by `projector`, handed to `body` in batches.
    public static func run<P: Projector>(
        _ projector: P, of log: EventLog, from first: UInt64 = 1, through last: UInt64? = nil,
        batch: Int = defaultBatch, stops: [UInt64] = [], _ body: ([DecodedRecord<P.Event>]) throws -> Void
    ) throws {
        let end = try last ?? log.lastSeq()
        try run(
            projector, from: first, through: end, batch: batch, stops: stops,
            read: { try log.records(from: $0, limit: $1) }, body)
    }

    /// Cores to decode on: all but the one that applies.
    static var decodingThreads: Int { max(1, ProcessInfo.processInfo.activeProcessorCount - 1) }
}

/// One batch being decoded on background threads. Touches no transaction: records own their bytes.
private final class BatchDecoding<P: Projector>: @unchecked Sendable {
    // `decoded` is written before `done` signals and read only after `wait()`.
    private let records: [Record]
    private var decoded: Result<[DecodedRecord<P.Event>], EventLogError> = .success([])
    private let done = DispatchSemaphore(value: 0)

    init(_ projector: P, _ records: [Record]) {
        self.records = records
        DispatchQueue.global().async { [self] in
            decoded = Self.decode(projector, records)
            done.signal()
        }
    }

    func wait() -> (records: [Record], decoded: Result<[DecodedRecord<P.Event>], EventLogError>) {
        done.wait()
        return (records, decoded)
    }

    private static func decode(_ projector: P, _ records: [Record]) -> Result<[DecodedRecord<P.Event>], EventLogError> {
        let count = records.count
        let output = UnsafeMutablePointer<DecodedRecord<P.Event>>.allocate(capacity: count)
        let failures = FailureSlot()
        let chunks = min(ProjectionReplay.decodingThreads, max(1, count))
        let chunkSize = (count + chunks - 1) / chunks
        let slots = Slots(base: output)
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            let range = (chunk * chunkSize)..<min(count, (chunk + 1) * chunkSize)
            for index in range {
                let record = records[index]
                do throws(EventLogError) {
                    let event = try projector.decodeStopping(record)
                    (slots.base + index).initialize(to: DecodedRecord(record, event: event))
                } catch {
                    (slots.base + index).initialize(to: DecodedRecord(record, event: nil))
                    failures.record(index, error)
                }
            }
        }
        let result = Array(UnsafeBufferPointer(start: output, count: count))
        output.deinitialize(count: count)
        output.deallocate()
        if let failure = failures.first { return .failure(failure) }
        return .success(result)
    }
}

/// Each concurrent iteration initializes only its own index range; `concurrentPerform` returns before the
/// buffer is read.
private struct Slots<T>: @unchecked Sendable {
    let base: UnsafeMutablePointer<T>
}

/// The failure of the lowest index, so the error names the first record that does not decode.
private final class FailureSlot: @unchecked Sendable {  // `lock` guards `stored`.
    private let lock = NSLock()
    private var stored: (index: Int, error: EventLogError)?

    var first: EventLogError? { lock.withLock { stored?.error } }

    func record(_ index: Int, _ error: EventLogError) {
        lock.withLock {
            if let stored, stored.index <= index { return }
            stored = (index, error)
        }
    }
}

extension EventLog {
    /// Applies `batch` to this log's projection tables in one write transaction on the calling thread, beside
    /// the group-commit writer: for scratch environments that hold projection state only (a rebuild replays
    /// another log's records into them), where nothing else writes. Blocks; call it off the cooperative pool.
    ///
    /// - Throws: ``EventLogError/Code/invalidArgument`` when `projector` is not this log's projector.
    ///
    /// The batch is applied as a bulk replay (``TableWriter/replaying``): call
    /// ``finishProjectionReplay(_:)`` before reading the tables.
    @available(*, noasync, message: "blocks on LMDB's write lock; run it on a thread of its own")
    public func applyToProjections<P: Projector>(_ projector: P, _ batch: [DecodedRecord<P.Event>]) throws {
        guard let projection = writer.projectionBinding, projection.type == ObjectIdentifier(P.self) else {
            throw EventLogError(.invalidArgument, "\(P.self) is not the projector this log was opened with")
        }
        let env = try lmdbOnly("a rebuild's scratch copy").env
        while true {
            do {
                try env.withWriteTransaction { txn in
                    let tables = TableWriter(txn: txn.view, projectionTables: projection.tables, replaying: true)
                    for record in batch {
                        if let event = record.event { try projector.apply(event, record.meta, to: tables) }
                    }
                }
                return
            } catch let error as EventLogError where error.code == .mapFull {
                guard try env.grow() else { throw error }
            }
        }
    }
}

extension EventLog {
    /// Completes this log's projection tables after ``applyToProjections(_:_:)`` (``Projector/finishReplay(_:)``),
    /// in one write transaction on the calling thread.
    @available(*, noasync, message: "blocks on LMDB's write lock; run it on a thread of its own")
    public func finishProjectionReplay<P: Projector>(_ projector: P) throws {
        guard let projection = writer.projectionBinding, projection.type == ObjectIdentifier(P.self) else {
            throw EventLogError(.invalidArgument, "\(P.self) is not the projector this log was opened with")
        }
        let env = try lmdbOnly("a rebuild's scratch copy").env
        while true {
            do {
                try env.withWriteTransaction { txn in
                    try projector.finishReplay(TableWriter(txn: txn.view, projectionTables: projection.tables))
                }
                return
            } catch let error as EventLogError where error.code == .mapFull {
                guard try env.grow() else { throw error }
            }
        }
    }
}
