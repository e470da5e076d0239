import CLMDB
import Foundation
import Logging

/// The layout of a projector's tables: which tables exist and how keys and values are written.
///
/// The log stores the format its projection tables were written in. A build whose projector declares a newer
/// version rebuilds the tables from the log when it opens it (see ``ProjectionUpgrade``); a build that finds a
/// newer version than its own refuses to open the log, so an older process can never write an older layout
/// over a newer one.
public struct ProjectionFormat: Sendable, Hashable, CustomStringConvertible {
    /// The projector's name (a different name is a different projector, never upgraded into).
    public var name: String
    /// Bumped whenever `apply` would write different tables, keys or values for the same events.
    public var version: Int

    public init(name: String, version: Int) {
        self.name = name
        self.version = version
    }

    public var description: String { "\(name)/\(version)" }

    /// Parses the stored `name/version` form.
    init?(stored bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let slash = text.lastIndex(of: "/"), let version = Int(text[text.index(after: slash)...]) else {
            return nil
        }
        self.init(name: String(text[..<slash]), version: version)
    }

    var stored: [UInt8] { Array(description.utf8) }
}

/// What opening a log does when its projection tables are in an older format than the projector's.
public enum ProjectionUpgrade: Sendable {
    /// Rebuild them from the log, in place, inside one write transaction while opening (writers do this).
    case rebuildInPlace
    /// Leave them; ``EventLog/projections`` reports them as stale (read-only tools do this).
    case leave
}

/// Whether the projection tables of an open log are in the projector's format.
public enum ProjectionStatus: Sendable, Equatable, CustomStringConvertible {
    /// The tables are in the projector's format (or the log has no projector).
    case current
    /// The tables were written in an older format (`nil`: by a build that did not record its format) and were
    /// left as they are.
    case stale(stored: ProjectionFormat?, expected: ProjectionFormat)

    public var description: String {
        switch self {
        case .current: "current"
        case .stale(let stored, let expected):
            "projection tables are in format \(stored.map(\.description) ?? "unrecorded (an earlier build)"), "
                + "this build reads \(expected)"
        }
    }
}

extension EventLog {
    static let projectionFormatKey = Array("projection.format".utf8)
    static let projectionTablesKey = Array("projection.tables".utf8)

    /// Checks the stored projection format against `projector`'s inside the open write transaction and, when it
    /// is older and `upgrade` allows, empties the projector's tables (and drops tables earlier formats used) and
    /// applies every record again.
    static func reconcileProjections(
        _ txn: TxnView, metaDB: MDB_dbi, logDB: MDB_dbi, projection: ProjectionBinding,
        upgrade: ProjectionUpgrade, directory: String, logger: Logger
    ) throws -> ProjectionStatus {
        let projector = projection.projector
        let expected = projector.format
        let storedBytes = try projectionFormatKey.withUnsafeBytes { k in
            try txn.get(metaDB, k) { $0.map { [UInt8]($0) } }
        }
        let stored = storedBytes.flatMap(ProjectionFormat.init(stored:))
        if let storedBytes, stored == nil {
            throw EventLogError(
                .versionMismatch,
                "\(directory) records an unreadable projection format \(String(decoding: storedBytes, as: UTF8.self))")
        }
        if let stored {
            if stored == expected { return .current }
            guard stored.name == expected.name else {
                throw EventLogError(
                    .versionMismatch,
                    "\(directory) holds projections of \(stored), this build projects \(expected); "
                        + "they are different projectors")
            }
            if stored.version > expected.version {
                throw EventLogError(
                    .versionMismatch,
                    "\(directory) holds projections in format \(stored), written by a newer build; "
                        + "this build writes \(expected) and would corrupt them; run the newer build")
            }
        }
        let isEmpty = try txn.last(logDB) { _, _ in true } == nil
        if stored == nil && isEmpty {
            try record(expected, tables: projector.tables, txn, metaDB)
            return .current
        }
        guard upgrade == .rebuildInPlace else { return .stale(stored: stored, expected: expected) }

        let started = ContinuousClock.now
        logger.notice(
            "projections.rebuilding",
            metadata: [
                "projections.from": "\(stored.map(\.description) ?? "unrecorded")",
                "projections.to": "\(expected)", "eventlog.directory": "\(directory)",
            ])
        let previous = try projectionTablesKey.withUnsafeBytes { k in
            try txn.get(metaDB, k) { $0.map { String(decoding: $0, as: UTF8.self) } }
        }
        let retired = Set(projector.retiredTables + (previous?.split(separator: "\n").map(String.init) ?? []))
            .subtracting(projector.tables)
        for name in retired.sorted() { try dropDatabase(name, txn) }
        for table in projection.tables { try txn.drop(table.dbi) }
        let last = try txn.last(logDB) { key, _ in seqFromKey(key) } ?? 0
        let applied = try replay(
            projector, into: TableWriter(txn: txn, projectionTables: projection.tables, replaying: true), txn, logDB,
            last)
        try projector.finishReplay(TableWriter(txn: txn, projectionTables: projection.tables))
        try record(expected, tables: projector.tables, txn, metaDB)
        logger.notice(
            "projections.rebuilt",
            metadata: [
                "projections.format": "\(expected)", "projections.events": "\(applied)",
                "projections.retired_tables": "\(retired.sorted().joined(separator: ","))",
                "projections.duration": "\(ContinuousClock.now - started)",
            ])
        return .current
    }

    private static func record(_ format: ProjectionFormat, tables: [String], _ txn: TxnView, _ metaDB: MDB_dbi) throws {
        try projectionFormatKey.withUnsafeBytes { k in
            try format.stored.withUnsafeBytes { v in try txn.put(metaDB, k, v) }
        }
        try projectionTablesKey.withUnsafeBytes { k in
            try Array(tables.joined(separator: "\n").utf8).withUnsafeBytes { v in try txn.put(metaDB, k, v) }
        }
    }

    /// Deletes the named database if it exists (a table an earlier format used).
    private static func dropDatabase(_ name: String, _ txn: TxnView) throws {
        var dbi: MDB_dbi = 0
        let rc = mdb_dbi_open(txn.handle, name, 0, &dbi)
        if rc == MDB_NOTFOUND { return }
        try check(rc, "mdb_dbi_open(\(name))")
        try check(mdb_drop(txn.handle, dbi, 1), "mdb_drop(\(name))")
    }
}

/// Replays records 1...`last` through `projector` into `tables`, reading them in `txn` (the one rebuild loop,
/// ``ProjectionReplay``). Returns how many were replayed.
private func replay<P: Projector>(
    _ projector: P, into tables: TableWriter, _ txn: TxnView, _ logDB: MDB_dbi, _ last: UInt64
)
    throws -> Int
{
    var applied = 0
    try ProjectionReplay.run(
        projector, from: 1, through: last,
        read: { seq, limit in
            var records: [Record] = []
            records.reserveCapacity(limit)
            try withSeqKey(seq) { start in
                try txn.scan(logDB, from: start) { key, value in
                    records.append(try Envelope.decode(seq: seqFromKey(key), value))
                    return records.count < limit
                }
            }
            return records
        }
    ) { batch in
        for record in batch {
            if let event = record.event { try projector.apply(event, record.meta, to: tables) }
        }
        applied += batch.count
    }
    return applied
}
