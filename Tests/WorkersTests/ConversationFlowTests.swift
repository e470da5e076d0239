import EventLog
import Foundation
import Projections
import SwitchboardEvents
import Synchronization
import TestSupport
import Testing
import Workers

/// Conversations the way people write (issue 25) on spawned agents against the fake Bot API: bursts while it is
/// answering, `/stop` and `/new`, per-recipient pacing. Waits are on the log (its tail) or the fake's calls.
@Suite("Conversation flows", .serialized, .timeLimit(.minutes(3)))
struct ConversationFlowTests {
    /// Waits until the log holds a record `matches` accepts (tailing it: woken by commits).
    static func awaitRecord(_ log: TestLog, _ what: String, _ matches: @escaping @Sendable (SwitchboardEvent) -> Bool)
        async throws
    {
        let engine = log.engine
        try await within(20, what) {
            for try await record in engine.log.tail(from: 1) {
                if let event = try? record.event(), matches(event) { return }
            }
        }
    }

    /// The environment of an agent answering Telegram chat 42 through `model` (no debounce unless `extra` sets one).
    static func withModel(_ bot: FakeBotAPI, _ model: FakeModelServer, _ extra: [String: String] = [:]) -> [String:
        String]
    {
        var environment = ChannelProcessTests.telegram(
            bot, ["TELEGRAM_ALLOWED_CHAT_IDS": "42", "TELEGRAM_INBOUND_DEBOUNCE_MS": "0"].merging(extra) { $1 })
        environment["AI_PROVIDER"] = nil
        environment["AI_BASE_URL"] = model.baseURL
        environment["AI_MODEL"] = "fake-model"
        return environment
    }

    static func count<E: EventPayload>(_ log: TestLog, _ kind: E.Type, where keep: (E) -> Bool = { _ in true }) throws
        -> Int
    {
        try log.engine.log.records(from: 1).filter { $0.type == E.eventType }.compactMap { try? $0.decode(E.self) }
            .filter(keep).count
    }

    @Test func threeQuickLinesGetOneReplyByDefault() async throws {
        let dir = TemporaryDirectory()
        let bot = try await FakeBotAPI.start()
        defer { bot.stop() }
        // The default mode; a debounce window (12 s instead of the default 1.5 s) that a loaded machine's polls fit in
        // (5 s was too short once in CI, with the PostgreSQL suites' servers starting beside it).
        let agent = try AgentProcess(
            "tg-burst", data: dir.path,
            ChannelProcessTests.telegram(
                bot, ["TELEGRAM_ALLOWED_CHAT_IDS": "42", "TELEGRAM_INBOUND_DEBOUNCE_MS": "12000"]))
        try await agent.waitFor("[telegram] Polling for updates")
        let log = try TestLog(dir.path)
        defer { log.close() }
        _ = bot.pushText("I need a gift", chat: 42, messageID: 1)
        // The next lines come after the first one's job exists (another poll): each moves its claim time later, and
        // the core must wake at the last one.
        try await Self.awaitRecord(log, "the first line's job") {
            if case .jobEnqueued = $0 { return true }
            return false
        }
        _ = bot.pushText("for my sister", chat: 42, messageID: 2)
        try await Self.awaitRecord(log, "the second line collected") {
            if case .jobRetriggered = $0 { return true }
            return false
        }
        _ = bot.pushText("she likes books", chat: 42, messageID: 3)
        let sent = try await bot.waitForSent(1, within: 40)
        #expect(sent[0].text.contains("she likes books"), "\(sent)")
        try await Self.awaitRecord(log, "the reply job's completion") {
            if case .jobCompleted = $0 { return true }
            return false
        }
        #expect(await agent.stop() == 0)
        // One turn: one job, the two later lines collected into it within the debounce window.
        #expect(try Self.count(log, JobEnqueued.self) == 1)
        #expect(try Self.count(log, JobRetriggered.self) == 2)
        #expect(bot.sent.count == 1)
        // replay timeline says why: the later lines were debounced into the first one's job.
        let timeline = try await SpawnedProcess.run("replay", ["timeline", "--data-dir", dir.path])
        #expect(timeline.lines.contains { $0.contains("job.retriggered") && $0.contains("debounced") })
    }

    @Test func followupAnswersEachLine() async throws {
        let dir = TemporaryDirectory()
        let bot = try await FakeBotAPI.start()
        defer { bot.stop() }
        let agent = try AgentProcess(
            "tg-followup", data: dir.path,
            ChannelProcessTests.telegram(
                bot,
                ["TELEGRAM_ALLOWED_CHAT_IDS": "42", "QUEUE_MODE": "followup", "TELEGRAM_INBOUND_DEBOUNCE_MS": "0"]))
        try await agent.waitFor("[telegram] Polling for updates")
        for n in 1...3 { _ = bot.pushText("line \(n)", chat: 42, messageID: Int64(n)) }
        let sent = try await bot.waitForSent(3)
        #expect(Set(sent.map(\.text)).count == 3)
        #expect(await agent.stop() == 0)
    }

    @Test func stopSendsWhatWasWrittenAndNewStartsAfresh() async throws {
        let gate = StreamGate()
        let model = try await FakeModelServer.start { request in
            request.lastUserText == "Tell me a story"
                ? .text(["Once upon a time", " there was"], gate: gate) : .text(["Fresh answer."])
        }
        defer {
            gate.open()
            model.stop()
        }
        let dir = TemporaryDirectory()
        let bot = try await FakeBotAPI.start()
        defer { bot.stop() }
        let environment = Self.withModel(bot, model)
        let agent = try AgentProcess("tg-stop", data: dir.path, environment)
        try await agent.waitFor("[telegram] Polling for updates")
        let log = try TestLog(dir.path)
        defer { log.close() }
        _ = bot.pushText("Tell me a story", chat: 42, messageID: 1)
        try await Self.awaitRecord(log, "the story streaming") {
            if case .assistantDelta(let d) = $0 { return d.text.contains("Once upon") }
            return false
        }
        _ = bot.pushText("/stop", chat: 42, messageID: 2)
        let sent = try await bot.waitForSent(2)
        #expect(sent.contains { $0.text == "Once upon a time" }, "\(sent)")
        #expect(sent.contains { $0.text == "Stopped." }, "\(sent)")
        try await agent.waitFor("[agent] Stopped job")
        // /new, then a question: the model does not see the story any more.
        _ = bot.pushText("/new", chat: 42, messageID: 3)
        _ = try await bot.waitForSent(3)
        _ = bot.pushText("What did I ask before?", chat: 42, messageID: 4)
        let after = try await bot.waitForSent(4)
        #expect(after.last?.text == "Fresh answer.")
        let asked = try #require(model.requests.last)
        #expect(asked.lastUserText == "What did I ask before?")
        #expect(!asked.messages.contains { $0.content.contains("story") || $0.content.contains("/stop") })
        #expect(await agent.stop() == 0)
        #expect(try Self.count(log, CommandHandled.self) == 2)
    }
}

extension ConversationFlowTests {
    // Pacing: a reply in three parts to a recipient who had nothing for a while goes out at once (the token bucket's
    // burst), not one part a second as the fixed interval made it.
    @Test func aThreePartReplyToAQuietRecipientIsNotSpacedOut() async throws {
        let paragraph = String(repeating: "word ", count: 700)  // 3 500 characters
        let model = try await FakeModelServer.start { _ in
            .text([paragraph + "\n\n", paragraph + "\n\n", paragraph])
        }
        defer { model.stop() }
        let dir = TemporaryDirectory()
        let bot = try await FakeBotAPI.start()
        defer { bot.stop() }
        let environment = Self.withModel(bot, model)
        let agent = try AgentProcess("tg-pace", data: dir.path, environment)
        try await agent.waitFor("[telegram] Polling for updates")
        _ = bot.pushText("Write a lot", chat: 42, messageID: 1)
        let sent = try await bot.waitForSent(3)
        #expect(sent.count == 3)
        #expect(await agent.stop() == 0)
        let log = try TestLog(dir.path)
        defer { log.close() }
        // By the log clock: the three claims fall within one interval (1 s), where the fixed spacing put 2 s between
        // the first and the last.
        let claims = try log.engine.log.records(from: 1).filter { $0.type == DeliveryClaimed.eventType }
            .map(\.timestamp.microseconds)
        #expect(claims.count == 3)
        #expect((claims.max() ?? 0) - (claims.min() ?? 0) < 1_000_000, "\(claims)")
    }
}

extension ConversationFlowTests {
    // A reminder set, the agent SIGKILLed, restarted after it was due: it fires once, marked late.
    @Test func aReminderMissedWhileDownFiresOnceLate() async throws {
        let dir = TemporaryDirectory()
        let bot = try await FakeBotAPI.start()
        defer { bot.stop() }
        let environment = ChannelProcessTests.telegram(
            bot, ["TELEGRAM_ALLOWED_CHAT_IDS": "42", "REMINDER_LATE_AFTER_SECONDS": "1"])
        let first = try AgentProcess("tg-remind", data: dir.path, environment)
        try await first.waitFor("[telegram] Polling for updates")
        _ = bot.pushText("/remind in 2s water the plants", chat: 42, messageID: 1)
        let answer = try await bot.waitForSent(1)
        #expect(answer[0].text.hasPrefix("I will remind you at "), "\(answer)")
        let log = try TestLog(dir.path)
        let due = try #require(
            try log.engine.log.records(from: 1).compactMap { record -> LogTimestamp? in
                guard case .jobEnqueued(let job)? = try? record.event(), job.kind == "scheduled" else { return nil }
                return job.runAt
            }.first)
        log.close()
        first.spawned.kill(SIGKILL)
        // Down past the due time (a wait for the clock itself, not for an event), then back.
        try await Task.sleep(until: .now + .milliseconds(Int64(max(0, due.date.timeIntervalSinceNow) * 1000) + 1_500))
        let second = try AgentProcess("tg-remind", data: dir.path, environment)
        let fired = try await bot.waitForSent(2)
        #expect(fired[1].text == "⏰ water the plants (late)", "\(fired)")
        try await second.waitFor("[agent] Completed job")
        #expect(await second.stop() == 0)
        #expect(bot.sent.filter { $0.text.hasPrefix("⏰") }.count == 1)
    }
}

extension ConversationFlowTests {
    // A reminder due while the channel's lease is between holders: the holder is SIGKILLed before the due time with
    // a lease TTL longer than the wait, so the reminder fires (the standby's core) while the dead holder's lease
    // still stands, and is sent once the standby takes the lease over — exactly once.
    @Test func aReminderDueDuringALeaseHandoffFiresOnce() async throws {
        let dir = TemporaryDirectory()
        let bot = try await FakeBotAPI.start()
        defer { bot.stop() }
        let environment = ChannelProcessTests.telegram(
            bot, ["TELEGRAM_ALLOWED_CHAT_IDS": "42", "WHATSAPP_LEASE_TTL_MS": "4000", "WHATSAPP_HEARTBEAT_MS": "500"])
        let first = try AgentProcess("tg-1", data: dir.path, environment)
        try await first.waitFor("[telegram] Lease acquired for account 'default' by 'tg-1'")
        let second = try AgentProcess("tg-2", data: dir.path, environment)
        try await second.waitFor("[agent] Starting agent loop")
        _ = bot.pushText("/remind in 2s call the plumber", chat: 42, messageID: 1)
        let answer = try await bot.waitForSent(1)
        #expect(answer[0].text.hasPrefix("I will remind you at "), "\(answer)")
        first.spawned.kill(SIGKILL)
        let log = try TestLog(dir.path)
        defer { log.close() }
        // The reminder fires before anyone holds the lease again: its delivery waits for the next holder.
        let fired = try await log.waitForEvent(within: 20, "the reminder's delivery") { _, event in
            if case .deliveryEnqueued(let d) = event { return d.text.hasPrefix("⏰") }
            return false
        }
        let acquired = try await log.waitForEvent(within: 20, "tg-2's lease") { record, event in
            if case .leaseAcquired = event { return record.writer.workerID == "tg-2" }
            return false
        }
        #expect(fired.record.seq < acquired.record.seq, "the reminder was due during the handoff")
        let sent = try await bot.waitForSent(2)
        #expect(sent[1].text == "⏰ call the plumber", "\(sent)")
        _ = try await log.waitForEvent("the reminder's delivery.sent") { _, event in
            if case .deliverySent = event { return true }
            return false
        }
        #expect(await second.stop() == 0)
        #expect(bot.sent.filter { $0.text.hasPrefix("⏰") }.count == 1)
        #expect(try Self.count(log, JobCompleted.self) { _ in true } >= 1)
        let audit = try await SpawnedProcess.run("replay", ["audit", "duplicates", "--data-dir", dir.path])
        #expect(audit.status == 0, "\(audit.lines.suffix(5))")
    }
}

extension ConversationFlowTests {
    // WhatsApp Cloud: a reminder that fires after the contact's 24-hour window closed goes out as the configured
    // template (free text would be refused with 131047), once.
    @Test func aReminderOutsideTheWhatsAppWindowGoesAsTheTemplate() async throws {
        let dir = TemporaryDirectory()
        let graph = try await FakeGraphAPI.start()
        defer { graph.stop() }
        let agent = try AgentProcess(
            "wa-template", data: dir.path,
            ChannelProcessTests.whatsapp(
                graph, ["WHATSAPP_TEMPLATE_NAME": "reminder_notice", "WHATSAPP_INBOUND_DEBOUNCE_MS": "0"]))
        let port = try await ChannelProcessTests.port(of: agent)
        try await agent.waitFor("[whatsapp] Connected (cloud_api +1 555-010-0999)")
        let client = WebhookClient(baseURL: "http://127.0.0.1:\(port)")
        let inbound = ChannelPayloadCorpusTests.notification(
            ChannelPayloadCorpusTests.contacts
                + #","messages":[{"from":"16505551234","id":"wamid.IN-R","timestamp":"1749416383","type":"text","text":{"body":"/remind in 2s renew the passport"}}]"#,
            phoneNumberID: graph.phoneNumberID)
        #expect(try await client.whatsapp(inbound, secret: ChannelProcessTests.appSecret).status == 200)
        let answer = try await graph.waitForSent(1)
        #expect(answer[0].template == nil && answer[0].text.hasPrefix("I will remind you at "), "\(answer)")
        graph.closeWindow("16505551234")
        let fired = try await graph.waitForSent(2)
        #expect(fired[1].template == "reminder_notice/en_US" && fired[1].text == "⏰ renew the passport", "\(fired)")
        let log = try TestLog(dir.path)
        defer { log.close() }
        _ = try await log.waitForEvent("the reminder's delivery.sent") { _, event in
            if case .deliverySent(let sent) = event { return sent.providerMessageID == fired[1].wamid }
            return false
        }
        #expect(await agent.stop() == 0)
        #expect(graph.sent.count == 2)
    }
}

extension ConversationFlowTests {
    // Groups: an allowed group's messages are all kept, and only those addressed to the assistant (a mention, a reply
    // to it, a command) are answered; a group not allowed is ignored.
    @Test func inAGroupOnlyWhatIsAddressedIsAnswered() async throws {
        let dir = TemporaryDirectory()
        let bot = try await FakeBotAPI.start()
        defer { bot.stop() }
        let agent = try AgentProcess(
            "tg-group", data: dir.path,
            ChannelProcessTests.telegram(
                bot, ["TELEGRAM_ALLOWED_GROUP_IDS": "-100777", "TELEGRAM_INBOUND_DEBOUNCE_MS": "0"]))
        try await agent.waitFor("[telegram] Polling for updates")
        bot.pushGroupText("dinner at eight?", group: -100_777, from: 5, messageID: 1)
        bot.pushGroupText("@switchboard_test_bot what is 2+2?", group: -100_777, from: 6, messageID: 2)
        bot.pushGroupText("hello from another group, @switchboard_test_bot", group: -100_999, from: 7, messageID: 3)
        let first = try await bot.waitForSent(1)
        #expect(first[0].chatID == -100_777 && first[0].text.contains("2+2"), "\(first)")
        // A reply to the assistant's message addresses it too.
        bot.pushGroupText("and 3+3?", group: -100_777, from: 6, messageID: 4, replyToBot: first[0].messageID)
        let second = try await bot.waitForSent(2)
        #expect(second[1].text.contains("3+3"), "\(second)")
        let log = try TestLog(dir.path)
        defer { log.close() }
        try await Self.awaitRecord(log, "the second reply's completion") { _ in
            (try? Self.count(log, JobCompleted.self)) == 2
        }
        #expect(await agent.stop() == 0)
        let received = try log.engine.log.records(from: 1).filter { $0.type == MessageReceived.eventType }
            .compactMap { try? $0.decode(MessageReceived.self) }
        #expect(received.map(\.externalID) == ["-100777:1", "-100777:2", "-100777:4"])
        #expect(received.map(\.unanswered) == ["not_addressed", nil, nil])
        let ignored = try log.engine.log.records(from: 1).filter { $0.type == InboundIgnored.eventType }
            .compactMap { try? $0.decode(InboundIgnored.self) }
        #expect(ignored.map(\.reason) == ["group_not_allowed"])
        #expect(bot.sent.count == 2)
    }
}

extension ConversationFlowTests {
    // The group's other lines reach the model as context, each with its writer's name, and only the newest
    // GROUP_CONTEXT_MESSAGES of them.
    @Test func aGroupReplySeesTheNewestLinesWithTheirWriters() async throws {
        let model = try await FakeModelServer.start { _ in .text(["Pizza it is."]) }
        defer { model.stop() }
        let dir = TemporaryDirectory()
        let bot = try await FakeBotAPI.start()
        defer { bot.stop() }
        let environment = Self.withModel(
            bot, model, ["TELEGRAM_ALLOWED_GROUP_IDS": "-100777", "GROUP_CONTEXT_MESSAGES": "2"])
        let agent = try AgentProcess("tg-group-context", data: dir.path, environment)
        try await agent.waitFor("[telegram] Polling for updates")
        let log = try TestLog(dir.path)
        defer { log.close() }
        for (n, line) in ["sushi?", "no, tacos", "pizza then", "pizza works"].enumerated() {
            bot.pushGroupText(
                line, group: -100_777, from: 5 + Int64(n % 2), messageID: Int64(n + 1),
                name: n % 2 == 0 ? "Ann" : "Carl")
        }
        try await Self.awaitRecord(log, "the four context lines") { _ in
            (try? Self.count(log, MessageReceived.self)) == 4
        }
        bot.pushGroupText("@switchboard_test_bot what did we pick?", group: -100_777, from: 7, messageID: 5)
        let sent = try await bot.waitForSent(1)
        #expect(sent[0].chatID == -100_777 && sent[0].text == "Pizza it is.")
        let asked = try #require(model.requests.last).messages.map(\.content)
        #expect(asked.contains("Ann: pizza then") && asked.contains("Carl: pizza works"), "\(asked)")
        #expect(!asked.contains { $0.contains("sushi") || $0.contains("tacos") }, "\(asked)")
        #expect(asked.last == "Bob: @switchboard_test_bot what did we pick?")
        #expect(await agent.stop() == 0)
    }

    // steer: a message arriving while the reply streams (no tool called yet) cancels that turn and restarts it with the
    // message included; the cancelled reply is never sent.
    @Test func steerRestartsTheRunningTurnWithTheNewMessage() async throws {
        let gate = StreamGate()
        let model = try await FakeModelServer.start { request in
            request.lastUserText == "Plan a trip to Rome"
                ? .text(["Day one: the Forum", " and more"], gate: gate) : .text(["Rome in four days, museums first."])
        }
        defer {
            gate.open()
            model.stop()
        }
        let dir = TemporaryDirectory()
        let bot = try await FakeBotAPI.start()
        defer { bot.stop() }
        let environment = Self.withModel(bot, model, ["QUEUE_MODE": "steer"])
        let agent = try AgentProcess("tg-steer", data: dir.path, environment)
        try await agent.waitFor("[telegram] Polling for updates")
        let log = try TestLog(dir.path)
        defer { log.close() }
        _ = bot.pushText("Plan a trip to Rome", chat: 42, messageID: 1)
        try await Self.awaitRecord(log, "the first plan streaming") {
            if case .assistantDelta(let d) = $0 { return d.text.contains("Forum") }
            return false
        }
        _ = bot.pushText("four days, I love museums", chat: 42, messageID: 2)
        let sent = try await bot.waitForSent(1)
        #expect(sent[0].text == "Rome in four days, museums first.")
        let asked = try #require(model.requests.last)
        #expect(asked.lastUserText == "four days, I love museums")
        #expect(asked.messages.contains { $0.content == "Plan a trip to Rome" })
        #expect(!asked.messages.contains { $0.content.contains("Forum") })
        try await Self.awaitRecord(log, "the steered turn's completion") {
            if case .jobCompleted = $0 { return true }
            return false
        }
        #expect(await agent.stop() == 0)
        #expect(bot.sent.count == 1)
        #expect(try Self.count(log, JobCancelled.self) { $0.reason == "steered" } == 1)
    }
}

extension ConversationFlowTests {
    // interrupt: a message arriving while the reply streams cancels that turn whatever it did; the next turn answers
    // the newest message, and the cancelled reply is never sent.
    @Test func interruptCancelsTheRunningTurnAndAnswersTheNewest() async throws {
        let gate = StreamGate()
        let model = try await FakeModelServer.start { request in
            request.lastUserText == "Write me a long essay"
                ? .text(["The essay begins", " and goes on"], gate: gate) : .text(["Sure, the weather: sunny."])
        }
        defer {
            gate.open()
            model.stop()
        }
        let dir = TemporaryDirectory()
        let bot = try await FakeBotAPI.start()
        defer { bot.stop() }
        let agent = try AgentProcess(
            "tg-interrupt", data: dir.path, Self.withModel(bot, model, ["QUEUE_MODE": "interrupt"]))
        try await agent.waitFor("[telegram] Polling for updates")
        let log = try TestLog(dir.path)
        defer { log.close() }
        _ = bot.pushText("Write me a long essay", chat: 42, messageID: 1)
        try await Self.awaitRecord(log, "the essay streaming") {
            if case .assistantDelta(let d) = $0 { return d.text.contains("essay begins") }
            return false
        }
        _ = bot.pushText("actually, what's the weather?", chat: 42, messageID: 2)
        let sent = try await bot.waitForSent(1)
        #expect(sent[0].text == "Sure, the weather: sunny.")
        #expect(try #require(model.requests.last).lastUserText == "actually, what's the weather?")
        try await Self.awaitRecord(log, "the new turn's completion") {
            if case .jobCompleted = $0 { return true }
            return false
        }
        #expect(await agent.stop() == 0)
        #expect(bot.sent.count == 1)
        #expect(try Self.count(log, JobCancelled.self) { $0.reason == "interrupted" } == 1)
        #expect(try Self.count(log, JobEnqueued.self) == 2)
    }
}

extension ConversationFlowTests {
    // schedule_message: the model schedules a message when asked; it is a side effect, so the user approves it first
    // (YES <code> on Telegram); then a reminder job is in the log, due when the model said.
    @Test func theModelSchedulesAMessageOnceApproved() async throws {
        let model = try await FakeModelServer.start { request in
            request.last?.role == "tool"
                ? .text(["Done: I will remind you."])
                : .toolCall(id: "call-1", name: "schedule_message", arguments: #"{"when":"in 1h","text":"call Sam"}"#)
        }
        defer { model.stop() }
        let dir = TemporaryDirectory()
        let bot = try await FakeBotAPI.start()
        defer { bot.stop() }
        let environment = Self.withModel(bot, model)
        let agent = try AgentProcess("tg-schedule", data: dir.path, environment)
        try await agent.waitFor("[telegram] Polling for updates")
        _ = bot.pushText("Remind me in an hour to call Sam", chat: 42, messageID: 1)
        let asked = try await bot.waitForSent(1)
        #expect(asked[0].text.contains("schedule_message"), "\(asked)")
        let code = try #require(asked[0].text.components(separatedBy: "YES ").last?.prefix(6))
        _ = bot.pushText("YES \(code)", chat: 42, messageID: 2)
        let done = try await bot.waitForSent(2)
        #expect(done[1].text == "Done: I will remind you.")
        let log = try TestLog(dir.path)
        defer { log.close() }
        try await Self.awaitRecord(log, "the reminder's job") {
            if case .jobEnqueued(let job) = $0 {
                return job.kind == "scheduled" && job.payload["reminder"] == "call Sam"
            }
            return false
        }
        #expect(await agent.stop() == 0)
        #expect(try Self.count(log, JobEnqueued.self) { $0.kind == "scheduled" } == 1)
    }
}
