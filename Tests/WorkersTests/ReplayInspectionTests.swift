// Acceptance tests of `replay`'s verification, state at a point, raw export, conversations and bad input.
@testable import EventLog
import SwitchboardEvents
import Foundation
import Projections
import TestSupport
import Testing

@Suite(.timeLimit(.minutes(2)))
struct ReplayInspectionTests {
    // MARK: Verify

    @Test func verifyNamesTheSeqOfACorruptedRecord() async throws {
        let world = try ReplayWorld()
        let worker = ReplayWorld.owner("wa-1")
        let lease = try await world.acquire(as: worker)
        _ = try await world.enqueueDelivery(key: "msg-1:0", to: "+15550001", text: "first")
        _ = try await world.enqueueDelivery(key: "msg-2:0", to: "+15550002", text: "marker-corrupt-me-zz")
        try await world.deliver(as: worker, leaseToken: lease)
        let target = try #require(try world.records().first { $0.payloadText.contains("marker-corrupt-me-zz") }).seq
        let last = try world.engine.log.lastSeq()
        await world.close()

        let clean = try await world.replay("verify")
        #expect(clean.status == 0, "\(clean)")
        let summary = "[OK] \(last) records, seqs 1...\(last) gapless, checksums verified"
        #expect(clean.lines.last?.hasPrefix(summary) == true, "\(clean)")

        #expect(try corruptEveryOccurrence(of: "marker-corrupt-me-zz", in: world.directory.sub("data.mdb")) >= 1)
        let corrupt = try await world.replay("verify")
        #expect(corrupt.status == 1, "\(corrupt)")
        #expect(corrupt.lines.filter { $0.hasPrefix("[FAIL] seq ") }.count == 1, "\(corrupt)")
        #expect(corrupt.lines.first?.hasPrefix("[FAIL] seq \(target): corruptRecord") == true, "\(corrupt)")
        #expect(corrupt.lines.last == "[FAIL] 1 problem(s) in \(last) records", "\(corrupt)")
    }

    @Test func verifyCatchesAProjectionChangedOutsideTheProjector() async throws {
        let world = try ReplayWorld()
        let conversation = conversationID(channel: "whatsapp", accountID: "default", contactID: "+15550009")
        let jobID = try await world.engine.enqueueJob(NewJob(idempotencyKey: "inbound:9", conversationID: conversation))
            .jobID
        _ = try await world.claimJob()
        await world.close()

        let clean = try await world.replay("verify")
        #expect(clean.status == 0, "\(clean)")
        #expect(clean.lines.last?.contains("equals live") == true, "\(clean)")
        let cleanJSON = try await world.replay("verify", "--json")
        let cleanObject = try #require(try cleanJSON.objects().first)
        #expect(cleanObject["ok"] as? Bool == true)
        #expect(replayUInt(cleanObject["records"]) == 2)

        // Someone writes p.jobs directly, bypassing the log.
        var configuration = EventLogConfiguration(
            directory: world.path, writer: WriterIdentity(role: "test", workerID: "tamperer"))
        configuration.projector = SwitchboardProjector()
        let log = try EventLog(configuration, logger: replayQuietLogger)
        let table = log.table(ProjectionTable.jobs)
        let changed = try await log.transact { context -> Bool in
            guard var value = try context.tables.get(table, Array(jobID.utf8)), !value.isEmpty else { return false }
            value[value.count - 1] ^= 0x01
            try context.projectionWriter.put(table, Array(jobID.utf8), value)
            return true
        }.value
        await log.close()
        try #require(changed, "no p.jobs entry for \(jobID)")

        let tampered = try await world.replay("verify")
        #expect(tampered.status == 1, "\(tampered)")
        #expect(
            tampered.lines.contains {
                $0.hasPrefix("[FAIL] projections: rebuild digest ") && $0.contains("differs from live")
            }, "\(tampered)")
        #expect(tampered.lines.last == "[FAIL] 1 problem(s) in 2 records", "\(tampered)")
        let json = try await world.replay("verify", "--json")
        #expect(json.status == 1)
        let object = try #require(try json.objects().first)
        #expect(object["ok"] as? Bool == false)
        let problems = try #require(object["problems"] as? [[String: Any]], "\(json)")
        #expect(problems.map { $0["kind"] as? String } == ["projection_mismatch"], "\(json)")
    }

    // MARK: State at a point

    /// A job enqueued, claimed 10 s later and completed 10 s after that (seqs 1, 2, 3).
    static func oneCompletedJob() async throws -> (world: ReplayWorld, claimed: Record, completed: Record) {
        let world = try ReplayWorld()
        let conversation = conversationID(channel: "whatsapp", accountID: "default", contactID: "+15550004")
        let jobID = try await world.engine.enqueueJob(NewJob(idempotencyKey: "inbound:4", conversationID: conversation))
            .jobID
        world.clock.advance(.seconds(10))
        let claim = try await world.claimJob()
        world.clock.advance(.seconds(10))
        #expect(try await world.engine.completeJob(jobID, token: claim.token) == .accepted)
        let records = try world.records()
        try #require(records.map(\.type) == [JobEnqueued.eventType, JobClaimed.eventType, JobCompleted.eventType])
        await world.close()
        return (world, records[1], records[2])
    }

    @Test func stateAtASeqShowsTheJobRunningAndNowCompleted() async throws {
        let (world, _, _) = try await Self.oneCompletedJob()

        let then = try await world.replay("state", "--at", "2")
        #expect(then.status == 0, "\(then)")
        #expect(then.lines.first?.hasPrefix("state at seq 2 (") == true, "\(then)")
        #expect(then.lines.contains("jobs: running=1"), "\(then)")

        let now = try await world.replay("state")
        #expect(now.status == 0, "\(now)")
        #expect(now.lines.first?.hasPrefix("state at seq 3 (") == true, "\(now)")
        #expect(now.lines.contains("jobs: completed=1"), "\(now)")

        let thenJSON = try await world.replay("state", "--at", "2", "--json")
        let nowJSON = try await world.replay("state", "--json")
        let a = try #require(try thenJSON.objects().first)
        let b = try #require(try nowJSON.objects().first)
        #expect(a["jobs"] as? [String: Int] == ["running": 1], "\(thenJSON)")
        #expect(b["jobs"] as? [String: Int] == ["completed": 1], "\(nowJSON)")
        #expect(replayUInt(a["seq"]) == 2 && replayUInt(b["seq"]) == 3)
        #expect(a["digest"] as? String != b["digest"] as? String)

        // Rebuilt up to the last seq, the state is the live state.
        let rebuilt = try await world.replay("state", "--at", "3", "--json")
        #expect(try rebuilt.objects().first?["digest"] as? String == b["digest"] as? String, "\(rebuilt)")
    }

    @Test func stateAtAnISOTimeBetweenRecordsShowsTheStateThen() async throws {
        let (world, claimed, _) = try await Self.oneCompletedJob()
        let between = claimed.timestamp.advanced(by: .seconds(5)).description

        let then = try await world.replay("state", "--at", between)
        #expect(then.status == 0, "\(then)")
        #expect(then.lines.first?.hasPrefix("state at seq 2 (\(claimed.timestamp))") == true, "\(then)")
        #expect(then.lines.contains("jobs: running=1"), "\(then)")
    }

    /// `--at <time>` with the time `replay` itself prints for a record (microseconds) must include that record.
    @Test func stateAtTheExactTimeOfARecordIncludesThatRecord() async throws {
        let (world, claimed, completed) = try await Self.oneCompletedJob()

        let atCompletion = try await world.replay("state", "--at", completed.timestamp.description)
        #expect(atCompletion.status == 0, "\(atCompletion)")
        #expect(atCompletion.lines.first?.hasPrefix("state at seq 3 ") == true, "\(atCompletion)")
        #expect(atCompletion.lines.contains("jobs: completed=1"), "\(atCompletion)")

        let atClaim = try await world.replay("state", "--at", claimed.timestamp.description)
        #expect(atClaim.lines.contains("jobs: running=1"), "\(atClaim)")
    }

    /// A seq past the end of the log is not a point of the log: refuse it, or show the state at the end — never
    /// judge leases at a made-up time.
    @Test func aSeqPastTheEndNeverShowsAnExpiredLeaseAsHeld() async throws {
        let world = try ReplayWorld()
        let worker = ReplayWorld.owner("wa-1")
        _ = try await world.acquire(as: worker)
        world.clock.advance(.seconds(60))  // past the 45 s TTL, never renewed
        _ = try await world.enqueueDelivery(key: "msg-1:0", to: "+15550001")
        let last = try world.engine.log.lastSeq()
        await world.close()

        let now = try await world.replay("lease", "get", "--account", "default")
        #expect(now.lines.first?.hasPrefix("\(ReplayWorld.resource)\texpired\towner=\(worker)\t") == true, "\(now)")

        let beyond = try await world.replay("lease", "get", "--account", "default", "--at", "\(last + 100)")
        #expect(beyond.status != 0 || beyond.lines == now.lines, "\(beyond)")
        let state = try await world.replay("state", "--at", "\(last + 100)")
        #expect(state.status != 0 || state.lines.first?.hasPrefix("state at seq \(last) (") == true, "\(state)")
    }

    // MARK: Timeline filters

    /// `--account telegram/default` names one channel account; the same account id on WhatsApp is another one.
    @Test func timelineOfAnAccountLeavesOutTheSameAccountIDOnAnotherChannel() async throws {
        let world = try ReplayWorld()
        for channel in ["whatsapp", "telegram"] {
            let result = try await world.engine.ingest(
                InboundMessage(
                    channel: channel, accountID: "default", externalID: "\(channel)-1", contactID: "4242", text: "hi"))
            guard case .accepted = result else {
                Issue.record("expected the message accepted, got \(result)")
                return
            }
        }
        let records = try world.records()
        let whatsapp = records.filter { $0.payloadText.contains("\"channel\":\"whatsapp\"") }.map(\.seq)
        let telegram = records.filter { $0.payloadText.contains("\"channel\":\"telegram\"") }.map(\.seq)
        try #require(whatsapp.count == 2 && telegram.count == 2, "\(records.map(\.payloadText))")
        await world.close()

        let onTelegram = try await world.replay("timeline", "--account", "telegram/default")
        #expect(onTelegram.status == 0, "\(onTelegram)")
        #expect(onTelegram.seqs == telegram, "\(onTelegram)")
        let onWhatsApp = try await world.replay("timeline", "--account", "default")
        #expect(onWhatsApp.seqs == whatsapp, "\(onWhatsApp)")
    }

    // MARK: Export

    /// Two contacts write on one account; c1 writes twice. Seqs: c1 contact 1, message 2, job 3; c2 contact 4,
    /// message 5, job 6; c1 message 7, job 8.
    static func twoContacts() async throws -> (world: ReplayWorld, records: [Record]) {
        let world = try ReplayWorld()
        let messages = [("c1", "hi from c1"), ("c2", "hello from c2"), ("c1", "c1 again")]
        for (index, (contact, text)) in messages.enumerated() {
            let result = try await world.engine.ingest(
                InboundMessage(
                    channel: "whatsapp", accountID: "default", externalID: "wamid.\(index)", contactID: contact,
                    text: text))
            guard case .accepted = result else {
                Issue.record("expected the message accepted, got \(result)")
                throw ReplayTestFailure()
            }
            world.clock.advance(.seconds(1))
        }
        let records = try world.records()
        try #require(
            records.map(\.type) == [
                ContactUpdated.eventType, MessageReceived.eventType, JobEnqueued.eventType,
                ContactUpdated.eventType, MessageReceived.eventType, JobEnqueued.eventType,
                MessageReceived.eventType, JobEnqueued.eventType,
            ])
        await world.close()
        return (world, records)
    }

    @Test func exportPrintsExactlyTheRecordsFromTo() async throws {
        let (world, records) = try await Self.twoContacts()

        let export = try await world.replay("export", "--from", "2", "--to", "5", "--format", "jsonl")
        #expect(export.status == 0, "\(export)")
        let objects = try export.objects()
        #expect(objects.map { replayUInt($0["seq"]) } == [2, 3, 4, 5], "\(export)")
        #expect(objects.map { $0["type"] as? String } == records[1...4].map(\.type))
        #expect(objects.map { $0["time"] as? String } == records[1...4].map(\.timestamp.description))
        #expect(objects.allSatisfy { $0["workerID"] as? String == "builder" && $0["role"] as? String == "test" })
        let payload = objects.first?["payload"] as? [String: Any]
        #expect(payload?["text"] as? String == "hi from c1")
        #expect(payload?["contactID"] as? String == "c1")

        let all = try await world.replay("export")
        #expect(all.lines.count == records.count, "\(all)")
    }

    /// `--from`/`--to` as the times `replay` prints: every record from the first to the last of those times.
    @Test func exportBoundedByRecordTimesIncludesEveryRecordAtBothTimes() async throws {
        let (world, records) = try await Self.twoContacts()
        // Each message is one transaction: c2's records 4...6 share a time, c1's second ones 7...8 another.
        try #require(records[3].timestamp == records[5].timestamp && records[6].timestamp == records[7].timestamp)

        let export = try await world.replay(
            "export", "--from", records[3].timestamp.description, "--to", records[6].timestamp.description)
        #expect(export.status == 0, "\(export)")
        #expect(try export.objects().map { replayUInt($0["seq"]) } == [4, 5, 6, 7, 8], "\(export)")

        let first = try await world.replay("export", "--to", records[0].timestamp.description)
        #expect(try first.objects().map { replayUInt($0["seq"]) } == [1, 2, 3], "\(first)")
    }

    // MARK: Conversations

    @Test func conversationsShowOneConversationPerContactAndItsMessages() async throws {
        let (world, _) = try await Self.twoContacts()
        let c1 = conversationID(channel: "whatsapp", accountID: "default", contactID: "c1")
        let c2 = conversationID(channel: "whatsapp", accountID: "default", contactID: "c2")

        let list = try await world.replay("conversations", "show")
        #expect(list.status == 0, "\(list)")
        #expect(
            list.lines == [
                "\(c1)\tmessages=2\tcontact=allowed\tlastSeq=7", "\(c2)\tmessages=1\tcontact=allowed\tlastSeq=5",
            ], "\(list)")

        let json = try await world.replay("conversations", "show", "--json")
        let conversations = try json.objects()
        #expect(conversations.map { $0["contactID"] as? String } == ["c1", "c2"], "\(json)")
        #expect(conversations.allSatisfy { $0["accountID"] as? String == "default" })

        let messages = try await world.replay("conversations", "show", "--id", c1)
        #expect(messages.status == 0, "\(messages)")
        let rows = messages.columns
        #expect(rows.map { $0.first } == ["2", "7"], "\(messages)")
        // Each message with its place in the conversation's tree: a linear chat's messages follow each other.
        #expect(
            rows.map { $0.dropFirst(2).joined(separator: "\t") } == [
                "user\t[]\thi from c1", "user\t[after 2]\tc1 again",
            ])

        let other = try await world.replay("conversations", "show", "--id", c2, "--json")
        let report = try #require(
            try JSONSerialization.jsonObject(with: Data(other.lines.joined(separator: "\n").utf8)) as? [String: Any])
        let only = try #require(report["messages"] as? [[String: Any]])
        #expect(only.count == 1 && only.first?["text"] as? String == "hello from c2", "\(other)")
        #expect(only.first.flatMap { replayUInt($0["seq"]) } == 5)
        #expect(report["deleted"] == nil)
    }

    // MARK: Tail

    @Test func tailPrintsTheLastRecords() async throws {
        let (world, records) = try await Self.twoContacts()

        let tail = try await world.replay("tail", "--lines", "2")
        #expect(tail.status == 0, "\(tail)")
        #expect(tail.seqs == [7, 8], "\(tail)")
        #expect(tail.lines.first?.contains("\tcorr=\(records[6].correlationID ?? "?")\t") == true, "\(tail)")
        let json = try await world.replay("tail", "--lines", "3", "--json")
        #expect(try json.objects().map { replayUInt($0["seq"]) } == [6, 7, 8], "\(json)")
    }

    /// docs/operations.md documents `tail [-n 10] [--follow]`.
    @Test func tailTakesTheDocumentedDashN() async throws {
        let (world, _) = try await Self.twoContacts()

        let tail = try await world.replay("tail", "-n", "2")
        #expect(tail.status == 0, "\(tail)")
        #expect(tail.seqs == [7, 8], "\(tail)")
    }

    // MARK: Bad input

    @Test func aMissingDataDirectoryFailsWithoutCreatingIt() async throws {
        let directory = TemporaryDirectory()
        let missing = directory.sub("missing")
        let empty = directory.sub("empty")
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: false)
        let commands: [[String]] = [
            ["state"], ["jobs", "list"], ["lease", "get", "--at", "1"], ["audit", "duplicates"], ["alerts"],
            ["verify"], ["timeline"], ["export"],
        ]
        for command in commands {
            let run = try await ReplayWorld.replayErrors(command + ["--data-dir", missing])
            #expect(run.status != 0, "\(command): \(run)")
            if ["alerts", "audit", "verify"].contains(command[0]) {
                #expect(run.status == 1, "\(command) documents exit 1 for an error: \(run)")
            }
            #expect(run.lines.contains { $0.contains("no event log in \(missing)") }, "\(command): \(run)")
            #expect(!FileManager.default.fileExists(atPath: missing), "\(command) created \(missing)")
        }
        let inEmpty = try await ReplayWorld.replayErrors(["state", "--data-dir", empty])
        #expect(inEmpty.status != 0, "\(inEmpty)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: empty).isEmpty)
    }

    @Test func anUnknownStatusIsRefusedNamingTheOption() async throws {
        let world = try ReplayWorld()
        _ = try await world.enqueueDelivery(key: "msg-1:0", to: "+15550001")
        await world.close()

        for command in [["jobs", "list"], ["deliveries", "list"]] {
            let run = try await ReplayWorld.replayErrors(command + ["--status", "bogus", "--data-dir", world.path])
            #expect(run.status != 0, "\(command): \(run)")
            #expect(run.lines.contains { $0.contains("--status") }, "\(command): \(run)")
        }
        let valid = try await world.replay("deliveries", "list", "--status", "pending")
        #expect(valid.status == 0 && valid.lines.count == 1, "\(valid)")

        let badWindow = try await ReplayWorld.replayErrors(
            ["alerts", "--burst-window", "ten", "--data-dir", world.path])
        #expect(badWindow.status != 0, "\(badWindow)")
        #expect(badWindow.lines.contains { $0.contains("--burst-window") }, "\(badWindow)")
    }
}
