import EventLog
import NIOCore
import PostgresNIO

/// A consistent read view of a PostgreSQL log: one `REPEATABLE READ READ ONLY` transaction, so the head row, the
/// events and every table come from one commit point, as an LMDB read transaction gives.
final class PostgresReadTransaction: ReadTransactionStore {
    let database: BlockingPostgres
    let schema: String

    init(database: BlockingPostgres, schema: String) {
        self.database = database
        self.schema = schema
    }

    func lastSeq() throws -> UInt64 {
        let rows = try database.query("SELECT last_seq FROM \(unescaped: schema).head WHERE id = 1")
        return UInt64(bitPattern: try rows.first?.int64() ?? 0)
    }

    func record(at seq: UInt64) throws -> Record? {
        let rows = try database.query(
            "SELECT \(unescaped: PostgresRecords.columns) FROM \(unescaped: schema).events WHERE seq = \(Int64(bitPattern: seq))"
        )
        return try rows.first.map(PostgresRecords.decode)
    }

    func forEach(from start: UInt64, _ body: (Record) throws -> Bool) throws {
        var next = Int64(bitPattern: max(1, start))
        while true {
            let rows = try database.query(
                """
                SELECT \(unescaped: PostgresRecords.columns) FROM \(unescaped: schema).events
                WHERE seq >= \(next) ORDER BY seq LIMIT 1000
                """)
            for row in rows {
                let record = try PostgresRecords.decode(row)
                guard try body(record) else { return }
                next = Int64(bitPattern: record.seq) + 1
            }
            if rows.count < 1_000 { return }
        }
    }

    func get(_ table: Table, _ key: [UInt8]) throws -> [UInt8]? {
        let rows = try database.query(
            "SELECT v FROM \(unescaped: schema).kv WHERE tbl = \(Int16(table.id)) AND k = \(ByteBuffer(bytes: key))")
        return try rows.first.map { Array(buffer: try $0.decode(ByteBuffer.self)) }
    }

    func scan(_ table: Table, from start: [UInt8]?, _ body: ([UInt8], [UInt8]) throws -> Bool) throws {
        var key = ByteBuffer(bytes: start ?? [])
        var inclusive = true
        var limit = 16
        while true {
            let rows =
                inclusive
                ? try database.query(
                    "SELECT k, v FROM \(unescaped: schema).kv WHERE tbl = \(Int16(table.id)) AND k >= \(key) ORDER BY k LIMIT \(limit)"
                )
                : try database.query(
                    "SELECT k, v FROM \(unescaped: schema).kv WHERE tbl = \(Int16(table.id)) AND k > \(key) ORDER BY k LIMIT \(limit)"
                )
            for row in rows {
                let (k, v) = try row.decode((ByteBuffer, ByteBuffer).self)
                guard try body(Array(buffer: k), Array(buffer: v)) else { return }
                key = k
            }
            if rows.count < limit { return }
            inclusive = false
            limit = min(limit * 8, 1_024)
        }
    }

    func count(_ table: Table) throws -> Int {
        let rows = try database.query("SELECT count(*) FROM \(unescaped: schema).kv WHERE tbl = \(Int16(table.id))")
        return Int(try rows.first?.int64() ?? 0)
    }
}
