import CLMDB
import Foundation

/// A copy of a log's projection tables as of one seq, written by ``EventLog/exportProjections(to:)``.
public struct ProjectionExport: Sendable, Equatable {
    /// The last seq the copied state includes.
    public var seq: UInt64
    /// The log time of that record (`nil` for an empty log).
    public var timestamp: LogTimestamp?
    /// Entries copied, across all tables.
    public var entries: Int
    /// The size of the copy's `data.mdb`.
    public var bytes: Int
}

extension EventLog {
    /// Copies every projection table, as of one consistent read of the live log, into a new environment in
    /// `directory` (which must not exist): the state at one seq, without the records.
    ///
    /// The copy records the projection format and the seq it describes; open it with the same projector and
    /// ``ProjectionUpgrade/leave`` to read it, or copy its `data.mdb` elsewhere to apply later records to it.
    /// Runs on the calling thread and holds one read transaction for the duration of the copy.
    ///
    /// - Throws: ``EventLogError/Code/invalidArgument`` without a projector or when `directory` exists;
    ///   ``EventLogError/Code/versionMismatch`` when the live tables are stale.
    public func exportProjections(to directory: String) throws -> ProjectionExport {
        guard let projector = configuration.projector else {
            throw EventLogError(.invalidArgument, "the log was opened without a projector; there is nothing to export")
        }
        guard projections == .current else {
            throw EventLogError(.versionMismatch, "cannot export: the \(projections)")
        }
        guard !FileManager.default.fileExists(atPath: directory) else {
            throw EventLogError(.invalidArgument, "\(directory) exists; an export goes into a new directory")
        }
        if external != nil { return try exportFromSnapshot(to: directory, projector: projector) }
        let lmdb = try lmdbOnly("an export")
        let env = lmdb.env
        let logDB = lmdb.logDB
        let reserved = Self.reservedDatabases
        // The copy is smaller than the source, so a map the size of the source's used pages never fills.
        let mapSize = env.usedBytes() + (1 << 20)
        let target = try LMDBEnvironment(
            directory: directory, initialMapSize: mapSize, maxMapSize: mapSize,
            maxReaders: 8, durability: .relaxed, databases: reserved + projector.tables)
        defer { target.close() }
        let metaDB = env.database(Self.metaDatabase)
        let targetMeta = target.database(Self.metaDatabase)
        var export = try env.withReadTransaction { source in
            try target.withWriteTransaction { txn in
                var entries = 0
                for name in projector.tables {
                    let from = env.database(name)
                    let to = target.database(name)
                    try source.view.scan(from, from: nil) { key, value in
                        try txn.view.put(to, key, value, append: true)  // source order is key order
                        entries += 1
                        return true
                    }
                }
                for key in [Self.formatKey, Self.projectionFormatKey, Self.projectionTablesKey] {
                    let value = try key.withUnsafeBytes { k in
                        try source.view.get(metaDB, k) { $0.map { [UInt8]($0) } }
                    }
                    guard let value else { continue }
                    try key.withUnsafeBytes { k in try value.withUnsafeBytes { v in try txn.view.put(targetMeta, k, v) }
                    }
                }
                var seq: UInt64 = 0
                var timestamp: LogTimestamp?
                _ = try source.view.last(logDB) { key, value in
                    seq = seqFromKey(key)
                    timestamp = Envelope.peekClock(value)?.timestamp
                }
                try Self.projectionSeqKey.withUnsafeBytes { k in
                    try withUnsafeBytes(of: seq.bigEndian) { v in try txn.view.put(targetMeta, k, v) }
                }
                return ProjectionExport(seq: seq, timestamp: timestamp, entries: entries, bytes: 0)
            }
        }
        try target.sync()
        var info = stat()
        if stat(directory + "/data.mdb", &info) == 0 { export.bytes = Int(info.st_size) }
        return export
    }

    static let projectionSeqKey = Array("projection.seq".utf8)

    /// The export of a log on another engine: the same LMDB layout, written from one consistent snapshot through
    /// the `Snapshot` API (its size unknown beforehand: the map is large and sparse, the file only as big as the
    /// pages written).
    private func exportFromSnapshot(to directory: String, projector: any Projector) throws -> ProjectionExport {
        let target = try LMDBEnvironment(
            directory: directory, initialMapSize: 1 << 36, maxMapSize: 1 << 36, maxReaders: 8, durability: .relaxed,
            databases: Self.reservedDatabases + projector.tables)
        defer { target.close() }
        let targetMeta = target.database(Self.metaDatabase)
        var export = try withSnapshot { source in
            try target.withWriteTransaction { txn in
                var entries = 0
                for name in projector.tables {
                    let to = target.database(name)
                    try source.scan(table(name)) { key, value in
                        try key.withUnsafeBytes { k in
                            try value.withUnsafeBytes { v in try txn.view.put(to, k, v, append: true) }
                        }
                        entries += 1
                        return true
                    }
                }
                let seq = try source.lastSeq
                let meta: [([UInt8], [UInt8])] = [
                    (Self.formatKey, Self.format), (Self.projectionFormatKey, projector.format.stored),
                    (Self.projectionTablesKey, Array(projector.tables.joined(separator: "\n").utf8)),
                    (Self.projectionSeqKey, withUnsafeBytes(of: seq.bigEndian) { Array($0) }),
                ]
                for (key, value) in meta {
                    try key.withUnsafeBytes { k in try value.withUnsafeBytes { v in try txn.view.put(targetMeta, k, v) }
                    }
                }
                return ProjectionExport(
                    seq: seq, timestamp: try source.record(at: seq)?.timestamp, entries: entries, bytes: 0)
            }
        }
        try target.sync()
        var info = stat()
        if stat(directory + "/data.mdb", &info) == 0 { export.bytes = Int(info.st_size) }
        return export
    }

    /// For a log opened on a copy made by ``exportProjections(to:)``: the last seq its tables include (`nil` for
    /// a log that is not such a copy).
    public func exportedSeq() throws -> UInt64? {
        let env = try lmdbOnly("an exported copy").env
        return try env.withReadTransaction { txn in
            try Self.projectionSeqKey.withUnsafeBytes { k in
                try txn.view.get(env.database(Self.metaDatabase), k) { value in
                    value.flatMap { $0.count == 8 ? UInt64(bigEndian: $0.loadUnaligned(as: UInt64.self)) : nil }
                }
            }
        }
    }

    /// Waits until the log's last seq (committed by any process) is at least `seq`; returns it, or `nil` when
    /// the task is cancelled or the log is closed first. Woken by commit notifications, not by polling.
    public func waitForLastSeq(atLeast seq: UInt64) async -> UInt64? {
        while !Task.isCancelled {
            let generation = notifier.generation
            let last: UInt64
            do {
                last = try lastSeq()
            } catch  where isTransient(error) {
                try? await Task.sleep(for: configuration.pollInterval * 5)
                continue
            } catch {
                return nil
            }
            if last >= seq { return last }
            await notifier.wait(afterGeneration: generation)
        }
        return nil
    }
}
