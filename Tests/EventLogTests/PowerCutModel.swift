import EventLog
import Foundation
import Synchronization

/// Models what a power cut would leave of a log's `data.mdb`, from what its writer reports (``WriterEvent``), and
/// checks at every acknowledgement that a copy holding only that opens with everything acknowledged so far.
///
/// LMDB keeps two meta pages (pages 0 and 1), each naming a root and a transaction id; opening picks the one
/// with the higher id. A commit writes its data pages, syncs the file (which flushes any meta page written
/// before, too), then writes its own meta page — with `MDB_NOMETASYNC`, without syncing it. So a meta page is
/// on disk once a later commit's data sync or an explicit sync has followed it. The model learns which from the
/// file itself: after a commit the older meta page is durable, after an explicit sync both are. At an
/// acknowledgement it copies `data.mdb` (everything the writer wrote is in the page cache, so in the copy) and
/// resets in the copy every meta page not yet durable (its transaction id zeroed, so LMDB opens the other one):
/// what a power cut at that moment may leave. The writer waits while the probe runs, so the file holds still.
final class PowerCutModel: Sendable {
    struct Report: Sendable {
        /// Copies checked (one per acknowledgement).
        var checks = 0
        /// Checks whose copy had a meta page reset: a power cut there would have undone a commit.
        var cuts = 0
        var commits = 0
        var syncs = 0
        /// What a power cut would have lost or broken; empty when the writer is right.
        var problems: [String] = []
        var acknowledged: [Range<UInt64>] = []
    }

    private struct State {
        /// The highest transaction id whose meta page is on disk.
        var durable: UInt64 = 0
        /// The highest transaction id seen in a meta page.
        var newest: UInt64 = 0
        var report = Report()
    }

    private let dataFile: String
    private let scratch = TemporaryDirectory()
    private let state = Mutex(State())

    init(directory: String) { dataFile = directory + "/data.mdb" }

    /// Reads the file as the writer starts: it synced everything before its first commit.
    func start() throws {
        let ids = try Self.metaTransactionIDs(dataFile)
        state.withLock {
            $0.durable = ids.max()!
            $0.newest = ids.max()!
        }
    }

    var report: Report { state.withLock { $0.report } }

    /// The writer's probe: called on its thread, one event at a time.
    func observe(_ event: WriterEvent) {
        do {
            switch event {
            case .committed:
                let ids = try Self.metaTransactionIDs(dataFile)
                state.withLock { state in
                    // One process writes, so each commit adds one transaction (also checks the meta layout).
                    if ids.max()! != state.newest + 1 {
                        state.report.problems.append("a commit moved the newest meta from \(state.newest) to \(ids)")
                    }
                    state.newest = ids.max()!
                    state.durable = max(state.durable, ids.min()!)
                    state.report.commits += 1
                }
            case .synced:
                let ids = try Self.metaTransactionIDs(dataFile)
                state.withLock { state in
                    state.durable = max(state.durable, ids.max()!)
                    state.report.syncs += 1
                }
            case .acknowledging(let seqs):
                let (durable, acknowledged, index) = state.withLock { state in
                    state.report.acknowledged += seqs
                    state.report.checks += 1
                    return (state.durable, state.report.acknowledged, state.report.checks)
                }
                let (cut, problems) = try check(durable: durable, acknowledged: acknowledged, index: index)
                state.withLock { state in
                    if cut { state.report.cuts += 1 }
                    state.report.problems += problems
                }
            }
        } catch {
            state.withLock { $0.report.problems.append("the model failed at \(event): \(error)") }
        }
    }

    /// Copies the file as a power cut now could leave it and checks the copy. Returns whether a meta page had to
    /// be reset, and what went wrong.
    private func check(durable: UInt64, acknowledged: [Range<UInt64>], index: Int) throws -> (Bool, [String]) {
        let copy = scratch.sub("cut-\(index)")
        try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: copy) }
        try FileManager.default.copyItem(atPath: dataFile, toPath: copy + "/data.mdb")
        let ids = try Self.metaTransactionIDs(copy + "/data.mdb")
        guard ids.contains(where: { $0 <= durable }) else {
            return (false, ["check \(index): neither meta page \(ids) is durable (durable through \(durable))"])
        }
        var cut = false
        for (page, id) in ids.enumerated() where id > durable {
            try Self.resetMetaTransactionID(page: page, in: copy + "/data.mdb")
            cut = true
        }
        var problems: [String] = []
        let log = try openLog(copy) { $0.durability = .unsynced }
        defer { log.close() }
        // Reading every record walks the log's B-tree and verifies each record's checksum.
        let records = try log.records(from: 1)
        let last = UInt64(records.count)
        if records.map(\.seq) != Array(stride(from: 1, through: last, by: 1)) {
            problems.append("check \(index): the copy's seqs are not 1...\(last)")
        }
        for range in acknowledged where !range.isEmpty && range.upperBound - 1 > last {
            problems.append(
                "check \(index): acknowledged seqs \(range) are lost by a power cut (the copy ends at \(last))")
        }
        // The copy takes a new commit: its free pages and meta are sound.
        let appended = Mutex<Result<Range<UInt64>, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            let result = await Result { try await log.append([testEvent(-1)]) }
            appended.withLock { $0 = result }
            done.signal()
        }
        done.wait()
        switch appended.withLock({ $0 }) {
        case .success(let seqs) where seqs.lowerBound == last + 1: break
        case let other: problems.append("check \(index): appending to the copy gave \(String(describing: other))")
        }
        return (cut, problems)
    }

    // MARK: LMDB's meta pages (lmdb 0.9, 64-bit)

    /// The page header is 16 bytes; the meta follows: magic (4), version (4), address (8), map size (8), two
    /// database records of 48 bytes (the first one's leading 4 bytes hold the page size), last page (8), txnid.
    private static let magicOffset = 16
    private static let pageSizeOffset = 40
    private static let transactionIDOffset = 144

    /// The transaction ids of meta pages 0 and 1.
    static func metaTransactionIDs(_ path: String) throws -> [UInt64] {
        let file = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? file.close() }
        let first = try read(file, at: 0, count: transactionIDOffset + 8)
        guard UInt32(littleEndian: first.load(at: magicOffset)) == 0xBEEF_C0DE else {
            throw ModelError("\(path) does not start with an LMDB meta page")
        }
        let pageSize = Int(UInt32(littleEndian: first.load(at: pageSizeOffset)))
        let second = try read(file, at: pageSize, count: transactionIDOffset + 8)
        return [first, second].map { UInt64(littleEndian: $0.load(at: transactionIDOffset)) }
    }

    /// Zeroes meta page `page`'s transaction id, so LMDB opens the other one.
    static func resetMetaTransactionID(page: Int, in path: String) throws {
        let file = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        defer { try? file.close() }
        let first = try read(file, at: 0, count: transactionIDOffset + 8)
        let pageSize = Int(UInt32(littleEndian: first.load(at: pageSizeOffset)))
        try file.seek(toOffset: UInt64(page * pageSize + transactionIDOffset))
        try file.write(contentsOf: Data(count: 8))
    }

    private static func read(_ file: FileHandle, at offset: Int, count: Int) throws -> [UInt8] {
        try file.seek(toOffset: UInt64(offset))
        guard let data = try file.read(upToCount: count), data.count == count else {
            throw ModelError("short read at \(offset)")
        }
        return [UInt8](data)
    }

    struct ModelError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }
}

extension [UInt8] {
    fileprivate func load<T: FixedWidthInteger>(at offset: Int) -> T {
        withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self) }
    }
}

extension Result where Failure == any Error {
    fileprivate init(catching body: () async throws -> Success) async {
        do {
            self = .success(try await body())
        } catch {
            self = .failure(error)
        }
    }
}
