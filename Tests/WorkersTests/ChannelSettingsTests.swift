import Projections
import Testing
import Workers

@Suite("Channel settings")
struct ChannelSettingsTests {
    @Test func defaultsPollWithPairingAndNoAllowlist() throws {
        let settings = try ChannelSettings(environment: [:])
        #expect(settings.telegramMode == .polling)
        #expect(settings.telegramPolicy == .pairing && settings.whatsappPolicy == .pairing)
        #expect(settings.telegramAllowedChats.isEmpty && settings.whatsappAllowedNumbers.isEmpty)
        #expect(settings.telegramPollTimeout == 25)
        #expect(settings.webhookMaxBodyBytes == 1 << 20)
        #expect(settings.whatsappAppSecret == nil && settings.whatsappVerifyToken == nil)
    }

    @Test func aSecretSelectsTheWebhookAndTheWebhookNeedsOne() throws {
        let secret = "0123456789abcdef_-XYZ"
        #expect(try ChannelSettings(environment: ["TELEGRAM_WEBHOOK_SECRET": secret]).telegramMode == .webhook)
        #expect(
            try ChannelSettings(environment: ["TELEGRAM_WEBHOOK_SECRET": secret, "TELEGRAM_MODE": "polling"])
                .telegramMode
                == .polling)
        #expect {
            try ChannelSettings(environment: ["TELEGRAM_MODE": "webhook"])
        } throws: { error in
            (error as? SettingsError)?.variable == "TELEGRAM_WEBHOOK_SECRET"
        }
        // Telegram's character rule; the value is never echoed.
        #expect {
            try ChannelSettings(environment: ["TELEGRAM_WEBHOOK_SECRET": "has spaces and $igns"])
        } throws: { error in
            "\(error)".contains("TELEGRAM_WEBHOOK_SECRET") && !"\(error)".contains("$igns")
        }
        #expect(throws: SettingsError.self) { try ChannelSettings(environment: ["TELEGRAM_MODE": "carrier-pigeon"]) }
    }

    @Test func policiesAndAllowlistsAreRead() throws {
        let settings = try ChannelSettings(environment: [
            "TELEGRAM_DM_POLICY": "Allowlist", "WHATSAPP_DM_POLICY": "disabled",
            "TELEGRAM_ALLOWED_CHAT_IDS": "123456789, -1001234 42",
            "WHATSAPP_ALLOWED_NUMBERS": "+1 650-555-1234; 4915112345678",
        ])
        #expect(settings.telegramPolicy == .allowlist && settings.whatsappPolicy == .disabled)
        #expect(settings.telegramAllowedChats == ["123456789", "-1001234", "42"])
        #expect(settings.whatsappAllowedNumbers == ["16505551234", "4915112345678"])
        #expect(throws: SettingsError.self) { try ChannelSettings(environment: ["TELEGRAM_DM_POLICY": "everyone"]) }
        #expect(throws: SettingsError.self) {
            try ChannelSettings(environment: ["TELEGRAM_ALLOWED_CHAT_IDS": "@alice"])
        }
        let summary = try ChannelSettings(environment: [
            "TELEGRAM_WEBHOOK_SECRET": "abc", "WHATSAPP_CLOUD_APP_SECRET": "app-secret-value",
        ]).summary
        #expect(!summary.values.contains { $0 == "abc" || $0 == "app-secret-value" })
    }

    @Test func groupsAndTheTemplateAreRead() throws {
        let settings = try ChannelSettings(environment: [
            "WHATSAPP_ALLOWED_GROUP_IDS": "120363001@g.us 120363002", "WHATSAPP_TEMPLATE_NAME": "reminder_notice",
            "WHATSAPP_TEMPLATE_LANGUAGE": "pt_BR",
        ])
        #expect(settings.whatsappAllowedGroups == ["120363001@g.us", "120363002@g.us"])
        #expect(settings.whatsappTemplate == WhatsAppTemplate(name: "reminder_notice", language: "pt_BR"))
        let defaults = try ChannelSettings(environment: ["WHATSAPP_ALLOWED_GROUP_IDS": "*"])
        #expect(defaults.whatsappAllowedGroups == nil && defaults.whatsappTemplate == nil)
        #expect(try ChannelSettings(environment: [:]).whatsappAllowedGroups == [])
        for bad in [["WHATSAPP_ALLOWED_GROUP_IDS": "family"], ["WHATSAPP_TEMPLATE_NAME": "Reminder Notice"]] {
            #expect(throws: SettingsError.self) { try ChannelSettings(environment: bad) }
        }
    }

    @Test func aPairingCodeIsEightUnambiguousCharacters() {
        let codes = (0..<200).map { _ in ChannelAccess.pairingCode() }
        #expect(Set(codes).count == 200)
        for code in codes {
            #expect(code.count == 9 && Array(code)[4] == "-")
            #expect(
                code.replacingOccurrences(of: "-", with: "").allSatisfy {
                    "ABCDEFGHJKMNPQRSTUVWXYZ23456789".contains($0)
                })
        }
        let access = ChannelAccess(channel: "telegram", policy: .pairing, allowlist: ["1"])
        #expect(access.access(for: "1").pairingCode == nil)
        #expect(access.access(for: "2", alsoKnownAs: ["1"]).allowlisted)
        let unknown = access.access(for: "3")
        #expect(unknown.pairingReply?.contains(unknown.pairingCode ?? "?") == true)
    }
}
