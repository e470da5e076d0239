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
        _ txn: TxnView, env: LMDBEnvironment, metaDB: MDB_dbi, logDB: MDB_dbi, projector: any Projector,
        upgrade: ProjectionUpgrade, directory: String, logger: Logger
    ) throws -> ProjectionStatus {
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
        let resolve: (String) -> MDB_dbi? = { env.databases[$0] }
        for name in projector.tables {
            guard let dbi = resolve(name) else { preconditionFailure("projector table \(name) was not opened") }
            try txn.drop(dbi)
        }
        let tables = TableWriter(txn: txn, resolve: resolve)
        var applied = 0
        // Records are read here (the transaction is this thread's) and their payloads decoded on another core
        // while this thread applies the previous batch.
        func read(from seq: UInt64) throws -> [Record] {
            var records: [Record] = []
            records.reserveCapacity(upgradeBatch)
            try withSeqKey(seq) { start in
                try txn.scan(logDB, from: start) { key, value in
                    records.append(try Envelope.decode(seq: seqFromKey(key), value))
                    return records.count < upgradeBatch
                }
            }
            return records
        }
        var decoding = PayloadsDecoding(try read(from: 1))
        while true {
            let batch = decoding.wait()
            guard let last = batch.last else { break }
            decoding = PayloadsDecoding(try read(from: last.seq + 1))
            for record in batch { try projector.apply(record, to: tables) }
            applied += batch.count
        }
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

/// Records per batch of the in-place rebuild.
private let upgradeBatch = 10_000

/// The payloads of a batch of records being decoded on a background queue. Touches no transaction: records own
/// their bytes.
private final class PayloadsDecoding: @unchecked Sendable {  // `records` is written before `done` signals.
    private var records: [ProjectedRecord]
    private let done = DispatchSemaphore(value: 0)

    init(_ source: [Record]) {
        records = source.map(ProjectedRecord.init)
        DispatchQueue.global().async {
            for index in source.indices {
                // A payload that does not decode is left untyped: applying it decodes again and throws there.
                self.records[index].typed = try? source[index].event()
            }
            self.done.signal()
        }
    }

    /// The batch, once decoded.
    func wait() -> [ProjectedRecord] {
        done.wait()
        return records
    }
}
