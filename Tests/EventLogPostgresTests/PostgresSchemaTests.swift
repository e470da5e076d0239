import EventLogPostgres
import Foundation
import PostgresNIO
import Synchronization
import TestSupport
import Testing

extension BlockingSuites {
    @Suite struct PostgresSchemaTests {
        @Test(arguments: ["switchboard", "t_0123abcdef99", "a", "_x", "log_2", String(repeating: "a", count: 63)])
        func acceptsPlainNames(_ name: String) throws {
            try PostgresSchema.validate(name)
        }

        @Test(arguments: [
            "", "Switchboard", "1abc", "pg_catalog", "a-b", "a b", "a\"b", "a;drop", "é",
            String(repeating: "a", count: 64),
        ])
        func refusesOtherNames(_ name: String) {
            let error = #expect(throws: EventLogPostgresError.self) { try PostgresSchema.validate(name) }
            #expect(error?.code == .invalidArgument)
        }

        @Test func installsTwiceAndChangesNothingTheSecondTime() throws {
            try withDatabase { db, _, schema in
                try PostgresSchema.install(on: db, schema: schema)
                try db.query("UPDATE \(unescaped: schema).head SET last_seq = 7 WHERE id = 1")
                try PostgresSchema.install(on: db, schema: schema)
                let tables = try db.query(
                    """
                    SELECT table_name::text FROM information_schema.tables WHERE table_schema = \(schema)
                    ORDER BY table_name
                    """
                ).map { try $0.decode(String.self) }
                #expect(tables == ["checkpoints", "command_groups", "events", "head", "kv", "meta", "tables"])
                let head = try db.query("SELECT id, last_seq, last_time, generation FROM \(unescaped: schema).head")
                let (id, lastSeq, lastTime, generation) = try #require(head.first).decode(
                    (Int16, Int64, Int64, Int64).self)
                #expect(head.count == 1)
                #expect((id, lastSeq, lastTime, generation) == (1, 7, Int64.min, 0))
                let version = try db.query(
                    "SELECT convert_from(v, 'UTF8') FROM \(unescaped: schema).meta WHERE k = 'pg.schema'")
                #expect(try version.map { try $0.decode(String.self) } == ["\(PostgresSchema.version)"])
            }
        }

        @Test func concurrentInstallsOfOneSchemaBothSucceed() throws {
            try withDatabase { db, url, schema in
                let other = try connect(url)
                defer { other.close() }
                let failures = Mutex<[String]>([])
                DispatchQueue.concurrentPerform(iterations: 2) { index in
                    do {
                        try PostgresSchema.install(on: index == 0 ? db : other, schema: schema)
                    } catch {
                        failures.withLock { $0.append("\(error)") }
                    }
                }
                #expect(failures.withLock { $0 } == [])
                #expect(try db.query("SELECT count(*) FROM \(unescaped: schema).head").first?.decode(Int64.self) == 1)
            }
        }

        @Test func installRefusesABadSchemaName() throws {
            try withDatabase { db, _, _ in
                let error = #expect(throws: EventLogPostgresError.self) {
                    try PostgresSchema.install(on: db, schema: "x; DROP TABLE y")
                }
                #expect(error?.code == .invalidArgument)
            }
        }

        /// Two writers on two connections: the second `begin_group()` waits for the first transaction's advisory lock,
        /// and then reads the head row as the first left it.
        @Test func beginGroupSerialisesWriters() throws {
            try withDatabase { first, url, schema in
                try PostgresSchema.install(on: first, schema: schema)
                let second = try connect(url)
                defer { second.close() }
                let observer = try connect(url)
                defer { observer.close() }
                let secondPID = try #require(try second.query("SELECT pg_backend_pid()").first?.decode(Int32.self))
                let beginGroup: PostgresQuery = "SELECT last_seq, generation FROM \(unescaped: schema).begin_group()"
                let bump: PostgresQuery =
                    "UPDATE \(unescaped: schema).head SET last_seq = last_seq + $1, generation = generation + 1"

                try first.query("BEGIN")
                let firstHead = try headRow(first.query(beginGroup))
                #expect(firstHead == (0, 0))

                let secondHead = Mutex<Result<(Int64, Int64), EventLogPostgresError>?>(nil)
                let finished = DispatchSemaphore(value: 0)
                Thread {
                    defer { finished.signal() }
                    do {
                        try second.query("BEGIN")
                        let head = try headRow(second.query(beginGroup))
                        try second.query(PostgresQuery(unsafeSQL: bump.sql, binds: bindings(Int64(1))))
                        try second.query("COMMIT")
                        secondHead.withLock { $0 = .success(head) }
                    } catch let error as EventLogPostgresError {
                        secondHead.withLock { $0 = .failure(error) }
                    } catch {
                        secondHead.withLock { $0 = .failure(EventLogPostgresError(.query, "\(error)")) }
                    }
                }.start()

                // Wait (polling, no fixed sleep) until the second writer's backend waits on the advisory lock.
                let deadline = ContinuousClock.now + .seconds(20)
                var waiting = false
                while !waiting && ContinuousClock.now < deadline {
                    let rows = try observer.query(
                        "SELECT wait_event_type, wait_event FROM pg_stat_activity WHERE pid = \(secondPID)")
                    let event = try rows.first?.decode((String?, String?).self)
                    waiting = event?.0 == "Lock" && event?.1 == "advisory"
                    if !waiting { Thread.sleep(forTimeInterval: 0.01) }
                }
                #expect(waiting, "the second writer never waited on the lock")
                #expect(finished.wait(timeout: .now()) == .timedOut, "the second writer did not wait for the first")

                try first.query(PostgresQuery(unsafeSQL: bump.sql, binds: bindings(Int64(5))))
                try first.query("COMMIT")
                #expect(finished.wait(timeout: .now() + 20) == .success)
                let seen = try #require(secondHead.withLock { $0 }).get()
                // Read after the lock was granted: the first writer's commit, not the head as it was at BEGIN.
                #expect(seen == (5, 1))
                let final = try headRow(observer.query(beginGroup))
                #expect(final == (6, 2))
            }
        }
    }
}

/// The one row of `begin_group()`'s last_seq and generation.
private func headRow(_ rows: [PostgresRow]) throws -> (Int64, Int64) {
    guard rows.count == 1, let row = rows.first else { throw EventLogPostgresError(.query, "\(rows.count) head rows") }
    return try row.decode((Int64, Int64).self)
}

private func bindings(_ values: Int64...) -> PostgresBindings {
    var bindings = PostgresBindings()
    for value in values { bindings.append(value) }
    return bindings
}
