import EventLog
import Foundation
import NIOCore
import PostgresNIO

/// The statements that send a group's writes to the `events`, `kv` and `checkpoints` tables, and the one that also
/// closes the group — its `command_groups` row, the head and the commit's notification — so a group costs one
/// round trip between its reads and COMMIT (design §2d step 5).
enum GroupStatements {
    /// What one group wrote.
    struct Writes {
        var records: [Record]
        /// Tables emptied: every stored row of them goes before the puts land.
        var cleared: [UInt32]
        var deletes: [(table: UInt32, key: [UInt8])] = []
        var puts: [(table: UInt32, key: [UInt8], value: [UInt8])] = []
        var checkpoints: [(name: String, seq: UInt64)] = []

        init(records: [Record], cleared: [UInt32]) {
            self.records = records
            self.cleared = cleared
        }
    }

    /// How a group closes.
    struct Closing {
        /// The group's id (``PostgresLogBackend`` resolves a lost COMMIT by it).
        var group: UUID
        /// The seqs the group appended; `nil` when it appended none.
        var seqs: ClosedRange<Int64>?
        /// The head's `last_seq` when the group began: the update refuses to move a head that moved meanwhile.
        var previousLast: Int64
        /// The head's new `last_time`: the log clock's floor.
        var lastTime: Int64
        /// The group's log time.
        var committedAt: Int64
        var writer: String
        /// The channel to notify with the new last seq when the group appended.
        var channel: String
    }

    /// Positional parameters, numbered as they are added.
    struct Parameters {
        private(set) var bindings = PostgresBindings()
        private var count = 0

        mutating func add(_ value: some PostgresDynamicTypeEncodable) -> String {
            bindings.append(value)
            count += 1
            return "$\(count)"
        }

        mutating func add(_ value: Int64?) -> String {
            if let value { bindings.append(value) } else { bindings.appendNull() }
            count += 1
            return "$\(count)::bigint"
        }
    }

    /// The statements that send `writes`, each only when it has rows (the opening's rebuild uses these).
    static func flush(_ writes: Writes, schema: String) throws -> [PostgresQuery] {
        var statements: [PostgresQuery] = []
        if let clear = clear(writes, schema: schema) { statements.append(clear) }
        for part in Part.allCases {
            var parameters = Parameters()
            if let sql = try writeParts(writes, schema: schema, &parameters, only: part).first?.sql {
                statements.append(PostgresQuery(unsafeSQL: sql, binds: parameters.bindings))
            }
        }
        return statements
    }

    /// The statement emptying the cleared tables (apart: a row deleted and upserted in one statement is an error),
    /// and the one statement sending every other write and closing the group. The latter returns the head's new
    /// generation, or no row when the head moved.
    static func close(_ writes: Writes, _ closing: Closing, schema: String) throws -> (
        clear: PostgresQuery?, close: PostgresQuery
    ) {
        var parameters = Parameters()
        var ctes = try writeParts(writes, schema: schema, &parameters).map(\.sql)
        let group = parameters.add(closing.group)
        let first = parameters.add(closing.seqs?.lowerBound)
        let last = parameters.add(closing.seqs?.upperBound)
        let committedAt = parameters.add(closing.committedAt)
        let writer = parameters.add(closing.writer)
        ctes.append(
            """
            INSERT INTO \(schema).command_groups (id, first_seq, last_seq, generation, committed_at, writer)
            SELECT \(group), \(first), \(last), generation + 1, \(committedAt), \(writer) FROM \(schema).head WHERE id = 1
            """)
        let newLast = parameters.add(closing.seqs?.upperBound ?? closing.previousLast)
        let lastTime = parameters.add(closing.lastTime)
        let previous = parameters.add(closing.previousLast)
        let head = """
            UPDATE \(schema).head SET last_seq = \(newLast), last_time = \(lastTime), generation = generation + 1
            WHERE id = 1 AND last_seq = \(previous) RETURNING generation
            """
        let notify =
            closing.seqs == nil
            ? ""
            : ", pg_notify(\(parameters.add(closing.channel)), \(parameters.add(String(closing.seqs!.upperBound))))"
        let with = ctes.enumerated().map { "w\($0.offset) AS (\($0.element))" } + ["h AS (\(head))"]
        let sql = "WITH " + with.joined(separator: ",\n") + "\nSELECT generation\(notify) FROM h"
        return (clear(writes, schema: schema), PostgresQuery(unsafeSQL: sql, binds: parameters.bindings))
    }

    private static func clear(_ writes: Writes, schema: String) -> PostgresQuery? {
        guard !writes.cleared.isEmpty else { return nil }
        var parameters = Parameters()
        let tables = parameters.add(writes.cleared.map { Int16($0) })
        return PostgresQuery(
            unsafeSQL: "DELETE FROM \(schema).kv WHERE tbl = ANY(\(tables)::smallint[])", binds: parameters.bindings)
    }

    private enum Part: CaseIterable { case events, deletes, puts, checkpoints }

    /// The data-modifying statements of `writes` that have rows, with their parameters added in order.
    private static func writeParts(
        _ writes: Writes, schema: String, _ parameters: inout Parameters, only: Part? = nil
    ) throws -> [(part: Part, sql: String)] {
        var parts: [(Part, String)] = []
        for part in Part.allCases where only == nil || only == part {
            switch part {
            case .events where !writes.records.isEmpty:
                parts.append((part, try PostgresRecords.insert(writes.records, schema: schema, &parameters)))
            case .deletes where !writes.deletes.isEmpty:
                let tables = parameters.add(writes.deletes.map { Int16($0.table) })
                let keys = parameters.add(writes.deletes.map { ByteBuffer(bytes: $0.key) })
                parts.append(
                    (
                        part,
                        """
                        DELETE FROM \(schema).kv USING unnest(\(tables)::smallint[], \(keys)::bytea[]) AS d(t, k)
                        WHERE kv.tbl = d.t AND kv.k = d.k
                        """
                    ))
            case .puts where !writes.puts.isEmpty:
                let tables = parameters.add(writes.puts.map { Int16($0.table) })
                let keys = parameters.add(writes.puts.map { ByteBuffer(bytes: $0.key) })
                let values = parameters.add(writes.puts.map { ByteBuffer(bytes: $0.value) })
                parts.append(
                    (
                        part,
                        """
                        INSERT INTO \(schema).kv (tbl, k, v)
                        SELECT * FROM unnest(\(tables)::smallint[], \(keys)::bytea[], \(values)::bytea[])
                        ON CONFLICT (tbl, k) DO UPDATE SET v = EXCLUDED.v
                        """
                    ))
            case .checkpoints where !writes.checkpoints.isEmpty:
                let names = parameters.add(writes.checkpoints.map(\.name))
                let seqs = parameters.add(writes.checkpoints.map { Int64(bitPattern: $0.seq) })
                parts.append(
                    (
                        part,
                        """
                        INSERT INTO \(schema).checkpoints (name, seq)
                        SELECT * FROM unnest(\(names)::text[], \(seqs)::bigint[])
                        ON CONFLICT (name) DO UPDATE SET seq = EXCLUDED.seq
                        """
                    ))
            case .events, .deletes, .puts, .checkpoints:
                break
            }
        }
        return parts
    }
}
