import AsyncHTTPClient
@testable import EventLog
import Foundation
import Projections
import SwitchboardEvents
import TestSupport
import Testing
import Workers

/// The seed runbook's channel scenarios on spawned `agent` processes, against the fake Bot API and Graph API:
/// B (WhatsApp end to end), E (Telegram end to end, webhook and polling), pairing by CLI, and K/L (sessions that
/// survive restarts in both session backends).
@Suite("Channel processes", .serialized, .timeLimit(.minutes(3)))
struct ChannelProcessTests {
    static let secret = "e2e_secret-0123456789abcdef"
    static let appSecret = "e2e-app-secret"

    static func telegram(_ bot: FakeBotAPI, _ extra: [String: String] = [:]) -> [String: String] {
        [
            "AGENT_ROLE": "all", "ENABLE_WHATSAPP": "false", "TELEGRAM_BOT_TOKEN": bot.token,
            "TELEGRAM_API_BASE_URL": bot.baseURL, "PROVIDER_TIMEOUT_MS": "5000", "TELEGRAM_POLL_TIMEOUT_SECONDS": "2",
            "AI_PROVIDER": "offline",
        ].merging(extra) { $1 }
    }

    static func whatsapp(_ graph: FakeGraphAPI, _ extra: [String: String] = [:]) -> [String: String] {
        [
            "AGENT_ROLE": "all", "TELEGRAM_MODE": "off", "WHATSAPP_CLOUD_ACCESS_TOKEN": graph.token,
            "WHATSAPP_PHONE_NUMBER_ID": graph.phoneNumberID, "WHATSAPP_GRAPH_BASE_URL": graph.baseURL,
            "WHATSAPP_CLOUD_APP_SECRET": appSecret, "WHATSAPP_CLOUD_VERIFY_TOKEN": "verify-e2e",
            "WHATSAPP_ALLOWED_NUMBERS": "+1 650 555 1234", "PROVIDER_TIMEOUT_MS": "5000", "AI_PROVIDER": "offline",
        ].merging(extra) { $1 }
    }

    /// The port an agent's HTTP server bound (from its `http.listening` line).
    static func port(of agent: AgentProcess) async throws -> Int {
        let index = try await agent.waitFor("http.port=")
        let text = agent.lines[index].components(separatedBy: "http.port=").last?.prefix { $0.isNumber } ?? ""
        return try #require(Int(text))
    }

    /// Runs `agent <arguments>` to completion.
    static func cli(_ arguments: [String], _ environment: [String: String] = [:]) async throws -> (
        status: Int32, lines: [String]
    ) {
        try await SpawnedProcess.run("agent", arguments, environment: environment)
    }

    /// Runs a system command (not one of the built products) to completion; its standard output.
    static func system(_ command: String, _ environment: [String: String]) async throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-c", command]
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = await Task.detached { pipe.fileHandleForReading.readDataToEndOfFile() }.value
        process.waitUntilExit()
        return String(decoding: output, as: UTF8.self)
    }

    static func received(_ log: TestLog) throws -> [MessageReceived] {
        try log.events().compactMap { if case .messageReceived(let e) = $0.event { e } else { nil } }
    }

    // E, by webhook: the seed runbook's curl, verbatim but for the host, answered once; a replay changes nothing.
    @Test func runbookE_theSeedCurlIsAnsweredOnceThroughTheWebhook() async throws {
        let dir = TemporaryDirectory()
        let bot = try await FakeBotAPI.start()
        defer { bot.stop() }
        let agent = try AgentProcess(
            "tg-1", data: dir.path,
            Self.telegram(bot, ["TELEGRAM_WEBHOOK_SECRET": Self.secret, "TELEGRAM_ALLOWED_CHAT_IDS": "123456789"]))
        let port = try await Self.port(of: agent)
        try await agent.waitFor("[telegram] Lease acquired for account 'default' by 'tg-1'")
        try await agent.waitFor("[telegram] Connected (webhook @switchboard_test_bot)")
        let curl = """
            curl -X POST "http://localhost:\(port)/telegram/webhook" \\
              -H "Content-Type: application/json" \\
              -H "x-telegram-bot-api-secret-token: $TELEGRAM_WEBHOOK_SECRET" \\
              -d '{
                "message": {
                  "message_id": 100,
                  "date": 1700000000,
                  "text": "hello from integration test",
                  "chat": { "id": 123456789 }
                }
              }'
            """
        let log = try TestLog(dir.path)
        defer { log.close() }
        for _ in 0..<2 {
            let status = try await Self.system(
                curl + " -s -o /dev/null -w '%{http_code}'", ["TELEGRAM_WEBHOOK_SECRET": Self.secret])
            #expect(status == "200", "curl answered \(status)")
        }
        let sent = try await bot.waitForSent(1)
        _ = try await log.waitForEvent("delivery.sent") { _, event in
            if case .deliverySent = event { true } else { false }
        }
        #expect(sent.count == 1)
        #expect(sent[0].chatID == 123_456_789)
        #expect(sent[0].text.contains("hello from integration test"))
        #expect(sent[0].replyTo == 100)
        // A wrong secret from curl: 401.
        let bad = try await Self.system(
            curl + " -s -o /dev/null -w '%{http_code}'", ["TELEGRAM_WEBHOOK_SECRET": "wrong"])
        #expect(bad == "401")
        #expect(await agent.stop() == 0)
        #expect(bot.sent.count == 1)
        // The reply was announced with the typing action when the core claimed the job, never as a message (it
        // was started before the reply was even written, so it has arrived by the time the agent stopped).
        #expect(bot.chatActions.contains { $0.chat == 123_456_789 && $0.action == "typing" }, "\(bot.chatActions)")
        #expect(try Self.received(log).count == 1)
        #expect(!agent.lines.contains { $0.contains(Self.secret) || $0.contains(bot.token) })
        let kinds = try log.events().map(\.event.eventType)
        #expect(kinds.contains(WebhookRejected.eventType))
        #expect(kinds.contains(ChannelConnected.eventType) && kinds.contains(ChannelDisconnected.eventType))
    }

    // E, by long polling: no public URL; the offset advances only after the update is in the log.
    @Test func runbookE_aPolledMessageIsAnsweredOnceAndConfirmedAfterItIsInTheLog() async throws {
        let dir = TemporaryDirectory()
        let bot = try await FakeBotAPI.start()
        defer { bot.stop() }
        let agent = try AgentProcess("tg-1", data: dir.path, Self.telegram(bot, ["TELEGRAM_ALLOWED_CHAT_IDS": "42"]))
        try await agent.waitFor("[telegram] Polling for updates")
        let log = try TestLog(dir.path)
        defer { log.close() }
        let id = bot.pushText("what time is it?", chat: 42, messageID: 9)
        let sent = try await bot.waitForSent(1)
        #expect(sent[0].chatID == 42 && sent[0].text.contains("what time is it?"))
        try await bot.waitForConfirmation(of: id)
        // The confirming offset was written to the session first.
        let sessions = try SessionStore(backend: .log, engine: log.engine)
        #expect(
            try sessions.value("offset", namespace: "telegram/default").map { String(decoding: $0, as: UTF8.self) }
                == "\(id + 1)")
        let received = try Self.received(log)
        #expect(received.map(\.externalID) == ["42:9"])
        #expect(await agent.stop() == 0)
        #expect(bot.sent.count == 1)
    }

    // Pairing: an unknown sender gets one code, the owner approves it by CLI, the next message is answered.
    @Test func pairing_anUnknownSenderIsAnsweredOnlyAfterTheOwnerApprovesItsCode() async throws {
        let dir = TemporaryDirectory()
        let bot = try await FakeBotAPI.start()
        defer { bot.stop() }
        let agent = try AgentProcess("tg-1", data: dir.path, Self.telegram(bot))
        try await agent.waitFor("[telegram] Polling for updates")
        let log = try TestLog(dir.path)
        defer { log.close() }
        bot.pushText("hi, who are you?", chat: 555, messageID: 1)
        let first = try await bot.waitForSent(1)
        #expect(first[0].chatID == 555)
        let words = first[0].text.split(whereSeparator: { $0 == " " || $0 == "." })
        let code = try #require(words.first { $0.count == 9 && $0.dropFirst(4).first == "-" }.map(String.init))
        let second = bot.pushText("hello?", chat: 555, messageID: 2)
        try await bot.waitForConfirmation(of: second)
        #expect(bot.sent.count == 1, "a pending sender gets one code, once")
        #expect(try Self.received(log).filter { $0.contactID == "555" }.count == 2)

        let list = try await Self.cli(["pairing", "list", "--data-dir", dir.path])
        #expect(list.status == 0)
        #expect(list.lines.contains { $0.hasPrefix("telegram\tdefault\t555\tyes\t2\t") }, "\(list.lines)")
        let wrong = try await Self.cli(["pairing", "approve", "telegram", "ZZZZ-ZZZZ", "--data-dir", dir.path])
        #expect(wrong.status == 1)
        let approve = try await Self.cli(["pairing", "approve", "telegram", code.lowercased(), "--data-dir", dir.path])
        #expect(approve.status == 0, "\(approve)")
        #expect(approve.lines.contains { $0.contains("Approved telegram contact 555") })
        try await bot.waitForSent(2)
        #expect(bot.sent[1].text == ChannelAccess.approvedReply)
        bot.pushText("now can we talk?", chat: 555, messageID: 3)
        let third = try await bot.waitForSent(3)
        #expect(third[2].text.contains("now can we talk?"))
        #expect(await agent.stop() == 0)
        #expect(bot.sent.count == 3)
        let after = try await Self.cli(["pairing", "list", "--data-dir", dir.path])
        #expect(after.lines.contains("No sender is waiting for approval."))
    }

    // K / L for Telegram: stop and restart the worker in each backend; it resumes from the stored offset with
    // the same bot and processes nothing twice.
    @Test(arguments: ["log", "local"])
    func runbookKL_telegramResumesFromItsStoredOffset(backend: String) async throws {
        let dir = TemporaryDirectory()
        let bot = try await FakeBotAPI.start()
        defer { bot.stop() }
        let environment = Self.telegram(
            bot,
            [
                "TELEGRAM_ALLOWED_CHAT_IDS": "42", "SESSION_STORE": backend,
                "SESSION_ENCRYPTION_KEY": Data(repeating: 7, count: 32).base64EncodedString(),
                // Each update answered on its own: the replies count the updates processed.
                "QUEUE_MODE": "followup", "INBOUND_DEBOUNCE_MS": "0",
            ])
        let first = try AgentProcess("tg-1", data: dir.path, environment)
        try await first.waitFor("[telegram] Polling for updates (offset none)")
        bot.pushText("one", chat: 42, messageID: 1)
        let second = bot.pushText("two", chat: 42, messageID: 2)
        try await bot.waitForSent(2)
        try await bot.waitForConfirmation(of: second)
        #expect(await first.stop() == 0)

        let waiting = bot.pushText("three (sent while the worker was down)", chat: 42, messageID: 3)
        let restarted = try AgentProcess("tg-1", data: dir.path, environment)
        try await restarted.waitFor("[telegram] Polling for updates (offset \(second + 1))")
        try await bot.waitForSent(3)
        try await bot.waitForConfirmation(of: waiting)
        #expect(await restarted.stop() == 0)

        let log = try TestLog(dir.path)
        defer { log.close() }
        #expect(try Self.received(log).map(\.externalID) == ["42:1", "42:2", "42:3"])
        #expect(bot.sent.count == 3)
        #expect(bot.calls.filter { $0 == "getMe" }.count >= 2)
        // The restart never asked for an update before its stored offset.
        let restartOffsets = bot.offsets.drop { $0 != second + 1 }
        #expect(restartOffsets.allSatisfy { ($0 ?? 0) > second })
        if backend == "log" {
            let keys = try await SpawnedProcess.run(
                "replay", ["session", "list", "--channel", "telegram", "--account", "default", "--data-dir", dir.path])
            #expect(keys.lines.contains { $0.hasPrefix("telegram/default\toffset\t") && $0.hasSuffix("encrypted") })
            #expect(keys.lines.contains { $0.hasPrefix("telegram/default\tbot\t") })
        } else {
            #expect(FileManager.default.fileExists(atPath: dir.path + "/sessions/telegram%2fdefault.json"))
            #expect(!(try log.events().contains { $0.record.type == SessionEntrySet.eventType }))
            let keys = try await SpawnedProcess.run(
                "replay",
                [
                    "session", "list", "--store", "local", "--channel", "telegram", "--account", "default",
                    "--data-dir", dir.path,
                ])
            #expect(
                keys.lines.contains { $0.hasPrefix("telegram/default\toffset\t") && $0.hasSuffix("encrypted") },
                "\(keys)")
        }
    }

    // K on PostgreSQL: the Telegram worker stops on one host and starts on another (no shared directory); it
    // resumes from the offset stored in the log's session store, processes nothing twice, and the core that answers
    // runs in a third process.
    @Test func runbookK_telegramResumesOnAnotherHostFromTheSharedLog() async throws {
        try await withDeployment(.postgres) { place in
            let bot = try await FakeBotAPI.start()
            defer { bot.stop() }
            let environment = place.environment(
                Self.telegram(
                    bot,
                    [
                        "AGENT_ROLE": "telegram", "TELEGRAM_ALLOWED_CHAT_IDS": "42",
                        "SESSION_ENCRYPTION_KEY": Data(repeating: 7, count: 32).base64EncodedString(),
                        "QUEUE_MODE": "followup", "INBOUND_DEBOUNCE_MS": "0",
                    ]))
            var coreEnvironment = environment
            coreEnvironment["AGENT_ROLE"] = "core"
            let core = try AgentProcess("core-1", data: place.data(for: "core-1"), coreEnvironment)
            try await core.waitFor("[agent] Starting agent loop")
            let first = try AgentProcess("tg-1", data: place.data(for: "host-a"), environment)
            try await first.waitFor("[telegram] Polling for updates (offset none)")
            bot.pushText("one", chat: 42, messageID: 1)
            let second = bot.pushText("two", chat: 42, messageID: 2)
            try await bot.waitForSent(2)
            try await bot.waitForConfirmation(of: second)
            #expect(await first.stop() == 0)

            let waiting = bot.pushText("three (sent while the worker was down)", chat: 42, messageID: 3)
            let moved = try AgentProcess("tg-1", data: place.data(for: "host-b"), environment)
            try await moved.waitFor("[telegram] Polling for updates (offset \(second + 1))")
            try await bot.waitForSent(3)
            try await bot.waitForConfirmation(of: waiting)
            #expect(await moved.stop() == 0)
            #expect(await core.stop() == 0)

            let log = try TestLog(place)
            defer { log.close() }
            #expect(try Self.received(log).map(\.externalID) == ["42:1", "42:2", "42:3"])
            #expect(bot.sent.count == 3)
            #expect(bot.offsets.drop { $0 != second + 1 }.allSatisfy { ($0 ?? 0) > second })
            let keys = try await SpawnedProcess.run(
                "replay", ["session", "list", "--channel", "telegram", "--account", "default"] + place.replayArguments)
            #expect(keys.lines.contains { $0.hasPrefix("telegram/default\toffset\t") && $0.hasSuffix("encrypted") })
        }
    }

    // B: a signed WhatsApp notification → log → core reply → one Cloud API send, threaded; its statuses are
    // recorded against the delivery in any order.
    @Test func runbookB_aSignedWhatsAppMessageIsAnsweredOnceAndItsStatusesRecorded() async throws {
        let dir = TemporaryDirectory()
        let graph = try await FakeGraphAPI.start()
        defer { graph.stop() }
        let agent = try AgentProcess("wa-1", data: dir.path, Self.whatsapp(graph))
        let port = try await Self.port(of: agent)
        try await agent.waitFor("[whatsapp] Connected (cloud_api +1 555-010-0999)")
        let client = WebhookClient(baseURL: "http://127.0.0.1:\(port)")
        let handshake = try await client.get(
            "/whatsapp/webhook?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=verify-e2e")
        #expect(handshake.status == 200 && handshake.body == "1158201444")
        let log = try TestLog(dir.path)
        defer { log.close() }
        let inbound = ChannelPayloadCorpusTests.notification(
            ChannelPayloadCorpusTests.contacts
                + #","messages":[{"from":"16505551234","id":"wamid.IN-B","timestamp":"1749416383","type":"text","text":{"body":"Does it come in another color?"}}]"#,
            phoneNumberID: graph.phoneNumberID)
        #expect(try await client.whatsapp(inbound, secret: Self.appSecret).status == 200)
        #expect(try await client.whatsapp(inbound, secret: Self.appSecret).status == 200)  // Meta's retry
        #expect(try await client.whatsapp(inbound, secret: "forged").status == 401)
        let sent = try await graph.waitForSent(1)
        #expect(sent[0].to == "16505551234" && sent[0].text.contains("another color"), "\(sent[0].text)")
        #expect(sent[0].contextID == "wamid.IN-B")
        let delivered = try await log.waitForEvent("delivery.sent") { _, event in
            if case .deliverySent = event { true } else { false }
        }
        guard case .deliverySent(let record) = delivered.event else { return }
        #expect(record.providerMessageID == sent[0].wamid)
        let statuses = ChannelPayloadCorpusTests.notification(
            #""statuses":[{"id":"\#(sent[0].wamid)","status":"read","timestamp":"1749416400","recipient_id":"16505551234"},{"id":"\#(sent[0].wamid)","status":"delivered","timestamp":"1749416390","recipient_id":"16505551234"}]"#,
            phoneNumberID: graph.phoneNumberID)
        #expect(try await client.whatsapp(statuses, secret: Self.appSecret).status == 200)
        #expect(await agent.stop() == 0)
        let reports = try log.events().compactMap {
            if case .deliveryStatusReported(let e) = $0.event { e } else { nil }
        }
        #expect(reports.map(\.status) == ["read", "delivered"])
        #expect(reports.allSatisfy { $0.deliveryID == record.deliveryID })
        #expect(graph.sent.count == 1)
        // The typing indicator, shown against the message being answered when the core claimed its job.
        #expect(graph.typing.contains("wamid.IN-B"), "\(graph.typing)")
        #expect(try Self.received(log).count == 1)
        #expect(!agent.lines.contains { $0.contains(graph.token) || $0.contains(Self.appSecret) })
    }

    // K / L for WhatsApp: `agent whatsapp login` stores the token; the worker starts, restarts and sends without it
    // in its environment, in each backend.
    @Test(arguments: ["log", "local"])
    func runbookKL_whatsappRestartsWithTheStoredLogin(backend: String) async throws {
        let dir = TemporaryDirectory()
        let graph = try await FakeGraphAPI.start()
        defer { graph.stop() }
        let key = Data(repeating: 9, count: 32).base64EncodedString()
        let store = ["SESSION_STORE": backend, "SESSION_ENCRYPTION_KEY": key, "WHATSAPP_DM_POLICY": "open"]
        let login = try await Self.cli(
            [
                "whatsapp", "login", "--phone-number-id", graph.phoneNumberID, "--business-account-id",
                "102290129340398", "--data-dir", dir.path,
            ],
            store.merging(["WHATSAPP_CLOUD_ACCESS_TOKEN": graph.token, "WHATSAPP_GRAPH_BASE_URL": graph.baseURL]) { $1 }
        )
        #expect(login.status == 0, "\(login)")
        #expect(!login.lines.contains { $0.contains(graph.token) })
        var environment = Self.whatsapp(graph, store)
        environment["WHATSAPP_CLOUD_ACCESS_TOKEN"] = ""
        environment["WHATSAPP_PHONE_NUMBER_ID"] = ""
        for round in 1...2 {
            let agent = try AgentProcess("wa-1", data: dir.path, environment)
            let port = try await Self.port(of: agent)
            try await agent.waitFor("[whatsapp] Using the credentials stored by `agent whatsapp login`")
            try await agent.waitFor("[whatsapp] Connected (cloud_api")
            let client = WebhookClient(baseURL: "http://127.0.0.1:\(port)")
            let inbound = ChannelPayloadCorpusTests.notification(
                ChannelPayloadCorpusTests.contacts
                    + #","messages":[{"from":"1650555000\#(round)","id":"wamid.KL\#(round)","timestamp":"1","type":"text","text":{"body":"round \#(round)"}}]"#,
                phoneNumberID: graph.phoneNumberID)
            #expect(try await client.whatsapp(inbound, secret: Self.appSecret).status == 200)
            try await graph.waitForSent(round)
            #expect(await agent.stop() == 0)
        }
        #expect(graph.sent.map(\.text).allSatisfy { $0.contains("round") })
        let log = try TestLog(dir.path)
        defer { log.close() }
        #expect(try Self.received(log).map(\.externalID) == ["wamid.KL1", "wamid.KL2"])
        if backend == "log" {
            // Sealed in the log: the token's bytes never appear.
            #expect(!(try log.events().contains { $0.record.payloadText.contains(graph.token) }))
            let keys = try await SpawnedProcess.run(
                "replay", ["session", "list", "--channel", "whatsapp", "--account", "default", "--data-dir", dir.path])
            #expect(
                keys.lines.contains { $0.hasPrefix("whatsapp/default\taccess_token\t") && $0.hasSuffix("encrypted") })
            #expect(keys.lines.contains { $0.hasPrefix("whatsapp/default\tbusiness_account_id\t") })
        } else {
            let file = try String(contentsOfFile: dir.path + "/sessions/whatsapp%2fdefault.json", encoding: .utf8)
            #expect(!file.contains(graph.token))
            let keys = try await SpawnedProcess.run(
                "replay", ["session", "list", "--store", "local", "--data-dir", dir.path])
            #expect(keys.lines.contains { $0.hasPrefix("whatsapp/default\taccess_token\t") }, "\(keys)")
        }
    }

    // Connection health: a failing poll records channel.disconnected, the recovery channel.connected, and
    // `replay alerts` matches them.
    @Test func aDisconnectAndItsRecoveryAreRecordedAndCountedByReplayAlerts() async throws {
        let dir = TemporaryDirectory()
        let bot = try await FakeBotAPI.start()
        defer { bot.stop() }
        bot.fail("getUpdates", .respond(status: 502, body: "Bad Gateway"))
        let agent = try AgentProcess("tg-1", data: dir.path, Self.telegram(bot, ["TELEGRAM_ALLOWED_CHAT_IDS": "42"]))
        let log = try TestLog(dir.path)
        defer { log.close() }
        _ = try await log.waitForEvent("channel.disconnected") { _, event in
            if case .channelDisconnected(let e) = event { e.reason == "error" && e.willReconnect } else { false }
        }
        _ = try await log.waitForEvent("channel.connected") { _, event in
            if case .channelConnected(let e) = event { e.detail == "long_poll" } else { false }
        }
        #expect(await agent.stop() == 0)
        let alerts = try await SpawnedProcess.run("replay", ["alerts", "--data-dir", dir.path])
        #expect(
            alerts.lines.contains("[OK] disconnect/reconnect mismatch: 1 disconnects, 1 reconnects"), "\(alerts.lines)")
    }

    // Refused credentials pause the account with an alert event. One send at a time, so the second delivery is
    // still unclaimed when the first is refused (with more, the sends already in flight end on their own).
    @Test func refusedCredentialsPauseSendingAndRaiseAnAlert() async throws {
        let dir = TemporaryDirectory()
        let graph = try await FakeGraphAPI.start()
        defer { graph.stop() }
        let agent = try AgentProcess("wa-1", data: dir.path, Self.whatsapp(graph, ["OUTBOUND_CONCURRENCY": "1"]))
        try await agent.waitFor("[whatsapp] Connected (cloud_api")
        graph.fail(
            "messages", FakeGraphAPI.metaError(190, "Error validating access token: Session has expired", status: 401))
        let log = try TestLog(dir.path)
        defer { log.close() }
        _ = try await log.enqueueReplies(2, tag: "auth")
        _ = try await log.waitForEvent("channel.disconnected auth_failed") { _, event in
            if case .channelDisconnected(let e) = event { e.reason == "auth_failed" && e.code == 190 } else { false }
        }
        try await agent.waitFor("[whatsapp] Credentials refused: sending paused")
        #expect(await agent.stop() == 0)
        // Nothing else was tried while paused; the refused delivery waits to be retried.
        #expect(graph.sent.isEmpty)
        let failed = try log.events().compactMap { if case .deliveryFailed(let e) = $0.event { e } else { nil } }
        #expect(failed.count == 1 && failed.first?.permanent == false && failed.first?.errorCode == "190")
        let events = try log.events()
        let refusedAt = try #require(events.firstIndex { if case .deliveryFailed = $0.event { true } else { false } })
        #expect(!events[refusedAt...].contains { if case .deliveryClaimed = $0.event { true } else { false } })
        let alerts = try await SpawnedProcess.run("replay", ["alerts", "--data-dir", dir.path])
        #expect(alerts.status == 2)
    }
}
