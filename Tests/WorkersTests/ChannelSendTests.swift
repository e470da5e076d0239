import EventLog
import Foundation
import Logging
import Projections
import ServiceLifecycle
import SwitchboardEvents
import TestSupport
import Testing
import Workers

/// Splitting long replies, and the channel send rules against the fake Bot API and Graph API.
@Suite("Channel sends")
struct ChannelSendTests {
    // MARK: Splitting

    @Test func aShortTextIsOnePartAndAnEmptyOneNone() {
        #expect(TextSplitter.split("hello") == ["hello"])
        #expect(TextSplitter.split("") == [])
        let exact = String(repeating: "a", count: 4096)
        #expect(TextSplitter.split(exact) == [exact])
    }

    @Test func partsEndAtParagraphsThenSentencesThenWords() {
        let paragraph = String(repeating: "word ", count: 30).trimmingCharacters(in: .whitespaces) + "."
        let text = (0..<40).map { "\($0) " + paragraph }.joined(separator: "\n\n")
        let parts = TextSplitter.split(text, limit: 1000)
        #expect(parts.count > 1)
        #expect(parts.allSatisfy { $0.utf16.count <= 1000 })
        // Every part ends with a whole paragraph.
        #expect(parts.allSatisfy { $0.hasSuffix(".") })
        #expect(parts.joined(separator: "\n\n") == text)

        let sentences = (0..<60).map { "Sentence number \($0) is here." }.joined(separator: " ")
        let bySentence = TextSplitter.split(sentences, limit: 200)
        #expect(bySentence.allSatisfy { $0.hasSuffix(".") && $0.utf16.count <= 200 })
        #expect(bySentence.joined(separator: " ") == sentences)

        let words = (0..<300).map { "w\($0)" }.joined(separator: " ")
        let byWord = TextSplitter.split(words, limit: 100)
        #expect(byWord.joined(separator: " ") == words)
        #expect(byWord.allSatisfy { !$0.hasPrefix(" ") && !$0.hasSuffix(" ") && $0.utf16.count <= 100 })
    }

    @Test func noCharacterIsCutInHalf() {
        // Emoji are two UTF-16 units (and flags are one character of four).
        let text = String(repeating: "🇺🇦😀", count: 3000)
        let parts = TextSplitter.split(text, limit: 4096)
        #expect(parts.allSatisfy { $0.utf16.count <= 4096 })
        #expect(parts.joined() == text)
        #expect(parts.count == 5)
    }

    @Test func aLongReplyBecomesOneDeliveryPerPart() async throws {
        let fixture = try DeciderFixtureLite()
        defer { fixture.close() }
        var reply = NewDelivery(
            idempotencyKey: "m-1", channel: "telegram", accountID: "default", recipient: "42", conversationID: "c",
            text: (0..<3).map { String(repeating: "\($0)", count: 3000) }.joined(separator: "\n\n"))
        reply.replyToExternalID = "42:7"
        _ = try await fixture.engine.enqueueReply(reply)
        _ = try await fixture.engine.enqueueReply(reply)  // idempotent
        let parts = try fixture.log.events().compactMap { entry -> DeliveryEnqueued? in
            if case .deliveryEnqueued(let e) = entry.event { return e }
            return nil
        }
        #expect(parts.map(\.idempotencyKey) == ["m-1#0", "m-1#1", "m-1#2"])
        #expect(parts.map(\.part) == [0, 1, 2])
        #expect(parts.map(\.text.count) == [3000, 3000, 3000])
        #expect(parts.map(\.replyToExternalID) == ["42:7", nil, nil])
    }

    // MARK: Telegram

    static func message(_ text: String, to chat: String = "4242", kind: String = "assistant_message") -> OutboundMessage
    {
        OutboundMessage(deliveryID: "d1", recipient: chat, text: text, replyToExternalID: "4242:7", kind: kind)
    }

    @Test func typingIsAChatActionNeverAMessage() async throws {
        let bot = try await FakeBotAPI.start()
        defer { bot.stop() }
        let sender = TelegramSender(baseURL: bot.baseURL, token: bot.token, timeout: .seconds(5))
        #expect(await sender.send(Self.message("", kind: "typing_indicator")) == .sent(providerMessageID: nil))
        #expect(bot.chatActions.map(\.action) == ["typing"])
        #expect(bot.chatActions.map(\.chat) == [4242])
        #expect(bot.sent.isEmpty)
    }

    @Test func anOversizeTextIsSentInPartsThreadedOnce() async throws {
        let bot = try await FakeBotAPI.start()
        defer { bot.stop() }
        let sender = TelegramSender(baseURL: bot.baseURL, token: bot.token, timeout: .seconds(5))
        let text = String(repeating: "Lorem ipsum dolor sit amet. ", count: 400)  // 11 200 characters
        #expect(await sender.send(Self.message(text)) == .sent(providerMessageID: "1"))
        #expect(bot.sent.count == 3)
        #expect(
            bot.sent.allSatisfy {
                $0.text.utf16.count <= 4096 && $0.text.trimmingCharacters(in: .whitespaces).hasSuffix(".")
            })
        #expect(bot.sent.map(\.replyTo) == [7, nil, nil])
        // A later part refused after earlier ones went out: uncertain, never resent automatically.
        bot.fail("sendMessage", .respond(status: 200, body: #"{"ok":true,"result":{"message_id":90}}"#))
        bot.fail("sendMessage", .respond(status: 502, body: "Bad Gateway"))
        guard case .uncertain(let reason) = await sender.send(Self.message(text)) else {
            Issue.record("a part failing after others were sent is uncertain")
            return
        }
        #expect(reason.contains("sent 1 of 3 parts"))
    }

    @Test func faultsAreClassified() async throws {
        let bot = try await FakeBotAPI.start()
        defer { bot.stop() }
        let sender = TelegramSender(baseURL: bot.baseURL, token: bot.token, timeout: .seconds(5))
        bot.fail(
            "sendMessage",
            .respond(
                status: 429,
                body:
                    #"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3","parameters":{"retry_after":3}}"#
            ))
        guard case .failed(let limited) = await sender.send(Self.message("hi")) else {
            Issue.record("429 fails")
            return
        }
        #expect(!limited.permanent && limited.retryAfter == .seconds(3) && limited.pause == nil)
        bot.block(4242)
        guard case .failed(let blocked) = await sender.send(Self.message("hi")) else {
            Issue.record("403 fails")
            return
        }
        #expect(blocked.permanent && blocked.code == "403")
        let wrong = TelegramSender(baseURL: bot.baseURL, token: "1:wrong", timeout: .seconds(5))
        guard case .failed(let unauthorized) = await wrong.send(Self.message("hi", to: "1")) else {
            Issue.record("401 fails")
            return
        }
        #expect(!unauthorized.permanent && unauthorized.pause == .credentials)
        bot.fail("sendMessage", .respond(status: 500, body: #"{"ok":false,"error_code":500,"description":"Internal"}"#))
        guard case .failed(let server) = await sender.send(Self.message("hi", to: "5")) else {
            Issue.record("500 fails")
            return
        }
        #expect(!server.permanent)
        bot.fail("sendMessage", .hang)
        let impatient = TelegramSender(baseURL: bot.baseURL, token: bot.token, timeout: .milliseconds(300))
        guard case .uncertain(let reason) = await impatient.send(Self.message("hi", to: "5")) else {
            Issue.record("a timeout after the body was sent is uncertain")
            return
        }
        #expect(!reason.contains(bot.token))
    }

    @Test func aMigratedGroupIsReKeyedAndTheMessageSentToTheSupergroup() async throws {
        let bot = try await FakeBotAPI.start()
        defer { bot.stop() }
        let chats = TelegramChats()
        let sender = TelegramSender(baseURL: bot.baseURL, token: bot.token, timeout: .seconds(5), chats: chats)
        bot.migrate(-4_000_000_001, to: -1_001_999_999_999)
        #expect(await sender.send(Self.message("to the group", to: "-4000000001")) == .sent(providerMessageID: "1"))
        #expect(bot.sent.map(\.chatID) == [-1_001_999_999_999])
        #expect(chats.current(of: -4_000_000_001) == -1_001_999_999_999)
        #expect(chats.original(of: -1_001_999_999_999) == -4_000_000_001)
        // The next send goes straight to the new id.
        #expect(await sender.send(Self.message("again", to: "-4000000001")) == .sent(providerMessageID: "2"))
        #expect(bot.calls.filter { $0 == "sendMessage" }.count == 3)
    }

    // MARK: WhatsApp

    // Outside the 24-hour window (131047) a configured template carries the text, its lines joined and its blanks
    // collapsed as Meta requires of a parameter; without one the send fails for good and says why.
    @Test func aClosedWindowSendsTheConfiguredTemplate() async throws {
        let graph = try await FakeGraphAPI.start()
        defer { graph.stop() }
        graph.closeWindow("15550001")
        let withTemplate = WhatsAppCloudSender(
            baseURL: graph.baseURL, phoneNumberID: graph.phoneNumberID, accessToken: graph.token, timeout: .seconds(5),
            template: WhatsAppTemplate(name: "reminder_notice", language: "de"))
        let reminder = OutboundMessage(
            deliveryID: "r", recipient: "15550001", text: "⏰ call mom\n\n  then   the   bank\twith\tthe papers")
        guard case .sent(let wamid?) = await withTemplate.send(reminder) else {
            Issue.record("the template went out")
            return
        }
        #expect(graph.sent.map(\.template) == ["reminder_notice/de"])
        #expect(
            graph.sent.first?.text == "⏰ call mom · then the bank with the papers" && graph.sent.first?.wamid == wamid)
        #expect(
            WhatsAppTemplate.parameter(String(repeating: "x", count: 5_000)).count == WhatsAppTemplate.parameterLimit)
        let plain = WhatsAppCloudSender(
            baseURL: graph.baseURL, phoneNumberID: graph.phoneNumberID, accessToken: graph.token, timeout: .seconds(5))
        guard case .failed(let failure) = await plain.send(reminder) else {
            Issue.record("free text outside the window fails")
            return
        }
        #expect(failure.permanent && failure.code == "131047")
        // A recipient whose window is open gets free text, template or not.
        guard case .sent = await withTemplate.send(OutboundMessage(deliveryID: "o", recipient: "15550002", text: "hi"))
        else {
            Issue.record("free text inside the window")
            return
        }
        #expect(graph.sent.last?.template == nil && graph.sent.last?.to == "15550002")
    }

    @Test func whatsappTypingUsesMetasShapeAndTextsArePartedAndClassified() async throws {
        let graph = try await FakeGraphAPI.start()
        defer { graph.stop() }
        let sender = WhatsAppCloudSender(
            baseURL: graph.baseURL, phoneNumberID: graph.phoneNumberID, accessToken: graph.token, timeout: .seconds(5))
        let typing = OutboundMessage(
            deliveryID: "t", recipient: "15550001", text: "", replyToExternalID: "wamid.IN1", kind: "typing_indicator")
        #expect(await sender.send(typing) == .sent(providerMessageID: nil))
        #expect(graph.typing == ["wamid.IN1"])
        #expect(graph.sent.isEmpty)
        let long = OutboundMessage(
            deliveryID: "l", recipient: "15550001", text: String(repeating: "Hello there. ", count: 500),
            replyToExternalID: "wamid.IN1")
        guard case .sent(let wamid?) = await sender.send(long) else {
            Issue.record("a long text is sent")
            return
        }
        #expect(graph.sent.count == 2 && graph.sent.first?.wamid == wamid)
        #expect(graph.sent.map(\.contextID) == ["wamid.IN1", nil])

        let plain = OutboundMessage(deliveryID: "p", recipient: "15550001", text: "hi")
        func failure(_ fault: FakeGraphAPI.Fault) async -> SendFailure? {
            graph.fail("messages", fault)
            if case .failed(let failure) = await sender.send(plain) { return failure }
            return nil
        }
        let window = await failure(FakeGraphAPI.metaError(131047, "Re-engagement message"))
        #expect(window?.permanent == true && window?.code == "131047" && window?.message.contains("template") == true)
        let throughput = await failure(FakeGraphAPI.metaError(130429, "Rate limit hit", status: 429))
        #expect(throughput?.permanent == false && throughput?.pause == .account(.seconds(5)))
        let pair = await failure(FakeGraphAPI.metaError(131056, "Pair rate limit hit"))
        #expect(pair?.permanent == false && pair?.retryAfter == .seconds(6) && pair?.pause == nil)
        let expired = await failure(
            FakeGraphAPI.metaError(190, "Error validating access token: Session has expired", status: 401))
        #expect(expired?.permanent == false && expired?.pause == .credentials)
        let server = await failure(.respond(status: 503, body: "upstream"))
        #expect(server?.permanent == false && server?.code == "http_503")
        let undeliverable = await failure(FakeGraphAPI.metaError(131026, "Message undeliverable"))
        #expect(undeliverable?.permanent == true)
        graph.fail("messages", .hang)
        let impatient = WhatsAppCloudSender(
            baseURL: graph.baseURL, phoneNumberID: graph.phoneNumberID, accessToken: graph.token,
            timeout: .milliseconds(300))
        guard case .uncertain = await impatient.send(plain) else {
            Issue.record("a timeout after the write is uncertain")
            return
        }
    }
}

/// A fresh log in a temporary directory, for tests that only need the engine.
struct DeciderFixtureLite {
    let directory = TemporaryDirectory()
    let log: TestLog

    init() throws { log = try TestLog(directory.path) }
    var engine: Switchboard { log.engine }
    func close() { log.close() }
}
