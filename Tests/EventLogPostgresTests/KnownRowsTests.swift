import EventLog
import Foundation
import PostgresNIO
import Testing

@testable import EventLogPostgres

extension BlockingSuites {
    /// The rows a PostgreSQL writer carries between its groups: the key ranges it knows whole, and scans and reads
    /// inside them answered from memory — the same answers as the database, without a round trip.
    @Suite struct KnownRowsTests {
        /// Ranges inserted at random over a small key space answer `end(covering:)` as the set of covered keys does,
        /// and stay sorted and disjoint.
        @Test func keyRangesMatchABruteForceModel() {
            let alphabet: [UInt8] = [0x00, 0x01, 0x7F, 0xFF]
            var universe: [[UInt8]] = alphabet.map { [$0] }
            for a in alphabet { for b in alphabet { universe.append([a, b]) } }
            universe.sort(by: lmdbOrder)
            var generator = SeededGenerator(state: 0x4B4E_0026)
            for round in 0..<200 {
                var ranges = KeyRanges()
                var covered = Set<[UInt8]>()
                for _ in 0..<Int.random(in: 1...6, using: &generator) {
                    let low = universe.randomElement(using: &generator)!
                    let high: [UInt8]? =
                        Bool.random(using: &generator) ? nil : universe.randomElement(using: &generator)!
                    ranges.insert(low: low, high: high)
                    for key in universe where !lmdbOrder(key, low) && (high == nil || !lmdbOrder(high!, key)) {
                        covered.insert(key)
                    }
                }
                for key in universe {
                    #expect((ranges.end(covering: key) != nil) == covered.contains(key), "round \(round), key \(key)")
                }
                for (a, b) in zip(ranges.ranges, ranges.ranges.dropFirst()) {
                    #expect(a.high.map { lmdbOrder($0, b.low) } == true, "round \(round): \(a) overlaps \(b)")
                }
            }
        }

        /// A scan that read a range whole answers every later scan and read inside it from memory, in this group and
        /// in the next one started from what this one left, with the group's own writes merged in.
        @Test func scansAndReadsInsideAKnownRangeCostNoRoundTrip() throws {
            try withDatabase { db, _, schema in
                try PostgresSchema.install(on: db, schema: schema)
                let keys = (0..<40).map { [UInt8(0x10), UInt8($0 * 2)] }
                try KeyOrderTests.insert(keys, into: db, schema: schema)
                let table = Table(name: "t", id: 1)
                func scan(_ txn: PostgresWriteTransaction, from start: [UInt8]?, limit: Int = .max) throws -> [[UInt8]]
                {
                    var seen: [[UInt8]] = []
                    try txn.scan(table, from: start) { key, value in
                        #expect(value == key.reversed())
                        seen.append(key)
                        return seen.count < limit
                    }
                    return seen
                }

                try db.query("BEGIN")
                let first = PostgresWriteTransaction(database: db, schema: schema)
                #expect(try scan(first, from: nil) == keys)
                let pages = first.reads
                #expect(pages == 2)  // 16 rows, then the other 24 of a page of 128
                #expect(try scan(first, from: [0x10, 21], limit: 3) == [[0x10, 22], [0x10, 24], [0x10, 26]])
                #expect(try first.get(table, [0x10, 21]) == nil)
                #expect(try first.get(table, [0x10, 22]) == [22, 0x10])
                #expect(try first.get(table, [0x20]) == nil)  // past the last key: the scan reached the table's end
                #expect(first.reads == pages)
                try first.put(table, [0x10, 21], [21, 0x10])
                #expect(try first.delete(table, [0x10, 22]))
                let written = keys.filter { $0 != [0x10, 22] } + [[0x10, 21]]
                #expect(try scan(first, from: nil) == written.sorted(by: lmdbOrder))
                #expect(first.reads == pages)
                try first.flush()
                try db.query("COMMIT")

                let known = try #require(first.takeKnownAfterCommit(limit: 1_000))
                try db.query("BEGIN")
                let second = PostgresWriteTransaction(database: db, schema: schema, known: known)
                #expect(try scan(second, from: nil) == written.sorted(by: lmdbOrder))
                #expect(try second.get(table, [0x10, 22]) == nil)
                #expect(second.reads == 0)
                // The decoy table was never read: it costs a round trip, and so does a key outside any known range.
                var decoy: [[UInt8]] = []
                try second.scan(Table(name: "u", id: 2), from: nil) { key, _ in
                    decoy.append(key)
                    return true
                }
                #expect(decoy == [[0x00]] && second.reads == 1)
                try db.query("ROLLBACK")
            }
        }

        /// A writer that has the log to itself loads a small table whole at its first miss: later misses (fresh ids)
        /// cost nothing. A table over the limit is read row by row and reported, so the writer does not try again.
        @Test func aSmallTableIsLoadedWholeAtItsFirstMiss() throws {
            try withDatabase { db, _, schema in
                try PostgresSchema.install(on: db, schema: schema)
                let keys = (0..<40).map { [UInt8(0x10), UInt8($0 * 2)] }
                try KeyOrderTests.insert(keys, into: db, schema: schema)
                let table = Table(name: "t", id: 1)
                try db.query("BEGIN")
                defer { _ = try? db.query("ROLLBACK") }
                let small = PostgresWriteTransaction(database: db, schema: schema, wholeTableRows: 100)
                #expect(try small.get(table, [0x10, 1]) == nil)
                #expect(small.reads == 1 && small.tooLarge.isEmpty)
                #expect(try small.get(table, [0x10, 3]) == nil && small.get(table, [0x10, 4]) == [4, 0x10])
                #expect(try small.get(table, [0x30]) == nil)
                #expect(small.reads == 1)

                let large = PostgresWriteTransaction(database: db, schema: schema, wholeTableRows: 10)
                #expect(try large.get(table, [0x10, 61]) == nil)
                #expect(large.tooLarge == [1])
                #expect(try large.get(table, [0x10, 3]) == nil)  // inside the 11 rows read: known
                #expect(large.reads == 2)  // the attempt, then the point read of [0x10, 61]
                #expect(try large.get(table, [0x10, 63]) == nil)
                #expect(large.reads == 3)  // tried once only
            }
        }

        /// The statement that closes a group after it emptied a table and wrote to it again: the emptying goes first,
        /// apart, and the close leaves only the new rows, moves the head, records the group and returns the new
        /// generation; with the head moved meanwhile it returns nothing (the writer then refuses the group).
        @Test func aGroupThatEmptiedATableClosesWithOnlyItsNewRows() throws {
            try withDatabase { db, _, schema in
                try PostgresSchema.install(on: db, schema: schema)
                try KeyOrderTests.insert((0..<20).map { [UInt8($0)] }, into: db, schema: schema)
                let table = Table(name: "t", id: 1)
                func closing(previousLast: Int64) -> GroupStatements.Closing {
                    GroupStatements.Closing(
                        group: UUID(), seqs: nil, previousLast: previousLast, lastTime: 7, committedAt: 7,
                        writer: "test",
                        channel: PostgresSchema.notificationChannel(schema: schema))
                }
                try db.query("BEGIN")
                let txn = PostgresWriteTransaction(database: db, schema: schema)
                try txn.removeAll(table)
                try txn.put(table, [5], [2])
                try txn.put(table, [40], [2])
                try txn.putCheckpoint("reader", seq: 3)
                let generation = try txn.flush(closing: closing(previousLast: 0))
                try db.query("COMMIT")
                #expect(generation == 1)
                let rows = try db.query("SELECT k, v FROM \(unescaped: schema).kv WHERE tbl = 1 ORDER BY k")
                #expect(try byteColumn(rows) == [[5], [40]])
                let head = try db.query("SELECT last_seq, generation FROM \(unescaped: schema).head")
                let (lastSeq, headGeneration) = try #require(try head.first?.decode((Int64, Int64).self))
                #expect(lastSeq == 0 && headGeneration == 1)
                let groups = try db.query("SELECT count(*)::bigint FROM \(unescaped: schema).command_groups")
                #expect(try groups.first?.int64() == 1)
                let checkpoint = try db.query("SELECT seq FROM \(unescaped: schema).checkpoints WHERE name = 'reader'")
                #expect(try checkpoint.first?.int64() == 3)

                try db.query("BEGIN")
                let stale = PostgresWriteTransaction(database: db, schema: schema)
                try stale.put(table, [6], [3])
                #expect(try stale.flush(closing: closing(previousLast: 99)) == nil)
                try db.query("ROLLBACK")
            }
        }

        /// Random puts, deletes, reads and scans over several groups, each started from what the last one left: every
        /// answer equals a plain model's, and the database ends as the model.
        @Test func groupsStartedFromKnownRowsAnswerAsTheDatabase() throws {
            try withDatabase { db, _, schema in
                try PostgresSchema.install(on: db, schema: schema)
                let table = Table(name: "t", id: 1)
                var model: [[UInt8]: [UInt8]] = [:]
                var generator = SeededGenerator(state: 0x0026_4B4E)
                func randomKey() -> [UInt8] {
                    (0..<Int.random(in: 1...3, using: &generator)).map { _ in UInt8.random(in: 0...5, using: &generator)
                    }
                }
                // Rows stored before the first group, so the writer knows only the ones it reads.
                try db.query("BEGIN")
                for _ in 0..<150 {
                    let key = randomKey()
                    guard model[key] == nil else { continue }
                    model[key] = [0xFF, UInt8(model.count)]
                    try db.query(
                        "INSERT INTO \(unescaped: schema).kv (tbl, k, v) VALUES (1, \(bytea(key)), \(bytea(model[key]!)))"
                    )
                }
                try db.query("COMMIT")
                var known = KnownRows()
                for group in 0..<30 {
                    try db.query("BEGIN")
                    let txn = PostgresWriteTransaction(database: db, schema: schema, known: known)
                    for step in 0..<25 {
                        let key = randomKey()
                        switch Int.random(in: 0..<4, using: &generator) {
                        case 0:
                            let value = [UInt8(group), UInt8(step)]
                            try txn.put(table, key, value)
                            model[key] = value
                        case 1:
                            #expect(try txn.delete(table, key) == (model.removeValue(forKey: key) != nil))
                        case 2:
                            #expect(try txn.get(table, key) == model[key], "group \(group) step \(step)")
                        default:
                            let limit = Int.random(in: 1...12, using: &generator)
                            var seen: [[UInt8]] = []
                            try txn.scan(table, from: key) { found, value in
                                #expect(model[found] == value)
                                seen.append(found)
                                return seen.count < limit
                            }
                            let expected = model.keys.filter { !lmdbOrder($0, key) }.sorted(by: lmdbOrder).prefix(limit)
                            #expect(seen == Array(expected), "group \(group) step \(step)")
                        }
                    }
                    try txn.flush()
                    try db.query("COMMIT")
                    known = txn.takeKnownAfterCommit(limit: 10_000) ?? KnownRows()
                }
                let stored = try db.query("SELECT k, v FROM \(unescaped: schema).kv WHERE tbl = 1 ORDER BY k")
                let rows = try stored.map { row in
                    let (k, v) = try row.decode((ByteBuffer, ByteBuffer).self)
                    return (Array(k.readableBytesView), Array(v.readableBytesView))
                }
                #expect(rows.map(\.0) == model.keys.sorted(by: lmdbOrder))
                #expect(rows.allSatisfy { model[$0.0] == $0.1 })
            }
        }
    }
}
