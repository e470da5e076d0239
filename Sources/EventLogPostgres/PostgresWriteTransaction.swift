import EventLog
import NIOCore
import PostgresNIO

/// One group commit's transaction on PostgreSQL, as the writer thread sees it (design §2d).
///
/// Reads go to this group's own writes first, then to the rows the writer knows (``KnownRows``: carried from its
/// last group, or read in this one), then to the database inside the open transaction — current, since the group
/// holds the log's writer lock. Writes stay in memory until ``flush(closing:)`` sends them, in the one statement that
/// also closes the group, just before COMMIT. Each command can be undone alone
/// (``beginCommand()``/``endCommand(keep:)``), so a rejected command never makes the group run again.
final class PostgresWriteTransaction: WriteTransactionStore {
    enum Entry: Equatable {
        case value([UInt8])
        case deleted
    }

    /// One change a command made, to undo it.
    private enum Undo {
        case entry(table: UInt32, key: [UInt8], previous: Entry?)
        case cleared(table: UInt32, previous: [RowKey: Entry], wasCleared: Bool)
        case checkpoint(name: String, previous: UInt64?)
    }

    let database: BlockingPostgres
    let schema: String
    /// This group's writes, by table id.
    private var overlay: [UInt32: [RowKey: Entry]] = [:]
    /// Tables emptied in this group (`removeAll`): no database row of them counts any more.
    private var cleared: Set<UInt32> = []
    /// The database's rows as they stand in this group (it has not flushed yet): what it started from, with
    /// what it read since.
    private var known: KnownRows
    /// Per table scanned, the keys of `overlay`, sorted (kept up to date as the group writes; rebuilt after an undo).
    private var overlayKeys: [UInt32: [[UInt8]]] = [:]
    /// Per table scanned, the rows of `known.rows` holding a value, sorted: the rows a scan inside a known range
    /// reads instead of the database.
    private var sortedRows: [UInt32: SortedRows] = [:]
    /// The records appended, in seq order.
    private(set) var records: [Record] = []
    private var checkpoints: [String: UInt64] = [:]
    private var undo: [Undo] = []
    private var commandRecords = 0
    /// Statements this group sent to read (a test's and a profile's figure).
    private(set) var reads = 0
    /// The most rows of a table loaded whole at its first miss (0: never); see ``get(_:_:)``.
    private let wholeTableRows: Int
    /// Tables that had more than `wholeTableRows` rows when this group tried to load them whole.
    private(set) var tooLarge: Set<UInt32> = []

    /// A transaction whose reads start from `known`: rows as they stood at the start of this group (what this
    /// writer read and wrote up to its last commit, when no other process has committed since). With
    /// `wholeTableRows` above 0, the first read that misses a table loads it whole when it has at most that many
    /// rows, unless `known` says that was tried already.
    init(database: BlockingPostgres, schema: String, known: KnownRows = KnownRows(), wholeTableRows: Int = 0) {
        self.database = database
        self.schema = schema
        self.known = known
        self.wholeTableRows = wholeTableRows
    }

    /// What is known of the rows after this group commits — what it started from and read, with its own writes —
    /// to start the next group from; `nil` when that is not worth keeping (a table emptied, or more than `limit`
    /// rows). Taken, not copied: the transaction is done with it.
    func takeKnownAfterCommit(limit: Int) -> KnownRows? {
        guard cleared.isEmpty else { return nil }
        for (table, entries) in overlay {
            for (key, entry) in entries {
                switch entry {
                case .value(let value): known.rows[table, default: [:]][key] = .some(value)
                // Inside a complete range, absence needs no entry.
                case .deleted where known.covers(table, key.bytes): known.rows[table]?[key] = nil
                case .deleted: known.rows[table, default: [:]][key] = .some(nil)
                }
            }
        }
        defer { known = KnownRows() }
        return known.count <= limit ? known : nil
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
            case .entry(let table, let key, let previous):
                overlay[table, default: [:]][RowKey(key)] = previous
                if previous == nil { overlayKeys[table] = nil }
            case .cleared(let table, let previous, let wasCleared):
                overlay[table] = previous
                overlayKeys[table] = nil
                if !wasCleared { cleared.remove(table) }
            case .checkpoint(let name, let previous): checkpoints[name] = previous
            }
        }
    }

    // MARK: Tables

    func get(_ table: Table, _ key: [UInt8]) throws -> [UInt8]? {
        let rowKey = RowKey(key)
        switch overlay[table.id]?[rowKey] {
        case .value(let value)?: return value
        case .deleted?: return nil
        case nil: break
        }
        if cleared.contains(table.id) { return nil }
        if let cached = known.rows[table.id]?[rowKey] { return cached }
        if known.covers(table.id, key) { return nil }
        if wholeTableRows > 0, known.loaded.insert(table.id).inserted {
            // Once per table while the rows stay known: a fresh key (a new job's id, its idempotency key) misses
            // every time, and a table known whole answers those misses from memory.
            if try fetch(table.id, from: [], inclusive: true, limit: wholeTableRows + 1).count > wholeTableRows {
                tooLarge.insert(table.id)
            }
            if let cached = known.rows[table.id]?[rowKey] { return cached }
            if known.covers(table.id, key) { return nil }
        }
        reads += 1
        let rows = try database.query(
            "SELECT v FROM \(unescaped: schema).kv WHERE tbl = \(Int16(table.id)) AND k = \(ByteBuffer(bytes: key))")
        let value = try rows.first.map { Array(buffer: try $0.decode(ByteBuffer.self)) }
        remember(table.id, key, value)
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
        overlayKeys[table.id] = nil
        cleared.insert(table.id)
    }

    private func set(_ table: UInt32, _ key: [UInt8], _ entry: Entry) {
        let rowKey = RowKey(key)
        let previous = overlay[table]?[rowKey]
        undo.append(.entry(table: table, key: key, previous: previous))
        overlay[table, default: [:]][rowKey] = entry
        if previous == nil, overlayKeys[table] != nil { overlayKeys[table]!.insertSorted(key) }
    }

    /// This group's writes merged, in key order, with the database's rows: from memory inside a range of which
    /// every row is known, otherwise read in pages (small first: most scans stop after a row or two), each page
    /// making its range known. The entries are those that stood when the scan began.
    func scan(_ table: Table, from start: [UInt8]?, _ body: ([UInt8], [UInt8]) throws -> Bool) throws {
        // This group's entries as they stand now, and their keys from `start` on, in order.
        let entries = overlay[table.id] ?? [:]
        if overlayKeys[table.id] == nil { overlayKeys[table.id] = entries.keys.map(\.bytes).sorted(by: precedes) }
        let keys = overlayKeys[table.id]!
        var mineIndex = start.map { keys.firstIndex(notBefore: $0) } ?? 0
        let mine = keys[mineIndex...]
        var rows = DatabaseRows(table: table.id, position: start ?? [], exhausted: cleared.contains(table.id))
        while true {
            let row = try rows.peek(self)
            let own = mineIndex < mine.endIndex ? (key: mine[mineIndex], value: entries[RowKey(mine[mineIndex])]!) : nil
            guard row != nil || own != nil else { return }
            if let own, row == nil || !precedes(row!.0, own.key) {
                if let row, row.0 == own.key { rows.advance() }  // this group's entry replaces the row
                mineIndex += 1
                guard case .value(let value) = own.value else { continue }
                guard try body(own.key, value) else { return }
            } else if let row {
                rows.advance()
                guard try body(row.0, row.1) else { return }
            }
        }
    }

    /// The database's rows of one table from a position on, in key order, as one scan reads them.
    private struct DatabaseRows {
        let table: UInt32
        /// Where the rows not yet read start: at `position` itself until the first batch, then after it.
        var position: [UInt8]
        var inclusive = true
        var exhausted: Bool
        var batch: [([UInt8], [UInt8])] = []
        var index = 0
        var pageSize = 16
        /// Rows taken from memory at a time (few first: most scans stop after a row or two).
        var memoryBatch = 4

        init(table: UInt32, position: [UInt8], exhausted: Bool) {
            self.table = table
            self.position = position
            self.exhausted = exhausted
        }

        mutating func peek(_ transaction: PostgresWriteTransaction) throws -> ([UInt8], [UInt8])? {
            while index == batch.count {
                guard !exhausted else { return nil }
                index = 0
                if let end = transaction.known.complete[table]?.end(covering: position), inclusive || end != position {
                    let (rows, more) = transaction.knownRows(
                        table, from: position, inclusive: inclusive, through: end, limit: memoryBatch)
                    memoryBatch = min(memoryBatch * 4, 64)
                    batch = rows
                    if more, let last = rows.last?.0 {
                        position = last
                    } else if let end {
                        position = end
                    } else {
                        exhausted = true
                    }
                    inclusive = false
                } else {
                    let limit = pageSize
                    batch = try transaction.fetch(table, from: position, inclusive: inclusive, limit: limit)
                    pageSize = min(pageSize * 8, 1_024)
                    exhausted = batch.count < limit
                    if let last = batch.last?.0 {
                        position = last
                        inclusive = false
                    }
                }
            }
            return batch[index]
        }

        mutating func advance() { index += 1 }
    }

    /// Up to 64 known rows of `table` from `start` through `end` (`nil`: to the table's end), in key order, and
    /// whether more may follow them in that range.
    private func knownRows(
        _ table: UInt32, from start: [UInt8], inclusive: Bool, through end: [UInt8]?, limit: Int
    ) -> (rows: [([UInt8], [UInt8])], more: Bool) {
        if sortedRows[table] == nil { sortedRows[table] = SortedRows(known.rows[table] ?? [:]) }
        let sorted = sortedRows[table]!
        var index = inclusive ? sorted.keys.firstIndex(notBefore: start) : sorted.keys.firstIndex(after: start)
        var rows: [([UInt8], [UInt8])] = []
        while index < sorted.keys.count {
            let key = sorted.keys[index]
            if let end, precedes(end, key) { return (rows, false) }
            if rows.count == limit { return (rows, true) }
            rows.append((key, sorted.values[index]))
            index += 1
        }
        return (rows, false)
    }

    /// Keeps a row read from the database (`nil`: absent), in the sorted keys too once the table has them.
    private func remember(_ table: UInt32, _ key: [UInt8], _ value: [UInt8]?) {
        let rowKey = RowKey(key)
        guard known.rows[table]?[rowKey] == nil else { return }
        known.rows[table, default: [:]][rowKey] = .some(value)
        guard let value, sortedRows[table] != nil else { return }
        sortedRows[table]!.insert(key, value)
    }

    /// A page of the database's rows from `start`, which makes their range known: through the page's last key, or
    /// to the table's end when the page is not full.
    private func fetch(_ table: UInt32, from start: [UInt8], inclusive: Bool, limit: Int) throws -> [(
        [UInt8], [UInt8]
    )] {
        reads += 1
        let key = ByteBuffer(bytes: start)
        let rows =
            inclusive
            ? try database.query(
                "SELECT k, v FROM \(unescaped: schema).kv WHERE tbl = \(Int16(table)) AND k >= \(key) ORDER BY k LIMIT \(limit)"
            )
            : try database.query(
                "SELECT k, v FROM \(unescaped: schema).kv WHERE tbl = \(Int16(table)) AND k > \(key) ORDER BY k LIMIT \(limit)"
            )
        let page = try rows.map { row in
            let (k, v) = try row.decode((ByteBuffer, ByteBuffer).self)
            return (Array(buffer: k), Array(buffer: v))
        }
        for (key, value) in page { remember(table, key, value) }
        // An exclusive start is the last key of a range already known, so the new range joins it.
        if inclusive || known.covers(table, start) {
            known.complete[table, default: KeyRanges()].insert(
                low: start, high: page.count < limit ? nil : page.last?.0)
        }
        return page
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

    /// Sends every write of the group (inside the open transaction, before COMMIT), in a few statements.
    func flush() throws {
        for statement in try GroupStatements.flush(writes, schema: schema) { try database.query(statement) }
    }

    /// Sends every write of the group and closes it as `closing` says, in one statement (two when it emptied a
    /// table): the head's new generation, or `nil` when the head was not where the group found it.
    func flush(closing: GroupStatements.Closing) throws -> Int64? {
        let (clear, close) = try GroupStatements.close(writes, closing, schema: schema)
        if let clear { try database.query(clear) }
        return try database.query(close).first?.decode(Int64.self)
    }

    /// What this group wrote, as the statements send it.
    private var writes: GroupStatements.Writes {
        var writes = GroupStatements.Writes(records: records, cleared: cleared.sorted())
        writes.checkpoints = checkpoints.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        for (table, entries) in overlay {
            for (key, entry) in entries {
                switch entry {
                case .value(let value): writes.puts.append((table, key.bytes, value))
                case .deleted where !cleared.contains(table): writes.deletes.append((table, key.bytes))
                case .deleted: break
                }
            }
        }
        return writes
    }

    /// Whether the group wrote anything at all.
    var isEmpty: Bool {
        records.isEmpty && overlay.allSatisfy(\.value.isEmpty) && cleared.isEmpty && checkpoints.isEmpty
    }
}
