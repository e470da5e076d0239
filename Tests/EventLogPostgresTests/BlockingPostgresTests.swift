import EventLogPostgres
import Foundation
import PostgresNIO
import TestSupport
import Testing

extension BlockingSuites {
    @Suite struct BlockingPostgresTests {
        @Test(arguments: [false, true])
        func connectsWithTheSessionSettings(overTCP: Bool) throws {
            let cluster = try PostgresCluster.shared()
            // Over TCP with the default sslmode (prefer): the cluster has no TLS, so the client falls back to plain.
            let url =
                overTCP
                ? "postgres://postgres@127.0.0.1:\(cluster.port)/postgres?application_name=core"
                : cluster.url()
            let db = try connect(url)
            defer { db.close() }
            let rows = try db.query(
                """
                SELECT current_setting('application_name'), current_setting('statement_timeout'),
                    current_setting('idle_in_transaction_session_timeout'), inet_server_addr() IS NULL
                """)
            let (name, statement, idle, viaSocket) = try #require(rows.first).decode(
                (String, String, String, Bool).self)
            #expect(name == (overTCP ? "core" : "switchboard"))
            #expect(statement == "30s")
            #expect(idle == "10s")
            #expect(viaSocket == !overTCP)
        }

        @Test func theOptionsBecomeStartupParameters() {
            var options = BlockingPostgres.Options()
            #expect(
                options.startupParameters(after: []).map { "\($0.0)=\($0.1)" } == [
                    "application_name=switchboard", "statement_timeout=30000",
                    "idle_in_transaction_session_timeout=10000", "tcp_keepalives_idle=10", "tcp_keepalives_interval=5",
                    "tcp_keepalives_count=3",
                ])
            #expect(
                options.startupParameters(after: [("application_name", "core")]).first.map { "\($0.0)=\($0.1)" }
                    == "application_name=core")
            options.applicationName = "writer"
            options.statementTimeout = .milliseconds(1500)
            options.idleInTransactionSessionTimeout = nil
            options.tcpKeepalive = nil
            #expect(
                options.startupParameters(after: [("application_name", "core")]).map { "\($0.0)=\($0.1)" } == [
                    "application_name=writer", "statement_timeout=1500",
                ])
        }

        @Test func theWatchdogClosesAHungQuery() throws {
            try withDatabase { db, _, _ in
                let start = ContinuousClock.now
                let error = #expect(throws: EventLogPostgresError.self) {
                    try db.query("SELECT pg_sleep(5)", timeout: .milliseconds(300))
                }
                let elapsed = ContinuousClock.now - start
                #expect(error?.code == .timeout)
                #expect(error?.message.contains("pg_sleep") == true)
                #expect(elapsed >= .milliseconds(300))
                #expect(elapsed < .seconds(2), "took \(elapsed)")
                #expect(db.isClosed)
                // A closed connection stays closed.
                let next = #expect(throws: EventLogPostgresError.self) { try db.query("SELECT 1") }
                #expect(next?.code == .unavailable)
            }
        }

        @Test func theServersStatementTimeoutIsATimeoutAndKeepsTheConnection() throws {
            var options = BlockingPostgres.Options()
            options.statementTimeout = .milliseconds(200)
            let db = try connect(try PostgresCluster.shared().url(), options: options)
            defer { db.close() }
            let error = #expect(throws: EventLogPostgresError.self) { try db.query("SELECT pg_sleep(3)") }
            #expect(error?.code == .timeout)
            #expect(error?.sqlState == "57014")
            #expect(!db.isClosed)
            #expect(try db.query("SELECT 1").first?.decode(Int.self) == 1)
        }

        @Test func aRefusedStatementIsAQueryErrorWithItsSQLState() throws {
            try withDatabase { db, _, _ in
                let error = #expect(throws: EventLogPostgresError.self) { try db.query("SELECT 1 / 0") }
                #expect(error?.code == .query)
                #expect(error?.sqlState == "22012")
                #expect(error?.message.contains("division by zero") == true)
                let after = try db.query("SELECT 2")
                #expect(try after.map { try $0.decode(Int.self) } == [2])
            }
        }

        @Test func connectionFailuresAreClassified() throws {
            let cluster = try PostgresCluster.shared()
            // No server on that socket: unavailable.
            let absent = #expect(throws: EventLogPostgresError.self) {
                try connect("postgres://postgres@/postgres?host=\(cluster.directory)&port=\(cluster.port + 1)")
            }
            #expect(absent?.code == .unavailable)
            // The server refuses the database: query, with its SQLSTATE.
            let missing = #expect(throws: EventLogPostgresError.self) { try connect(cluster.url(database: "nope")) }
            #expect(missing?.code == .query)
            #expect(missing?.sqlState == "3D000")
        }

        @Test func theAsyncVariantQueriesWithoutBlocking() async throws {
            try await PostgresCluster.withPostgres { url, _ in
                let db = try await BlockingPostgres.connect(to: PostgresURL(url), logger: quietLogger)
                let rows = try await db.query("SELECT generate_series(1, 3)")
                #expect(try rows.map { try $0.decode(Int.self) } == [1, 2, 3])
                let error = await #expect(throws: EventLogPostgresError.self) {
                    try await db.query("SELECT pg_sleep(5)", timeout: .milliseconds(200))
                }
                #expect(error?.code == .timeout)
                #expect(db.isClosed)
                await db.close()
            }
        }
    }
}
