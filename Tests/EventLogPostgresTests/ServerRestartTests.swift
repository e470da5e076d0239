import EventLog
import EventLogPostgres
import Foundation
import Synchronization
import TestSupport
import Testing

/// PostgreSQL's sessions killed, and the server restarted, in the middle of command groups (issue 26): every
/// acknowledged event is in the log once, read back with its checksum, seqs gapless; the writer, the readers and
/// the listener carry on by themselves, without reopening the log.
@Suite("PostgreSQL failures: killed sessions and a restart", .serialized)
struct ServerRestartTests {
    /// What the workers were told.
    struct Ledger {
        var acknowledged: [String] = []
        var decisions = 0
        var failures: [String] = []
    }

    @Test func acknowledgedEventsSurviveKilledSessionsAndARestart() async throws {
        // A cluster of its own: the restart would break the shared one's other suites.
        let cluster = try await onThread { try PostgresCluster() }
        defer { cluster.stop() }
        let directory = TemporaryDirectory()
        var options = BlockingPostgres.Options()
        options.queryTimeout = .seconds(5)
        var recovery = PostgresLogBackend.Recovery()
        recovery.inDoubtGrace = .milliseconds(500)
        let messages = MessageCounter()
        let log = try openPostgresLog(
            url: cluster.url(), schema: "chaos", directory: directory, options: options, recovery: recovery,
            logger: messages.logger)
        try await log.closeAfter {
            let ledger = Shared(Ledger())
            let stop = Shared(false)
            let seen = Shared<[UInt64]>([])
            let tailResumptions = Shared(0)
            // A tail started before the chaos; on an error it resumes from the next seq, as a reader does.
            let tail = Task {
                while !Task.isCancelled {
                    do {
                        for try await record in log.tail(from: UInt64(seen.withLock { $0.count }) + 1) {
                            seen.withLock { $0.append(record.seq) }
                        }
                        return
                    } catch {
                        tailResumptions.withLock { $0 += 1 }
                        try? await Task.sleep(for: .milliseconds(20))
                    }
                }
            }
            let table = log.table("kv")
            let workers = Task {
                await withTaskGroup(of: Void.self) { group in
                    for worker in 0..<4 {
                        group.addTask {
                            var index = 0
                            while !stop.value {
                                let name = "w\(worker) \(index)"
                                let decides = index % 3 == 0
                                do {
                                    if decides {
                                        _ = try await log.transact(incrementAndAppend(table, name))
                                    } else {
                                        _ = try await log.append([event(name)])
                                    }
                                    ledger.withLock {
                                        $0.acknowledged.append(name)
                                        if decides { $0.decisions += 1 }
                                    }
                                    index += 1
                                } catch {
                                    // Refused: nothing of it was written; the same command is tried again.
                                    ledger.withLock { $0.failures.append("\(name): \(error)") }
                                }
                            }
                        }
                    }
                }
            }
            // The chaos, each step once the workers have made progress since the last.
            let kill = """
                SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                WHERE datname = current_database() AND pid <> pg_backend_pid()
                """
            var killed = 0
            for step in 0..<7 {
                let before = ledger.withLock { $0.acknowledged.count }
                try await waitUntil("the workers made progress before step \(step)") {
                    ledger.withLock { $0.acknowledged.count } >= before + 20
                }
                if step == 3 {
                    try await onThread { try cluster.restart() }
                } else {
                    killed += try await onThread { Int(try cluster.psql(kill).trimmed) ?? 0 }
                }
            }
            let afterChaos = ledger.withLock { $0.acknowledged.count }
            try await waitUntil("the workers carried on after the chaos") {
                ledger.withLock { $0.acknowledged.count } >= afterChaos + 40
            }
            stop.withLock { $0 = true }
            await workers.value

            // New commands work without reopening the log.
            _ = try await log.append([event("after")])
            let final = ledger.withLock {
                $0.acknowledged.append("after")
                return $0
            }
            let records = try log.records(from: 1)  // each verified against its stored checksum
            #expect(records.map(\.seq) == records.indices.map { UInt64($0) + 1 })
            let payloads = records.map { String(decoding: $0.payload, as: UTF8.self) }
            #expect(payloads.count == final.acknowledged.count)
            #expect(payloads.sorted() == final.acknowledged.sorted())
            #expect(try counter(log) == final.decisions)
            try await waitUntil("the tail saw every record") { seen.withLock { $0.count } >= records.count }
            tail.cancel()
            #expect(seen.value == records.map(\.seq))
            print(
                "chaos: \(records.count) records, \(killed) sessions killed over 6 rounds and one restart; "
                    + "\(final.failures.count) commands refused and tried again, tail resumed "
                    + "\(tailResumptions.value) times; backend: \(messages.all)")
            if let failure = final.failures.first { print("first refusal: \(failure)") }
            #expect(messages.count("eventlog.postgres.commit_unresolved") == 0)
        }
    }
}

extension String {
    fileprivate var trimmed: String { trimmingCharacters(in: .whitespacesAndNewlines) }
}
