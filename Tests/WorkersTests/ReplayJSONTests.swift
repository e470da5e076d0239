// `--json` is always valid JSON: a list is one array (`[]` when empty), a report one object.
import EventLog
import SwitchboardEvents
import Foundation
import Projections
import TestSupport
import Testing

@Suite(.timeLimit(.minutes(2)))
struct ReplayJSONTests {
    /// The list commands, each with the number of items it lists on the non-empty log below.
    static let lists: [([String], Int)] = [
        (["jobs", "list"], 1), (["deliveries", "list"], 1), (["accounts", "list"], 1), (["session", "list"], 0),
        (["conversations", "show"], 1), (["lease", "owned", "--owner", "wa-1"], 1), (["snapshots", "list"], 0),
        (["timeline"], 5), (["tail"], 5), (["alerts"], AlertCheck.Check.allCases.count),
    ]

    @Test func everyListIsAnEmptyArrayOnAnEmptyLog() async throws {
        let world = try ReplayWorld()
        await world.close()

        for (command, _) in Self.lists {
            let run = try await world.replay(command + ["--json"])
            #expect(run.status == 0, "\(command): \(run)")
            if command[0] == "alerts" {
                #expect(try run.array().count == AlertCheck.Check.allCases.count, "\(command): \(run)")
            } else {
                #expect(run.lines == ["[]"], "\(command): \(run)")
                #expect(try run.array().isEmpty, "\(command): \(run)")
            }
        }
        for report in [["state"], ["verify"], ["audit", "duplicates"]] {
            let run = try await world.replay(report + ["--json"])
            #expect(run.status == 0, "\(report): \(run)")
            #expect(try run.object().isEmpty == false, "\(report): \(run)")
        }
        let none = try await world.replay("lease", "get", "--json")
        #expect(none.lines == ["null"], "\(none)")
    }

    @Test func everyListIsOneArrayOnALog() async throws {
        let world = try ReplayWorld()
        let worker = ReplayWorld.owner("wa-1")
        _ = try await world.acquire(as: worker)
        let ingest = try await world.engine.ingest(
            InboundMessage(
                channel: "whatsapp", accountID: "default", externalID: "wamid.json", contactID: "+15550200",
                text: "hi"))
        guard case .accepted = ingest else {
            Issue.record("expected the message accepted, got \(ingest)")
            return
        }
        _ = try await world.enqueueDelivery(key: "msg-json:0", to: "+15550200")
        #expect(try world.engine.log.lastSeq() == 5)
        await world.close()

        for (command, count) in Self.lists {
            let run = try await world.replay(command + ["--json"])
            #expect(run.status == 0 || command[0] == "alerts", "\(command): \(run)")
            #expect(run.lines.count == 1, "\(command): one line, one array: \(run)")
            #expect(try run.array().count == count, "\(command): \(run)")
        }
        let timeline = try await world.replay("timeline", "--json")
        let first = try #require(try timeline.array().first)
        #expect(replayUInt(first["seq"]) == 1)
        #expect((first["payload"] as? [String: Any])?["resource"] as? String == ReplayWorld.resource)
        let lease = try await world.replay("lease", "get", "--json")
        #expect(try lease.object()["ownerWorkerID"] as? String == "wa-1")
    }
}
