import EventLogPostgres
import PostgresNIO
import TestSupport
import Testing

extension BlockingSuites {
    /// `bytea` keys in the `kv` table sort as LMDB's do (memcmp, the shorter key first on a common prefix), so scans
    /// and keyset pages return the same rows in the same order on both backends.
    @Suite struct KeyOrderTests {
        /// 500 distinct keys of 0 to 40 bytes, rich in 0x00, 0xFF and shared prefixes, plus the edge cases.
        static func randomKeys(seed: UInt64) -> [[UInt8]] {
            var generator = SeededGenerator(state: seed)
            let edges: [UInt8] = [0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF]
            var keys: Set<[UInt8]> = [[], [0x00], [0x00, 0x00], [0xFF], [0xFF, 0x00], [0x7F], [0x80]]
            while keys.count < 500 {
                let length = Int.random(in: 0...40, using: &generator)
                keys.insert(
                    (0..<length).map { _ in
                        Bool.random(using: &generator)
                            ? edges[Int.random(in: 0..<edges.count, using: &generator)]
                            : UInt8.random(in: 0...255, using: &generator)
                    })
            }
            return Array(keys)
        }

        /// Inserts `keys` into table 1 (one bind each) and a decoy row into table 2; the value is the key reversed.
        static func insert(_ keys: [[UInt8]], into db: BlockingPostgres, schema: String) throws {
            try db.query("BEGIN")
            for key in keys {
                try db.query(
                    "INSERT INTO \(unescaped: schema).kv (tbl, k, v) VALUES (1, \(bytea(key)), \(bytea(key.reversed())))"
                )
            }
            try db.query("INSERT INTO \(unescaped: schema).kv (tbl, k, v) VALUES (2, \(bytea([0x00])), \(bytea([])))")
            try db.query("COMMIT")
        }

        @Test func byteaSortsLikeLMDB() throws {
            try withDatabase { db, _, schema in
                try PostgresSchema.install(on: db, schema: schema)
                let keys = Self.randomKeys(seed: 0x5EED_0026)
                try Self.insert(keys, into: db, schema: schema)
                let rows = try db.query("SELECT k, v FROM \(unescaped: schema).kv WHERE tbl = 1 ORDER BY k")
                let stored = try rows.map { row in
                    let (k, v) = try row.decode((ByteBuffer, ByteBuffer).self)
                    return (Array(k.readableBytesView), Array(v.readableBytesView))
                }
                #expect(stored.map(\.0) == keys.sorted(by: lmdbOrder))
                #expect(stored.allSatisfy { $0.1 == $0.0.reversed() })
            }
        }

        @Test func keysetPagesReturnTheRightSlices() throws {
            try withDatabase { db, _, schema in
                try PostgresSchema.install(on: db, schema: schema)
                let sorted = Self.randomKeys(seed: 0xC0FF_EE26).sorted(by: lmdbOrder)
                try Self.insert(sorted.shuffled(), into: db, schema: schema)
                func page(from start: [UInt8], limit: Int64, after: Bool = false) throws -> [[UInt8]] {
                    let rows =
                        after
                        ? try db.query(
                            """
                            SELECT k FROM \(unescaped: schema).kv WHERE tbl = \(Int16(1)) AND k > \(bytea(start))
                            ORDER BY k LIMIT \(limit)
                            """)
                        : try db.query(
                            """
                            SELECT k FROM \(unescaped: schema).kv WHERE tbl = \(Int16(1)) AND k >= \(bytea(start))
                            ORDER BY k LIMIT \(limit)
                            """)
                    return try byteColumn(rows)
                }
                func expected(from start: [UInt8], limit: Int) -> [[UInt8]] {
                    Array(sorted.filter { !lmdbOrder($0, start) }.prefix(limit))
                }
                let absent =
                    sorted[200] + [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]
                for start in [
                    [], sorted[0], sorted[100], sorted[499], absent, [0x80], [UInt8](repeating: 0xFF, count: 41),
                ] {
                    #expect(try page(from: start, limit: 37) == expected(from: start, limit: 37))
                }
                // A whole scan in pages of 16, each continued after the last key: every key once, in order.
                var scanned: [[UInt8]] = try page(from: [], limit: 16)
                while let last = scanned.last, scanned.count % 16 == 0 {
                    let next = try page(from: last, limit: 16, after: true)
                    if next.isEmpty { break }
                    scanned += next
                }
                #expect(scanned == sorted)
            }
        }
    }
}
