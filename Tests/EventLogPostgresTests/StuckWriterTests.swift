import EventLog
import EventLogPostgres
import Foundation
import PostgresNIO
import TestSupport
import Testing

/// A writer that holds the log's lock and stops (SIGSTOP, a hung thread) leaves its transaction open: the
/// server's `idle_in_transaction_session_timeout` ends its session, so the others go on (issue 26).
@Suite("PostgreSQL failures: a stuck writer", .serialized)
struct StuckWriterTests {
    /// A raw session takes the log's writer lock and does nothing more; the log's append waits for it, then
    /// completes once the server has ended that session.
    @Test func aSessionStuckHoldingTheLockIsEndedByTheIdleTimeout() async throws {
        try await PostgresCluster.withPostgres { url, schema in
            let directory = TemporaryDirectory()
            let log = try openPostgresLog(url: url, schema: schema, directory: directory)
            try await log.closeAfter {
                let stuck = try await BlockingPostgres.connect(to: PostgresURL(url), logger: quietLogger)
                try await stuck.query("BEGIN")
                try await stuck.query(
                    PostgresQuery(unsafeSQL: "SELECT pg_advisory_xact_lock(\(PostgresSchema.lockKey(schema: schema)))"))
                // The short idle timeout only once the lock is held (a loaded machine may pause between BEGIN and
                // the lock longer than a second); the server's timer starts when this statement ends: after `start`.
                let start = ContinuousClock.now
                try await stuck.query("SET idle_in_transaction_session_timeout = 1000")
                let seqs = try await log.append([event("after the stuck writer")])
                let waited = ContinuousClock.now - start
                #expect(seqs == 1..<2)
                #expect(waited >= .milliseconds(950), "the append did not wait for the lock: \(waited)")
                // A bound for a loaded machine (CI's two cores took 7 s once): the point is that it ends at all.
                #expect(waited < .seconds(20), "took \(waited)")
                let error = await #expect(throws: EventLogPostgresError.self) { try await stuck.query("SELECT 1") }
                #expect(error?.code == .unavailable)
                await stuck.close()
            }
        }
    }

    /// The log's own writer stops inside a group (its body hangs): another log's append completes after the
    /// idle timeout, and when the body comes back, the stuck writer runs its group again on a new session.
    @Test func aLogWhoseWriterHungGoesOnAfterItsSessionWasEnded() async throws {
        try await PostgresCluster.withPostgres { url, schema in
            let directory = TemporaryDirectory()
            var options = BlockingPostgres.Options()
            options.idleInTransactionSessionTimeout = .seconds(1)
            let messages = MessageCounter()
            let a = try openPostgresLog(
                url: url, schema: schema, directory: directory, worker: "a", options: options,
                logger: messages.logger)
            let b = try openPostgresLog(url: url, schema: schema, directory: directory, worker: "b")
            try await a.closeAfter {
                try await b.closeAfter {
                    let release = DispatchSemaphore(value: 0)
                    let runs = Shared(0)
                    let table = a.table("kv")
                    let decide = incrementAndAppend(table, "a")
                    let hung = Task {
                        try await a.transact { context in
                            // The first run hangs holding the lock (the group's transaction is open).
                            if runs.withLock({
                                $0 += 1; return $0
                            }) == 1 {
                                release.wait()
                            }
                            try decide(&context)
                        }
                    }
                    try await waitUntil("a's body runs") { runs.value == 1 }
                    let start = ContinuousClock.now
                    let seqs = try await b.append([event("b")])
                    let waited = ContinuousClock.now - start
                    #expect(seqs == 1..<2)
                    // A bound for a loaded machine (CI's two cores took 7 s once): the point is that it ends at all.
                    #expect(waited < .seconds(20), "took \(waited)")
                    release.signal()
                    let committed = try await hung.value
                    #expect(committed.seqs == 2..<3)
                    #expect(runs.value == 2)
                    let records = try b.records(from: 1)
                    #expect(records.map { String(decoding: $0.payload, as: UTF8.self) } == ["b", "a"])
                    #expect(try counter(b) == 1)
                    #expect(messages.count("eventlog.postgres.group_retry") >= 1)
                }
            }
        }
    }
}
