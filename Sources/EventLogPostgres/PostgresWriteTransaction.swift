import EventLog
import NIOCore
import PostgresNIO

/// One group commit's transaction on PostgreSQL, as the writer thread sees it (design §2d).
///
/// Reads go to this group's own writes first, then to what it already read, then to the database inside the open
/// transaction — current, since the group holds the log's writer lock. Writes stay in memory until
/// ``flush(groupID:)`` sends them in a few statements just before COMMIT. Each command can be undone alone
/// (``beginCommand()``/``endCommand(keep:)``), so a rejected command never makes the group run again.
final class PostgresWriteTransaction: WriteTransactionStore {
    enum Entry: Equatable {
        case value([UInt8])
        case deleted
    }

    /// One change a command made, to undo it.
    private enum Undo {
        case entry(table: UInt32, key: [UInt8], previous: Entry?)
        case cleared(table: UInt32, previous: [[UInt8]: Entry], wasCleared: Bool)
        case checkpoint(name: String, previous: UInt64?)
    }

    let database: BlockingPostgres
    let schema: String
    /// This group's writes, by table id.
    private var overlay: [UInt32: [[UInt8]: Entry]] = [:]
    /// Tables emptied in this group (`removeAll`): no database row of them counts any more.
    private var cleared: Set<UInt32> = []
    /// Database rows read in this group, absent ones too.
    private var cache: [UInt32: [[UInt8]: [UInt8]?]] = [:]
    /// The records appended, in seq order.
    private(set) var records: [Record] = []
    private var checkpoints: [String: UInt64] = [:]
    private var undo: [Undo] = []
    private var commandRecords = 0

    /// Rows keyed by table id and key: a stored value, or `nil` for a key known absent.
    typealias Rows = [UInt32: [[UInt8]: [UInt8]?]]

    /// A transaction whose reads start from `known`: rows as they stood at the start of this group (what this
    /// writer read and wrote up to its last commit, when no other process has committed since).
    init(database: BlockingPostgres, schema: String, known: Rows = [:]) {
        self.database = database
        self.schema = schema
        cache = known
    }

    /// The rows as they stand after this group commits — what it started from and read, with its own writes — to
    /// start the next group from; `nil` when that is not worth keeping (a table emptied, or more than `limit` rows).
    func rowsAfterCommit(limit: Int) -> Rows? {
        guard cleared.isEmpty else { return nil }
        var rows = cache
        for (table, entries) in overlay {
            for (key, entry) in entries {
                switch entry {
                case .value(let value): rows[table, default: [:]][key] = .some(value)
                case .deleted: rows[table, default: [:]][key] = .some(nil)
                }
            }
        }
        return rows.values.reduce(0) { $0 + $1.count } <= limit ? rows : nil
    }

    // MARK: Commands

    func beginCommand() {
        undo.removeAll(keepingCapacity: true)
        commandRecords = records.count
    }

    func endCommand(keep: Bool) {
        defer { undo.removeAll(keepingCapacity: true) }
        guard !keep else { return }
        records.removeSubrange(commandRecords...)
        for change in undo.reversed() {
            switch change {
            case .entry(let table, let key, let previous): overlay[table, default: [:]][key] = previous
            case .cleared(let table, let previous, let wasCleared):
                overlay[table] = previous
                if !wasCleared { cleared.remove(table) }
            case .checkpoint(let name, let previous): checkpoints[name] = previous
            }
        }
    }

    // MARK: Tables

    func get(_ table: Table, _ key: [UInt8]) throws -> [UInt8]? {
        switch overlay[table.id]?[key] {
        case .value(let value)?: return value
        case .deleted?: return nil
        case nil: break
        }
        if cleared.contains(table.id) { return nil }
        if let cached = cache[table.id]?[key] { return cached }
        let rows = try database.query(
            "SELECT v FROM \(unescaped: schema).kv WHERE tbl = \(Int16(table.id)) AND k = \(ByteBuffer(bytes: key))")
        let value = try rows.first.map { Array(buffer: try $0.decode(ByteBuffer.self)) }
        cache[table.id, default: [:]][key] = .some(value)
        return value
    }

    /// LMDB's key limits hold here too (1…511 bytes), so a log moves between the backends as it is.
    func put(_ table: Table, _ key: [UInt8], _ value: [UInt8]) throws {
        guard (1...Self.maxKeySize).contains(key.count) else {
            throw EventLogError(.invalidArgument, "a table key must be 1 to \(Self.maxKeySize) bytes, got \(key.count)")
        }
        set(table.id, key, .value(value))
    }

    /// LMDB's default largest key.
    static let maxKeySize = 511

    @discardableResult
    func delete(_ table: Table, _ key: [UInt8]) throws -> Bool {
        let existed = try get(table, key) != nil
        if existed { set(table.id, key, .deleted) }
        return existed
    }

    func removeAll(_ table: Table) throws {
        undo.append(
            .cleared(table: table.id, previous: overlay[table.id] ?? [:], wasCleared: cleared.contains(table.id)))
        overlay[table.id] = [:]
        cleared.insert(table.id)
    }

    private func set(_ table: UInt32, _ key: [UInt8], _ entry: Entry) {
        undo.append(.entry(table: table, key: key, previous: overlay[table]?[key]))
        overlay[table, default: [:]][key] = entry
    }

    /// This group's writes merged, in key order, with the database's rows read in pages (small first: most scans
    /// stop after a row or two). The entries are those that stood when the scan began.
    func scan(_ table: Table, from start: [UInt8]?, _ body: ([UInt8], [UInt8]) throws -> Bool) throws {
        let mine = (overlay[table.id] ?? [:]).filter { start == nil || !$0.key.lexicographicallyPrecedes(start!) }
            .sorted { $0.key.lexicographicallyPrecedes($1.key) }
        var mineIndex = 0
        var page: [([UInt8], [UInt8])] = []
        var pageIndex = 0
        var after: [UInt8]? = nil
        var exhausted = cleared.contains(table.id)
        var pageSize = 16
        func nextRow() throws -> ([UInt8], [UInt8])? {
            if pageIndex < page.count { return page[pageIndex] }
            guard !exhausted else { return nil }
            let limit = pageSize
            page = try fetch(table.id, from: after ?? start, inclusive: after == nil, limit: limit)
            pageIndex = 0
            pageSize = min(pageSize * 8, 1_024)
            exhausted = page.count < limit
            after = page.last?.0
            return page.first
        }
        while true {
            let row = try nextRow()
            let own = mineIndex < mine.count ? mine[mineIndex] : nil
            guard row != nil || own != nil else { return }
            if let own, row == nil || !row!.0.lexicographicallyPrecedes(own.key) {
                if let row, row.0 == own.key { pageIndex += 1 }  // this group's entry replaces the row
                mineIndex += 1
                guard case .value(let value) = own.value else { continue }
                guard try body(own.key, value) else { return }
            } else if let row {
                pageIndex += 1
                guard try body(row.0, row.1) else { return }
            }
        }
    }

    private func fetch(_ table: UInt32, from start: [UInt8]?, inclusive: Bool, limit: Int) throws -> [(
        [UInt8], [UInt8]
    )] {
        let key = ByteBuffer(bytes: start ?? [])
        let rows =
            inclusive
            ? try database.query(
                "SELECT k, v FROM \(unescaped: schema).kv WHERE tbl = \(Int16(table)) AND k >= \(key) ORDER BY k LIMIT \(limit)"
            )
            : try database.query(
                "SELECT k, v FROM \(unescaped: schema).kv WHERE tbl = \(Int16(table)) AND k > \(key) ORDER BY k LIMIT \(limit)"
            )
        return try rows.map { row in
            let (k, v) = try row.decode((ByteBuffer, ByteBuffer).self)
            return (Array(buffer: k), Array(buffer: v))
        }
    }

    // MARK: Records and checkpoints

    func record(at seq: UInt64) throws -> Record? {
        if let first = records.first?.seq, seq >= first, seq - first < UInt64(records.count) {
            return records[Int(seq - first)]
        }
        let rows = try database.query(
            "SELECT \(unescaped: PostgresRecords.columns) FROM \(unescaped: schema).events WHERE seq = \(Int64(bitPattern: seq))"
        )
        return try rows.first.map(PostgresRecords.decode)
    }

    func append(_ record: Record) throws { records.append(record) }

    func putCheckpoint(_ name: String, seq: UInt64) throws {
        undo.append(.checkpoint(name: name, previous: checkpoints[name]))
        checkpoints[name] = seq
    }

    // MARK: Flush

    /// Sends every write of the group (inside the open transaction, before COMMIT).
    func flush() throws {
        if !records.isEmpty { try database.query(try PostgresRecords.insert(records, schema: schema)) }
        if !cleared.isEmpty {
            try database.query(
                "DELETE FROM \(unescaped: schema).kv WHERE tbl = ANY(\(cleared.map { Int16($0) }))")
        }
        var deleteTables: [Int16] = []
        var deleteKeys: [ByteBuffer] = []
        var putTables: [Int16] = []
        var putKeys: [ByteBuffer] = []
        var putValues: [ByteBuffer] = []
        for (table, entries) in overlay {
            for (key, entry) in entries {
                switch entry {
                case .value(let value):
                    putTables.append(Int16(table))
                    putKeys.append(ByteBuffer(bytes: key))
                    putValues.append(ByteBuffer(bytes: value))
                case .deleted where !cleared.contains(table):
                    deleteTables.append(Int16(table))
                    deleteKeys.append(ByteBuffer(bytes: key))
                case .deleted:
                    break
                }
            }
        }
        if !deleteKeys.isEmpty {
            try database.query(
                """
                DELETE FROM \(unescaped: schema).kv USING unnest(\(deleteTables)::smallint[], \(deleteKeys)::bytea[]) AS d(t, k)
                WHERE kv.tbl = d.t AND kv.k = d.k
                """)
        }
        if !putKeys.isEmpty {
            try database.query(
                """
                INSERT INTO \(unescaped: schema).kv (tbl, k, v)
                SELECT * FROM unnest(\(putTables)::smallint[], \(putKeys)::bytea[], \(putValues)::bytea[])
                ON CONFLICT (tbl, k) DO UPDATE SET v = EXCLUDED.v
                """)
        }
        if !checkpoints.isEmpty {
            try database.query(
                """
                INSERT INTO \(unescaped: schema).checkpoints (name, seq)
                SELECT * FROM unnest(\(Array(checkpoints.keys))::text[], \(checkpoints.values.map { Int64(bitPattern: $0) })::bigint[])
                ON CONFLICT (name) DO UPDATE SET seq = EXCLUDED.seq
                """)
        }
    }

    /// Whether the group wrote anything at all.
    var isEmpty: Bool {
        records.isEmpty && overlay.allSatisfy(\.value.isEmpty) && cleared.isEmpty && checkpoints.isEmpty
    }
}
