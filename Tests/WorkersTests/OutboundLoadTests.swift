@testable import EventLog
import Foundation
import Projections
import SwitchboardEvents
import TestSupport
import Testing
import Workers

/// The outbound loop under a crash and under load (issue 21): a crash during a send holds its recipient for one
/// lease TTL, not the claim's visibility; replies to different recipients leave in parallel at the account's rate.
extension WorkerProcessTests {
    @Suite("Outbound under crash and load")
    struct OutboundLoad {
        typealias Scenarios = WorkerProcessTests

        static func delivery(_ key: String, to recipient: String, _ text: String) -> NewDelivery {
            NewDelivery(
                idempotencyKey: key, channel: "whatsapp", accountID: "default", recipient: recipient,
                conversationID: "c-\(recipient)", text: text)
        }

        /// A Telegram sender against the fake provider (Telegram's one-second spacing per chat keeps the
        /// recipient's next message due within the TTL; WhatsApp's six seconds would hide what is measured).
        static func telegram(_ fake: FakeProvider, _ extra: [String: String] = [:]) -> [String: String] {
            [
                "AGENT_ROLE": "telegram", "TELEGRAM_BOT_TOKEN": "4242:tg-secret", "TELEGRAM_MODE": "off",
                "TELEGRAM_API_BASE_URL": fake.telegramBaseURL, "PROVIDER_TIMEOUT_MS": "5000",
            ].merging(extra) { $1 }
        }

        // SIGKILL the holder while a send is in flight, with the claim visible for a minute: the standby's new
        // tenure settles the dead tenure's claim as it begins (uncertain, once), and the recipient's next message
        // goes out within the TTL (1 s here) plus a second of the kill, not after the claim's minute.
        @Test func aCrashDuringASendHoldsTheRecipientForOneTTLNotTheClaimVisibility() async throws {
            let dir = TemporaryDirectory()
            let fake = try await FakeProvider.start()
            defer { fake.stop() }
            let settings = ["DELIVERY_VISIBILITY_MS": "60000"]
            let tg1 = try AgentProcess("tg-1", data: dir.path, Self.telegram(fake, settings))
            try await tg1.waitFor("Lease acquired for account 'default' by 'tg-1'")
            let tg2 = try AgentProcess("tg-2", data: dir.path, Self.telegram(fake, settings))
            try await tg2.waitFor("Lease held by 'tg-1' for account 'default', retrying...")
            let log = try TestLog(dir.path)
            defer { log.close() }
            fake.behave(.hang)
            func delivery(_ key: String, _ text: String) -> NewDelivery {
                NewDelivery(
                    idempotencyKey: key, channel: "telegram", accountID: "default", recipient: "777",
                    conversationID: "c-777", text: text)
            }
            let first = try await log.engine.enqueueDelivery(delivery("k-0", "first")).deliveryID
            let second = try await log.engine.enqueueDelivery(delivery("k-1", "second")).deliveryID
            _ = try await fake.waitForSends(1)
            fake.behave(.accept)
            let killSeq = try log.log.lastSeq()
            tg1.kill()
            let killed = ContinuousClock.now
            let sent = try await log.waitForEvent(from: killSeq + 1, within: 30, "the second delivery.sent") { _, e in
                if case .deliverySent(let sent) = e { return sent.deliveryID == second }
                return false
            }
            let waited = ContinuousClock.now - killed
            print("crash during a send: the recipient's next message was sent \(waited) after the kill")
            // The claim alone would have held it for 60 s. TTL (1 s) plus a loaded machine's margin: the figure itself
            // (TTL + p99) is `bench run failover-in-flight`'s, not a timed test's (2.6 s seen with the suite on both cores).
            #expect(waited < .seconds(6))
            #expect(sent.record.writer.workerID == "tg-2")
            let events = try log.events(from: killSeq + 1)
            let uncertain = events.filter {
                if case .deliveryUncertain(let event) = $0.event { return event.deliveryID == first }
                return false
            }
            #expect(uncertain.count == 1)
            // Settled in the transaction that began the new tenure: right after its lease.acquired.
            let acquired = try #require(
                events.first { $0.event.leaseAcquired != nil && $0.record.writer.workerID == "tg-2" })
            #expect(uncertain.first?.record.seq == acquired.record.seq + 1)
            #expect(fake.sends.map(\.text) == ["first", "second"])
            #expect(try log.engine.delivery(first)?.status == .uncertain)
            #expect(await tg2.stop() == 0)
        }

        // A hundred messages answered at once while the provider takes 100 ms a call: no typing action reaches it after
        // the reply it announces, and most are skipped (their replies were enqueued before their turn came) instead of
        // going out first, one per job, ahead of the replies.
        @Test func typingIsNeverSentForAJobWhoseReplyIsAlreadyEnqueued() async throws {
            let dir = TemporaryDirectory()
            let graph = try await FakeGraphAPI.start()
            defer { graph.stop() }
            let agent = try AgentProcess(
                "wa-1", data: dir.path, ChannelProcessTests.whatsapp(graph, ["WHATSAPP_DM_POLICY": "open"]))
            let port = try await ChannelProcessTests.port(of: agent)
            try await agent.waitFor("[whatsapp] Connected (cloud_api")
            graph.slow(.milliseconds(100))
            let messages = (0..<100).map { n in
                #"{"from":"1555100\#(n)","id":"wamid.T\#(n)","timestamp":"1749416383","type":"text","text":{"body":"hi \#(n)"}}"#
            }
            let body = ChannelPayloadCorpusTests.notification(
                #""messages":[\#(messages.joined(separator: ","))]"#, phoneNumberID: graph.phoneNumberID)
            let answer = try await WebhookClient(baseURL: "http://127.0.0.1:\(port)")
                .whatsapp(body, secret: ChannelProcessTests.appSecret)
            #expect(answer.status == 200)
            _ = try await graph.waitForSent(100, within: 60)
            #expect(await agent.stop() == 0)
            let calls = graph.calls
            for n in 0..<100 {
                let typing = calls.firstIndex(of: "typing:wamid.T\(n)")
                let reply = try #require(calls.firstIndex(of: "sent:1555100\(n)"))
                if let typing { #expect(typing < reply, "the typing action of job \(n) came after its reply") }
            }
            let typed = calls.filter { $0.hasPrefix("typing:") }.count
            print("typing actions sent for 100 jobs answered at once: \(typed)")
            #expect(typed < 50)
        }

        // A provider answering in 100 ms: 1 000 replies to 1 000 recipients leave in parallel — 50/s or more, where
        // one at a time they left at under 10/s; the figure itself (70–80/s under WhatsApp's 80/s limit) is
        // `bench run outbound`'s, as a loaded two-core machine gave 62–66/s here — never above the limit in any
        // second, and a recipient with several messages gets them in order.
        @Test func repliesToDifferentRecipientsLeaveInParallelAtTheAccountRate() async throws {
            let dir = TemporaryDirectory()
            let fake = try await FakeProvider.start()
            defer { fake.stop() }
            fake.behave(.delay(.milliseconds(100)))
            let log = try TestLog(dir.path)
            defer { log.close() }
            var batch = (0..<1_000).map { Self.delivery("load-\($0)", to: "1555-load-\($0)", "reply \($0)") }
            for recipient in 0..<3 {
                for part in 0..<2 {
                    batch.append(
                        Self.delivery("fifo-\(recipient)-\(part)", to: "1555-fifo-\(recipient)", "fifo \(part)"))
                }
            }
            _ = try await log.engine.enqueueDeliveries(batch)
            let wa1 = try AgentProcess("wa-1", data: dir.path, Scenarios.whatsapp(fake, ["OUTBOUND_CONCURRENCY": "16"]))
            let sends = try await fake.waitForSends(batch.count, within: 60)
            let load = sends.filter { $0.recipient.hasPrefix("1555-load-") }
            let first = try #require(load.first?.at)
            let last = try #require(load.last?.at)
            let elapsed = last - first
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let perSecond = Double(load.count - 1) / seconds
            print("outbound: \(load.count) replies in \(seconds) s = \(perSecond)/s")
            #expect(perSecond >= 50)
            // The account limit holds in every window of one second (claims are counted by the log clock; the
            // fake's arrival times add a little jitter, hence the margin of the in-flight sends).
            let times = sends.map(\.at)
            var window = 0
            var most = 0
            for (index, time) in times.enumerated() {
                while times[window] < time - .seconds(1) { window += 1 }
                most = max(most, index - window + 1)
            }
            #expect(most <= 80 + 16)
            for recipient in 0..<3 {
                let texts = sends.filter { $0.recipient == "1555-fifo-\(recipient)" }.map(\.text)
                #expect(texts == ["fifo 0", "fifo 1"])
            }
            #expect(await wa1.stop() == 0)
            // Each delivery sent once.
            let sent = try Scenarios.sent(log).map(\.sent.deliveryID)
            #expect(sent.count == batch.count)
            #expect(Set(sent).count == batch.count)
            #expect(fake.sends.count == batch.count)
        }
    }
}
