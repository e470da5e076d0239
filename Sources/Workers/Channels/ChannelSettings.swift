import Foundation
import Projections

/// How a Telegram bot receives updates.
public enum TelegramMode: String, Sendable, Equatable, CaseIterable {
    /// `POST /telegram/webhook` on the agent's HTTP server (needs `TELEGRAM_WEBHOOK_SECRET`).
    case webhook
    /// `getUpdates` long polling by the lease holder: no public URL needed.
    case polling
    /// No inbound at all (the bot only sends).
    case off
}

/// How a WhatsApp account is reached.
public enum WhatsAppTransport: String, Sendable, Equatable, CaseIterable {
    /// The WhatsApp Cloud API (a Meta business number; webhooks and the Graph API).
    case cloud
    /// A linked device of a person's own number (WhatsApp Web, through the Baileys sidecar).
    case web
}

/// A secret read from the environment: never printed (its description is a placeholder).
public struct ChannelSecret: Sendable, Equatable, CustomStringConvertible {
    public let value: String
    public init(_ value: String) { self.value = value }
    public var description: String { "<secret>" }
}

/// The inbound side of the channels: webhooks, polling, DM policy and allowlists (read from the environment next to
/// ``AgentSettings``; see docs/channels.md).
public struct ChannelSettings: Sendable, Equatable {
    /// `TELEGRAM_MODE`: `webhook`, `polling` or `off` (default: `webhook` when `TELEGRAM_WEBHOOK_SECRET` is set,
    /// else `polling`).
    public var telegramMode: TelegramMode
    /// `TELEGRAM_WEBHOOK_SECRET`: the `X-Telegram-Bot-Api-Secret-Token` value (1–256 of `A-Z a-z 0-9 _ -`).
    /// Required in webhook mode: the route does not start without it.
    public var telegramWebhookSecret: ChannelSecret?
    /// `TELEGRAM_DM_POLICY`: `pairing` (default), `allowlist`, `open` or `disabled`.
    public var telegramPolicy: DMPolicy
    /// `TELEGRAM_ALLOWED_CHAT_IDS`: chat ids (comma or space separated) allowed without pairing.
    public var telegramAllowedChats: Set<String>
    /// `GROUP_POLICY`: `mention` (default), `open` or `off` — how allowed group chats are answered.
    public var groupPolicy: GroupPolicy
    /// `TELEGRAM_ALLOWED_GROUP_IDS`: group chat ids answered (comma or space separated), `*` for any; unset: none.
    public var telegramAllowedGroups: Set<String>?
    /// `WHATSAPP_ALLOWED_GROUP_IDS`: the linked device's group jids answered (`<id>@g.us`, comma or space separated),
    /// `*` for any; unset: none. (The Cloud API delivers no group messages.)
    public var whatsappAllowedGroups: Set<String>?
    /// `TELEGRAM_POLL_TIMEOUT_SECONDS`: the `getUpdates` long-poll timeout (default 25, 1…50).
    public var telegramPollTimeout: Int
    /// `WHATSAPP_CLOUD_VERIFY_TOKEN`: the token of the `GET /whatsapp/webhook` subscription handshake.
    public var whatsappVerifyToken: ChannelSecret?
    /// `WHATSAPP_CLOUD_APP_SECRET`: the app secret `X-Hub-Signature-256` is computed with. Without it every
    /// `POST /whatsapp/webhook` is refused (503) and recorded — never accepted unsigned.
    public var whatsappAppSecret: ChannelSecret?
    /// `WHATSAPP_BUSINESS_ACCOUNT_ID`: the WhatsApp Business Account (recorded in the session store).
    public var whatsappBusinessAccountID: String?
    /// `WHATSAPP_TEMPLATE_NAME` (and `WHATSAPP_TEMPLATE_LANGUAGE`, default `en_US`): the approved template a text
    /// goes out as when the 24-hour window is closed (131047); unset: such a send fails and says why.
    public var whatsappTemplate: WhatsAppTemplate?
    /// `WHATSAPP_DM_POLICY`: `pairing` (default), `allowlist`, `open` or `disabled`.
    public var whatsappPolicy: DMPolicy
    /// `WHATSAPP_ALLOWED_NUMBERS`: phone numbers / WhatsApp ids allowed without pairing, separated by commas (only
    /// the digits count: `+1 650-555-1234` is `16505551234`).
    public var whatsappAllowedNumbers: Set<String>
    /// `WEBHOOK_MAX_BODY_BYTES`: the largest webhook body accepted (default 1 MiB; larger gets 413).
    public var webhookMaxBodyBytes: Int
    /// `WHATSAPP_TRANSPORT`: `cloud` or `web`; `nil` when not set (the agent then chooses: docs/channels.md).
    public var whatsappTransport: WhatsAppTransport?
    /// `WHATSAPP_SIDECAR_COMMAND`: the linked device's sidecar command line, split on spaces (no quoting); default
    /// `node <DATA_DIR>/sidecars/whatsapp-web/index.mjs`, installed on first use.
    public var whatsappSidecarCommand: [String]?
    /// `WHATSAPP_SELF_CHAT`: whether the owner may talk to the assistant in their own "message yourself" chat of
    /// the linked number (default `false`).
    public var whatsappSelfChat: Bool
    /// `WHATSAPP_WEB_SOCKET_URL`: a WebSocket URL instead of WhatsApp's (tests).
    public var whatsappWebSocketURL: String?
    /// `WHATSAPP_WEB_SENDS_PER_SECOND`: the linked device's sends per second for the whole number (default 2,
    /// 1…50).
    public var whatsappWebSendsPerSecond: Int

    /// Reads and validates the channel variables of `environment`.
    public init(environment: [String: String]) throws(SettingsError) {
        let env = EnvironmentReader(environment)
        func policy(_ name: String) throws(SettingsError) -> DMPolicy {
            let text = (env.value(name) ?? "pairing").lowercased()
            guard let policy = DMPolicy(rawValue: text) else {
                throw SettingsError(
                    variable: name,
                    message: "expected \(DMPolicy.allCases.map(\.rawValue).joined(separator: ", ")), got '\(text)'")
            }
            return policy
        }
        /// Items separated by commas or semicolons (and spaces too, when `spaces`: phone numbers may contain them).
        func list(_ name: String, spaces: Bool) -> [String] {
            (env.value(name) ?? "").split(whereSeparator: { $0 == "," || $0 == ";" || (spaces && $0 == " ") })
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        telegramWebhookSecret = env.value("TELEGRAM_WEBHOOK_SECRET").map(ChannelSecret.init)
        if let secret = telegramWebhookSecret?.value {
            let allowed = secret.utf8.allSatisfy { byte in
                (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                    || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                    || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "_")
                    || byte == UInt8(ascii: "-")
            }
            // The message names the rule, never the value.
            guard allowed, (1...256).contains(secret.utf8.count) else {
                throw SettingsError(
                    variable: "TELEGRAM_WEBHOOK_SECRET",
                    message: "Telegram accepts 1-256 characters of A-Z, a-z, 0-9, _ and - (e.g. openssl rand -hex 32)")
            }
        }
        let modeText = (env.value("TELEGRAM_MODE") ?? (telegramWebhookSecret == nil ? "polling" : "webhook"))
            .lowercased()
        guard let mode = TelegramMode(rawValue: modeText) else {
            throw SettingsError(
                variable: "TELEGRAM_MODE", message: "expected webhook, polling or off, got '\(modeText)'")
        }
        if mode == .webhook && telegramWebhookSecret == nil {
            throw SettingsError(
                variable: "TELEGRAM_WEBHOOK_SECRET",
                message: "required with TELEGRAM_MODE=webhook: the webhook route does not start without a secret "
                    + "(or use TELEGRAM_MODE=polling)")
        }
        telegramMode = mode
        telegramPolicy = try policy("TELEGRAM_DM_POLICY")
        var chats = Set<String>()
        for id in list("TELEGRAM_ALLOWED_CHAT_IDS", spaces: true) {
            guard let number = Int64(id) else {
                throw SettingsError(
                    variable: "TELEGRAM_ALLOWED_CHAT_IDS", message: "expected numeric chat ids, got '\(id)'")
            }
            chats.insert(String(number))
        }
        telegramAllowedChats = chats
        let groupText = (env.value("GROUP_POLICY") ?? "mention").lowercased()
        guard let groupPolicy = GroupPolicy(rawValue: groupText) else {
            throw SettingsError(variable: "GROUP_POLICY", message: "expected mention, open or off, got '\(groupText)'")
        }
        self.groupPolicy = groupPolicy
        let groupIDs = list("TELEGRAM_ALLOWED_GROUP_IDS", spaces: true)
        if groupIDs == ["*"] {
            telegramAllowedGroups = nil
        } else {
            var groups = Set<String>()
            for id in groupIDs {
                guard let number = Int64(id) else {
                    throw SettingsError(
                        variable: "TELEGRAM_ALLOWED_GROUP_IDS",
                        message: "expected numeric group chat ids or *, got '\(id)'")
                }
                groups.insert(String(number))
            }
            telegramAllowedGroups = groups
        }
        let whatsappGroupIDs = list("WHATSAPP_ALLOWED_GROUP_IDS", spaces: true)
        if whatsappGroupIDs == ["*"] {
            whatsappAllowedGroups = nil
        } else {
            var groups = Set<String>()
            for id in whatsappGroupIDs {
                let jid = id.hasSuffix("@g.us") ? id : id + "@g.us"
                let user = jid.dropLast("@g.us".count)
                guard !user.isEmpty, user.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "-") }) else {
                    throw SettingsError(
                        variable: "WHATSAPP_ALLOWED_GROUP_IDS",
                        message: "expected group jids like 120363012345678901@g.us or *, got '\(id)'")
                }
                groups.insert(jid)
            }
            whatsappAllowedGroups = groups
        }
        telegramPollTimeout = try env.integer("TELEGRAM_POLL_TIMEOUT_SECONDS", default: 25, range: 1...50)
        whatsappVerifyToken = env.value("WHATSAPP_CLOUD_VERIFY_TOKEN").map(ChannelSecret.init)
        whatsappAppSecret = env.value("WHATSAPP_CLOUD_APP_SECRET").map(ChannelSecret.init)
        whatsappBusinessAccountID = env.value("WHATSAPP_BUSINESS_ACCOUNT_ID")
        if let name = env.value("WHATSAPP_TEMPLATE_NAME") {
            guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "_") }) else {
                throw SettingsError(
                    variable: "WHATSAPP_TEMPLATE_NAME",
                    message: "expected a template name of lowercase letters, digits and underscores, got '\(name)'")
            }
            let language = env.value("WHATSAPP_TEMPLATE_LANGUAGE") ?? "en_US"
            guard !language.isEmpty, language.allSatisfy({ $0.isASCII && ($0.isLetter || $0 == "_") }) else {
                throw SettingsError(
                    variable: "WHATSAPP_TEMPLATE_LANGUAGE",
                    message: "expected a language code like en_US, got '\(language)'")
            }
            whatsappTemplate = WhatsAppTemplate(name: name, language: language)
        } else {
            whatsappTemplate = nil
        }
        whatsappPolicy = try policy("WHATSAPP_DM_POLICY")
        var numbers = Set<String>()
        for number in list("WHATSAPP_ALLOWED_NUMBERS", spaces: false) {
            let digits = Self.phoneDigits(number)
            guard !digits.isEmpty else {
                throw SettingsError(
                    variable: "WHATSAPP_ALLOWED_NUMBERS", message: "expected phone numbers, got '\(number)'")
            }
            numbers.insert(digits)
        }
        whatsappAllowedNumbers = numbers
        webhookMaxBodyBytes = try env.integer("WEBHOOK_MAX_BODY_BYTES", default: 1 << 20, range: 1024...(16 << 20))
        if let text = env.value("WHATSAPP_TRANSPORT")?.lowercased() {
            guard let transport = WhatsAppTransport(rawValue: text) else {
                throw SettingsError(variable: "WHATSAPP_TRANSPORT", message: "expected cloud or web, got '\(text)'")
            }
            whatsappTransport = transport
        }
        whatsappSidecarCommand = env.value("WHATSAPP_SIDECAR_COMMAND").map { $0.split(separator: " ").map(String.init) }
            .flatMap { $0.isEmpty ? nil : $0 }
        whatsappSelfChat = try env.flag("WHATSAPP_SELF_CHAT", default: false)
        whatsappWebSocketURL = env.value("WHATSAPP_WEB_SOCKET_URL")
        whatsappWebSendsPerSecond = try env.integer("WHATSAPP_WEB_SENDS_PER_SECOND", default: 2, range: 1...50)
    }

    /// A phone number as WhatsApp ids spell it: digits only.
    public static func phoneDigits(_ number: String) -> String {
        String(number.filter { $0.isASCII && $0.isNumber })
    }

    /// Non-secret settings, as recorded in `worker.started`.
    public var summary: [String: String] {
        [
            "telegramMode": telegramMode.rawValue,
            "telegramWebhookSecret": telegramWebhookSecret == nil ? "unset" : "set",
            "telegramDMPolicy": telegramPolicy.rawValue, "telegramAllowedChats": "\(telegramAllowedChats.count)",
            "telegramPollTimeoutSeconds": "\(telegramPollTimeout)",
            "whatsappVerifyToken": whatsappVerifyToken == nil ? "unset" : "set",
            "whatsappAppSecret": whatsappAppSecret == nil ? "unset" : "set",
            "whatsappDMPolicy": whatsappPolicy.rawValue, "whatsappAllowedNumbers": "\(whatsappAllowedNumbers.count)",
            "webhookMaxBodyBytes": "\(webhookMaxBodyBytes)",
            "whatsappTemplate": whatsappTemplate.map { "\($0.name) (\($0.language))" } ?? "unset",
            "groupPolicy": groupPolicy.rawValue,
        ]
    }
}
