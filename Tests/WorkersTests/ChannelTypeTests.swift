import Projections
import Testing
import Workers

/// The channels' capabilities and the Telegram message reference codec.
@Suite struct ChannelTypeTests {
    @Test func theAgentGivesTheEngineTheProvidersRateLimits() throws {
        let settings = try AgentSettings(environment: [:]).engineSettings()
        let telegram = try #require(settings.deliveries.rateLimits["telegram"])
        #expect(telegram.perRecipientInterval == .seconds(1) && telegram.perRecipientBurst == 3)
        #expect(telegram.perGroupWindow?.count == 20 && telegram.perGroupWindow?.window == .seconds(60))
        #expect(telegram.perAccount.count == 30 && telegram.perAccount.window == .seconds(1))
        #expect(telegram.isGroup("-100123") && !telegram.isGroup("4242"))
        let whatsapp = try #require(settings.deliveries.rateLimits["whatsapp"])
        #expect(whatsapp.perRecipientInterval == .seconds(6) && whatsapp.perRecipientBurst == 4)
        #expect(whatsapp.perAccount.count == 80 && whatsapp.perAccount.window == .seconds(1))
        #expect(!whatsapp.isGroup("-1"))
        #expect(settings.deliveries.rateLimits["web"] == nil)
    }

    @Test(arguments: Channel.allCases)
    func aChannelIsReadFromItsStoredName(_ channel: Channel) {
        #expect(Channel(stored: channel.rawValue) == channel)
        #expect(channel.deliversReplies == (channel != .web))
        #expect(channel.answersApprovalsInText == (channel != .web))
        #expect((channel.textLimit != nil) == channel.deliversReplies)
        #expect(Channel(stored: "sms") == nil)
    }

    @Test func telegramReferencesRoundTripAndRefuseOtherIDs() {
        let plain = TelegramMessageRef(chat: -100_123, messageID: 42)
        #expect(plain.externalID == "-100123:42")
        #expect(TelegramMessageRef(externalID: plain.externalID) == plain)
        let edit = TelegramMessageRef(chat: 7, messageID: 9, editDate: 1_700_000_000)
        #expect(edit.externalID == "7:9:edit:1700000000")
        #expect(TelegramMessageRef(externalID: edit.externalID) == edit)
        for other in ["update:5", "7", "7:x", "7:9:edit", "7:9:edit:x", "7:9:other:1", ""] {
            #expect(TelegramMessageRef(externalID: other) == nil, "\(other)")
        }
    }
}

/// When a Telegram group message addresses the assistant (issue 25).
@Suite struct TelegramGroupAddressTests {
    @Test(
        arguments: [
            ("@Switchboard_Test_Bot hi", nil, true), ("hey switchboard, lunch?", nil, true), ("/status", nil, true),
            ("just chatting", nil, false), ("switchboards are old", nil, false), ("thanks!", Int64(4242), true),
            ("thanks!", Int64(5), false),
        ] as [(String, Int64?, Bool)])
    func aGroupMessageIsAddressedByMentionReplyOrCommand(_ text: String, _ replyTo: Int64?, _ addressed: Bool) {
        let identity = TelegramBotIdentity()
        identity.set(id: 4242, username: "switchboard_test_bot", firstName: "Switchboard")
        let groups = TelegramGroups(policy: .mention, allowed: ["-1"], identity: identity)
        #expect(groups.addressed(text, replyToSender: replyTo) == addressed)
    }
}
