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
            upcoming = try next(from: decoding.seqs.upperBound + 1)
            try body(try decoding.take().get())
        }
    }

    /// The records `first...last` of `log`, decoded by `projector`, handed to `body` in batches.
    ///
    /// Reading needs no transaction of the caller's here, and seqs are gapless, so each batch is read and decoded
    /// on background threads, in parts read in snapshots of their own, while `body` has the one before: the
    /// calling thread only applies.
    public static func run<P: Projector>(
        _ projector: P, of log: EventLog, from first: UInt64 = 1, through last: UInt64? = nil,
        batch: Int = defaultBatch, stops: [UInt64] = [], _ body: ([DecodedRecord<P.Event>]) throws -> Void
    ) throws {
        let end = try last ?? log.lastSeq()
        guard first <= end else { return }
        let stops = stops.filter { $0 >= first && $0 <= end }.sorted()
        let size = UInt64(max(1, batch))
        func next(from seq: UInt64) -> BatchDecoding<P>? {
            guard seq <= end else { return nil }
            let stop = stops.first { $0 >= seq } ?? end
            return BatchDecoding(projector, seq...min(stop, seq + size - 1)) { try log.records(from: $0, limit: $1) }
        }
        var upcoming = next(from: first)
        while let decoding = upcoming {
            upcoming = next(from: decoding.seqs.upperBound + 1)  // read while this one is applied
            var decoded = try decoding.take().get()
            try body(decoded)
            discard(&decoded)
        }
    }

    /// Frees a batch on a background thread: tearing down thousands of records and events would otherwise take
    /// the applying thread's time.
    private static func discard<T: Sendable>(_ batch: inout [T]) {
        let finished = batch
        batch = []
        DispatchQueue.global(qos: .utility).async { withExtendedLifetime(finished) {} }
    }

    /// Cores to decode on: all but the one that applies.
    static var decodingThreads: Int { max(1, ProcessInfo.processInfo.activeProcessorCount - 1) }

    /// Parts a batch read from a log is split into: one per core, at most 8, as each holds a reader slot (LMDB's
    /// `maxReaders`, shared with every process on the log) or a PostgreSQL connection while it reads.
    static var readingParts: Int { min(8, max(1, ProcessInfo.processInfo.activeProcessorCount)) }
}

/// One batch being decoded on background threads — and read there too, when it is made with a range of seqs.
/// Touches no transaction of the caller's: records own their bytes.
private final class BatchDecoding<P: Projector>: @unchecked Sendable {
    /// The seqs of the batch.
    let seqs: ClosedRange<UInt64>
    // Written before `done` signals, read only after `take()` waits for it.
    private var decoded: Result<[DecodedRecord<P.Event>], EventLogError> = .success([])
    private let done = DispatchSemaphore(value: 0)

    init(_ projector: P, _ records: [Record]) {
        seqs = (records.first?.seq ?? 1)...(records.last?.seq ?? 1)
        DispatchQueue.global().async { [self] in
            decoded = Self.decode(projector, count: records.count, parts: ProjectionReplay.decodingThreads) {
                .success(Array(records[$0]))
            }
            done.signal()
        }
    }

    /// Reads `seqs` with `read(from, limit)` — in parts, one per core, each in a snapshot of its own — and
    /// decodes them, on background threads.
    init(
        _ projector: P, _ seqs: ClosedRange<UInt64>,
        read: @escaping @Sendable (_ from: UInt64, _ limit: Int) throws -> [Record]
    ) {
        self.seqs = seqs
        DispatchQueue.global().async { [self] in
            let count = Int(seqs.count)
            decoded = Self.decode(projector, count: count, parts: ProjectionReplay.readingParts) {
                range in
                let from = seqs.lowerBound + UInt64(range.lowerBound)
                do {
                    let records = try read(from, range.count)
                    // Seqs are gapless: a part that is short, or out of place, is a damaged log.
                    let inPlace = zip(records.indices, records).prefix { $1.seq == from + UInt64($0) }.count
                    guard inPlace == range.count else {
                        let missing = from + UInt64(inPlace)
                        return .failure(EventLogError(.corruptRecord, "seq \(missing) is missing from the log"))
                    }
                    return .success(records)
                } catch let error as EventLogError {
                    return .failure(error)
                } catch {
                    return .failure(EventLogError(.corruptRecord, "reading from seq \(from): \(error)"))
                }
            }
            done.signal()
        }
    }

    /// The decoded batch, moved out: this object keeps no reference to it.
    func take() -> Result<[DecodedRecord<P.Event>], EventLogError> {
        done.wait()
        defer { decoded = .success([]) }
        return decoded
    }

    /// Decodes `count` records in `parts` concurrent parts, each getting its records from `records(range)`.
    private static func decode(
        _ projector: P, count: Int, parts: Int, _ records: @Sendable (Range<Int>) -> Result<[Record], EventLogError>
    ) -> Result<[DecodedRecord<P.Event>], EventLogError> {
        guard count > 0 else { return .success([]) }
        let failures = FailureSlot()
        let parts = min(max(1, parts), count)
        let partSize = (count + parts - 1) / parts
        let result = [DecodedRecord<P.Event>](unsafeUninitializedCapacity: count) { buffer, initialized in
            let slots = Slots(base: buffer.baseAddress!)
            let done = DoneParts(parts)
            DispatchQueue.concurrentPerform(iterations: parts) { part in
                let range = (part * partSize)..<min(count, (part + 1) * partSize)
                let got: [Record]
                switch records(range) {
                case .success(let read): got = read
                case .failure(let error):
                    failures.record(range.lowerBound, error)
                    return
                }
                for (offset, record) in got.enumerated() {
                    let index = range.lowerBound + offset
                    do throws(EventLogError) {
                        let event = try projector.decodeStopping(record)
                        (slots.base + index).initialize(to: DecodedRecord(record, event: event))
                    } catch {
                        (slots.base + index).initialize(to: DecodedRecord(record, event: nil))
                        failures.record(index, error)
                    }
                }
                done.mark(part)
            }
            // A part that could not be read left its slots uninitialized: tear down only the parts that were.
            let unread = done.missing
            if unread.isEmpty {
                initialized = count
            } else {
                for part in 0..<parts where !unread.contains(part) {
                    let range = (part * partSize)..<min(count, (part + 1) * partSize)
                    (slots.base + range.lowerBound).deinitialize(count: range.count)
                }
                initialized = 0
            }
        }
        if let failure = failures.first { return .failure(failure) }
        return .success(result)
    }
}

/// Which parts of a concurrent decoding finished.
private final class DoneParts: @unchecked Sendable {  // `lock` guards `done`.
    private let lock = NSLock()
    private var done: [Bool]

    init(_ parts: Int) { done = Array(repeating: false, count: parts) }

    func mark(_ part: Int) { lock.withLock { done[part] = true } }

    var missing: [Int] { lock.withLock { done.indices.filter { !done[$0] } } }
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
                    // By index: a `for` loop would copy each whole record (its payload, its envelope's strings);
                    // only the event is copied here, to be applied.
                    try batch.withUnsafeBufferPointer { records in
                        for index in records.indices where records[index].event != nil {
                            try projector.apply(records[index].event!, records[index].meta, to: tables)
                        }
                    }
                    try projector.endReplayBatch(tables)
                }
                return
            } catch let error as EventLogError where error.code == .mapFull {
                projector.discardReplayBatch()  // the batch is applied again, from the state before it
                guard try env.grow() else { throw error }
            } catch {
                projector.discardReplayBatch()
                throw error
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
