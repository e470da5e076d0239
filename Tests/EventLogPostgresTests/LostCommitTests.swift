import EventLog
import EventLogPostgres
import Foundation
import Synchronization
import TestSupport
import Testing

/// A COMMIT whose reply is lost is resolved by the group's id, never guessed (issue 26).
///
/// The reply is lost on purpose: a deferred trigger on `command_groups` makes the COMMIT of an armed group slow,
/// and the writer's watchdog for COMMIT (`Recovery.commitTimeout`) is shorter, so the client closes the socket
/// while the server is still committing. Then either the server finishes the COMMIT before the writer's grace
/// runs out (it committed: the callers get their seqs), or the writer terminates the old session (it did not:
/// the group runs again, or fails when it never commits).
@Suite("PostgreSQL failures: a lost COMMIT reply", .serialized)
struct LostCommitTests {
    /// What one try arms the trigger with.
    enum Fault: CaseIterable {
        /// The armed COMMIT finishes after the reply was given up, within the grace: committed.
        case committedLate
        /// The armed COMMIT outlasts the grace: terminated, not committed; the rerun commits.
        case terminatedThenRerun
        /// Every attempt is terminated: the callers get `unavailable`, and nothing was written.
        case neverCommits

        var shots: Int { self == .neverCommits ? 1_000 : 1 }
        var delay: Double { self == .committedLate ? 0.3 : 10 }
    }

    @Test func aLostCommitReplyIsResolvedByTheGroupID() async throws {
        try await PostgresCluster.withPostgres { url, schema in
            let cluster = try await PostgresCluster.shared()
            let directory = TemporaryDirectory()
            var recovery = PostgresLogBackend.Recovery()
            recovery.commitTimeout = .milliseconds(150)
            recovery.inDoubtGrace = .milliseconds(500)
            // Long enough for a rerun on a loaded machine (terminate, connect, run the group again).
            recovery.reconnectTimeout = .seconds(5)
            let messages = MessageCounter()
            let log = try openPostgresLog(
                url: url, schema: schema, directory: directory, recovery: recovery, logger: messages.logger)
            try await log.closeAfter {
                try await onThread { try cluster.psql(Self.faultSQL(schema)) }
                let table = log.table("kv")
                var generator = SeededGenerator(state: 26)
                let faults =
                    (Array(repeating: Fault.committedLate, count: 4)
                    + Array(repeating: .terminatedThenRerun, count: 4) + [.neverCommits, .neverCommits])
                    .shuffled(using: &generator)
                var acknowledged: [String] = []
                var refused: [String] = []
                for (index, fault) in faults.enumerated() {
                    try await onThread {
                        try cluster.psql(
                            """
                            UPDATE \(schema).fault SET shots = \(fault.shots), delay = \(fault.delay);
                            SELECT setval('\(schema).fault_shot', 1, false)
                            """)
                    }
                    // Three commands, most often in one group: a plain append, a decision, another append.
                    let names = ["a", "t", "b"].map { "try \(index) \($0)" }
                    let outcomes = await withTaskGroup(of: (String, (any Error)?).self) { group in
                        for name in names {
                            group.addTask {
                                do {
                                    if name.hasSuffix("t") {
                                        _ = try await log.transact(incrementAndAppend(table, name))
                                    } else {
                                        _ = try await log.append([event(name)])
                                    }
                                    return (name, nil)
                                } catch {
                                    return (name, error)
                                }
                            }
                        }
                        return await group.reduce(into: [(String, (any Error)?)]()) { $0.append($1) }
                    }
                    for (name, error) in outcomes {
                        if let error {
                            #expect(fault == .neverCommits, "\(name) (\(fault)) failed: \(error)")
                            #expect((error as? EventLogPostgresError)?.code == .unavailable, "\(error)")
                            refused.append(name)
                        } else {
                            #expect(fault != .neverCommits, "\(name) committed although every attempt was ended")
                            acknowledged.append(name)
                        }
                    }
                    try await onThread { try cluster.psql("UPDATE \(schema).fault SET shots = 0") }
                    // After every try: each acknowledged event once, the refused ones absent, seqs gapless, no
                    // decision applied twice.
                    try Self.expectConsistent(log, acknowledged: acknowledged, refused: refused)
                }
                // The log goes on without reopening.
                let seqs = try await log.append([event("after")])
                acknowledged.append("after")
                try Self.expectConsistent(log, acknowledged: acknowledged, refused: refused)
                #expect(seqs.lowerBound == UInt64(acknowledged.count))

                let confirmed = messages.count("eventlog.postgres.commit_confirmed")
                let notApplied = messages.count("eventlog.postgres.commit_not_applied")
                print(
                    "lost COMMIT replies: \(messages.count("eventlog.postgres.commit_in_doubt")) in doubt, "
                        + "\(confirmed) resolved as committed, \(notApplied) as not applied "
                        + "(\(messages.count("eventlog.postgres.old_writer_terminated")) old sessions terminated); "
                        + "\(acknowledged.count) events acknowledged, \(refused.count) refused")
                #expect(confirmed >= 4)
                #expect(notApplied >= 4 + 2)
                #expect(messages.count("eventlog.postgres.commit_unresolved") == 0)
            }
        }
    }

    static func expectConsistent(_ log: EventLog, acknowledged: [String], refused: [String]) throws {
        let records = try log.records(from: 1)
        #expect(records.map(\.seq) == records.indices.map { UInt64($0) + 1 })
        let payloads = records.map { String(decoding: $0.payload, as: UTF8.self) }
        #expect(payloads.sorted() == acknowledged.sorted())
        #expect(Set(payloads).isDisjoint(with: refused))
        #expect(try counter(log) == acknowledged.filter { $0.hasSuffix("t") }.count)
    }

    /// The fault: a deferred trigger that makes the COMMITs of the next `shots` groups sleep `delay` seconds
    /// (a sequence counts them: it does not roll back with an aborted attempt).
    static func faultSQL(_ schema: String) -> String {
        """
        CREATE TABLE \(schema).fault (id int PRIMARY KEY, shots bigint NOT NULL, delay float8 NOT NULL);
        INSERT INTO \(schema).fault VALUES (1, 0, 0);
        CREATE SEQUENCE \(schema).fault_shot;
        CREATE FUNCTION \(schema).slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF nextval('\(schema).fault_shot') <= (SELECT shots FROM \(schema).fault WHERE id = 1) THEN
                PERFORM pg_sleep((SELECT delay FROM \(schema).fault WHERE id = 1));
            END IF;
            RETURN NULL;
        END $$;
        CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON \(schema).command_groups
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION \(schema).slow_commit();
        """
    }
}
