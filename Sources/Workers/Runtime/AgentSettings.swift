import Assistant
import EventLog
import SwitchboardEvents
import Foundation
import Projections

/// An invalid setting: which variable, what was wrong, what is accepted.
public struct SettingsError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The environment variable at fault.
    public var variable: String
    /// What is wrong and what is accepted.
    public var message: String

    public var description: String { "\(variable): \(message)" }
}

/// Which model answers (`AI_PROVIDER`).
public enum AIProviderChoice: String, Sendable, CaseIterable {
    /// The bundled llama.cpp server with SmolLM2-135M (or `LLM_GGUF`), supervised by the agent.
    case local
    /// The OpenAI-compatible server at `AI_BASE_URL`.
    case openai
    /// No model: the offline assistant.
    case offline
}

/// Whether tools are offered to the model (`AI_TOOLS`).
public enum ToolOffer: String, Sendable, CaseIterable {
    /// To remote providers, not to the bundled small model.
    case auto
    case on
    case off
}

/// The process roles of the agent.
public enum AgentRole: String, Sendable, CaseIterable {
    case core, whatsapp, telegram, web, all
}

/// The agent's settings, read from the environment (the original runbook's operator surface).
public struct AgentSettings: Sendable, Equatable {
    /// `AGENT_ROLE`: `core`, `whatsapp`, `telegram`, `web` or `all` (default `all`).
    public var role: AgentRole
    /// `WORKER_ID`: the operator's name for this worker (default `<role>-<hostname>`). Two processes may share
    /// it: each also has a random per-process instance id.
    public var workerID: String
    /// `DATA_DIR`: the LMDB environment directory (default `./data`).
    public var dataDirectory: String
    /// `EVENTLOG_DURABILITY`: `durable` (default) or `relaxed` (LMDB only).
    public var durability: Durability
    /// `EVENTLOG_BACKEND` (`lmdb` default, `postgres`), `DATABASE_URL`, `EVENTLOG_SCHEMA` (``EventLogLocation``).
    public var eventLog: EventLogLocation
    /// `WHATSAPP_ACCOUNT_ID` (default `default`).
    public var whatsappAccountID: String
    /// `WHATSAPP_LEASE_TTL_MS` (default 45 000, at least 10 000).
    public var leaseTTL: Duration
    /// `WHATSAPP_HEARTBEAT_MS` (default 15 000, at least 1 000 and below TTL/2).
    public var leaseHeartbeat: Duration
    /// `SESSION_STORE` (or the original's `WHATSAPP_AUTH_MODE`): `log` (default; `convex` is accepted as its old
    /// name) or `local`.
    public var sessionBackend: SessionBackend
    /// `SESSION_DIR`: the folder of the `local` session backend (default `<DATA_DIR>/sessions`).
    public var sessionDirectory: String
    /// `SESSION_ENCRYPTION_KEY`: base64 of 32 bytes; session values are sealed at rest when set. Never logged.
    public var sessionKeyBase64: String?

    /// `SNAPSHOT_EVERY`: take a snapshot of the projections every this many events (default 100 000; 0 turns
    /// snapshots off). `replay --at` rebuilds from the nearest one.
    public var snapshotEvery: UInt64
    /// `SNAPSHOT_KEEP`: how many snapshots to keep, newest first (default 8, at least 1).
    public var snapshotKeep: Int

    /// `ENABLE_WHATSAPP`: `true` (default) or `false`; `false` turns the WhatsApp channel off in every role.
    public var enableWhatsApp: Bool
    /// `WHATSAPP_PHONE`: the account's phone number, for the operator (default: the account id).
    public var whatsappPhone: String
    /// `WHATSAPP_CLOUD_ACCESS_TOKEN`: the Cloud API bearer token. Never logged.
    public var whatsappAccessToken: String?
    /// `WHATSAPP_PHONE_NUMBER_ID` (or `WHATSAPP_CLOUD_PHONE_NUMBER_ID`): the Cloud API sender number id.
    public var whatsappPhoneNumberID: String?
    /// `WHATSAPP_GRAPH_BASE_URL`: the Graph API base, version included (default `https://graph.facebook.com/v21.0`).
    public var whatsappGraphBaseURL: String
    /// `TELEGRAM_ACCOUNT_ID` (default `default`).
    public var telegramAccountID: String
    /// `TELEGRAM_BOT_TOKEN`: the bot token. Never logged.
    public var telegramBotToken: String?
    /// `TELEGRAM_API_BASE_URL`: the Bot API base (default `https://api.telegram.org`).
    public var telegramAPIBaseURL: String
    /// `PROVIDER_TIMEOUT_MS`: the deadline of one provider call (default 30 000, at least 100). A call that
    /// times out after its request was written is recorded `uncertain`.
    public var providerTimeout: Duration
    /// `DELIVERY_VISIBILITY_MS`: how long a delivery claim stays valid (default 120 000, at least 1 000). A
    /// claim that expires after its send was attempted becomes `uncertain`, never resent silently.
    public var deliveryVisibility: Duration
    /// `CORE_CONCURRENCY`: jobs the core runs at once (default 4, 1…256).
    public var coreConcurrency: Int
    /// `QUEUE_MODE`, `QUEUE_CAP`, `INBOUND_DEBOUNCE_MS` and their per-channel forms, by channel
    /// (``ConversationSettings``).
    public var conversations: [String: ConversationRules]
    /// `TIMEZONE` (IANA, default `UTC`): the owner's zone, for `/remind at 17:00`; `REMINDER_LATE_AFTER_SECONDS`
    /// (default 60): a reminder firing later than that after it was due says "(late)".
    public var timeZone: TimeZone
    public var reminderLateAfter: Duration
    /// `GROUP_CONTEXT_MESSAGES` (0…500, default 20): how many of a group's lines that were not addressed to the
    /// assistant a group reply sees (``GroupContext``).
    public var groupContextMessages: Int
    /// `OUTBOUND_CONCURRENCY`: provider calls one channel account's outbound loop makes at once, each to a
    /// different recipient (default 16, 1…256). FIFO per recipient and the rate limits hold whatever the value.
    public var outboundConcurrency: Int
    /// The HTTP server's connection bounds and deadlines (`HTTP_MAX_CONNECTIONS`, `HTTP_HEAD_TIMEOUT_SECONDS`,
    /// `HTTP_BODY_TIMEOUT_SECONDS`, `HTTP_WRITE_TIMEOUT_SECONDS`; see ``ConnectionLimits``).
    public var httpLimits: ConnectionLimits
    /// `HOST`: the address the health and metrics server binds (default `127.0.0.1`).
    public var host: String
    /// `PORT`: its port (default 8080; 0 picks a free one, logged as `http.port`).
    public var port: Int
    /// `JOB_VISIBILITY_MS`: how long a job claim stays valid without a heartbeat (default 60 000, at least 1 000);
    /// the core heartbeats every third of it, and another core reclaims the job after it.
    public var jobVisibility: Duration
    /// The model provider (`AI_BASE_URL`, `AI_API_KEY`/`AI_GATEWAY_API_KEY`, `AI_MODEL`, `AI_LITE_MODEL`,
    /// `AI_FALLBACK_MODEL`, `AI_CONTEXT_WINDOW`, …, read by ``ProviderSettings/fromEnvironment(_:)``); `nil`: the
    /// offline assistant answers.
    public var provider: ProviderSettings?
    /// `AI_PROVIDER`: `local` (the bundled llama.cpp server; the default without `AI_BASE_URL`), `openai` (the
    /// OpenAI-compatible server at `AI_BASE_URL`; the default with it) or `offline` (no model).
    public var aiProvider: AIProviderChoice
    /// `AI_TOOLS`: `auto` (default: tools are offered to remote models, not to the bundled 135M one, which
    /// degenerates with them), `on` or `off`. The explicit commands (`/time`, `/calc …`, `/todo …`) run the tools
    /// either way.
    public var aiTools: ToolOffer
    /// `AI_MAX_TOKENS`: the longest reply in tokens (default 512 for the local model, 2048 otherwise).
    public var aiMaxTokens: Int?
    /// `AI_TEMPERATURE`: sampling temperature, 0…2 (default 0.3 for the local model, 0.7 otherwise; 0 is greedy).
    public var aiTemperature: Double?
    /// The local model's folder, GGUF and launcher (`LLM_*`, see ``LocalModelSettings``).
    public var localModel: LocalModelSettings
    /// `TODOIST_API_TOKEN`: a Todoist token that overrides the one the web role stored (session store namespace
    /// `todoist`, key `access_token`). Never logged.
    public var todoistToken: Secret?
    /// `TODOIST_API_BASE_URL` (or `TODOIST_BASE_URL`): Todoist's API v1 root (default
    /// `https://api.todoist.com/api/v1`).
    public var todoistBaseURL: String
    /// `APPROVAL_TTL_SECONDS`: how long a tool call waits for the user's approval (default 300, 1…86 400).
    public var approvalTTL: Duration
    /// The web chat's settings (`WEB_*`, `TODOIST_*`; see ``WebSettings``).
    public var web: WebSettings
    /// The channels' inbound settings: webhooks, Telegram polling, DM policies, allowlists (see
    /// ``ChannelSettings``).
    public var channels: ChannelSettings
    /// `AGENT_TEST_SHORT_LEASES`: `1` lowers the lease minimums (TTL 200 ms, heartbeat 50 ms) so tests can
    /// exercise expiry in seconds. Never set it in production.
    public var testShortLeases: Bool

    /// Reads and validates the settings.
    /// - Throws: ``SettingsError`` naming the first bad variable.
    public init(environment: [String: String]) throws(SettingsError) {
        let env = EnvironmentReader(environment)
        func milliseconds(_ name: String, default fallback: Int, minimum: Int) throws(SettingsError) -> Duration {
            guard let raw = env.value(name) else { return .milliseconds(fallback) }
            guard let ms = Int(raw), ms >= minimum else {
                throw SettingsError(variable: name, message: "expected whole milliseconds >= \(minimum), got '\(raw)'")
            }
            return .milliseconds(ms)
        }
        let roleText = env.value("AGENT_ROLE") ?? "all"
        guard let role = AgentRole(rawValue: roleText.lowercased()) else {
            let accepted = AgentRole.allCases.map(\.rawValue).joined(separator: ", ")
            throw SettingsError(
                variable: "AGENT_ROLE", message: "unknown role '\(roleText)'; expected one of \(accepted)")
        }
        self.role = role
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "host"
        workerID = env.value("WORKER_ID") ?? "\(role.rawValue)-\(host)"
        guard workerID.utf8.count <= 255 else {
            throw SettingsError(variable: "WORKER_ID", message: "longer than 255 bytes")
        }
        dataDirectory = env.value("DATA_DIR") ?? "./data"
        let durabilityText = env.value("EVENTLOG_DURABILITY") ?? "durable"
        // `unsynced` is for throwaway scratch environments, never for the log.
        guard let durability = Durability(rawValue: durabilityText.lowercased()), durability != .unsynced else {
            throw SettingsError(
                variable: "EVENTLOG_DURABILITY", message: "expected durable or relaxed, got '\(durabilityText)'")
        }
        self.durability = durability
        eventLog = try EventLogLocation.read(env)
        if case .postgres = eventLog, durability != .durable {
            throw SettingsError(
                variable: "EVENTLOG_DURABILITY",
                message: "relaxed is LMDB's; on PostgreSQL a commit is as durable as the server's synchronous_commit")
        }
        whatsappAccountID = env.value("WHATSAPP_ACCOUNT_ID") ?? "default"
        testShortLeases = try env.flag("AGENT_TEST_SHORT_LEASES", default: false)
        leaseTTL = try milliseconds("WHATSAPP_LEASE_TTL_MS", default: 45_000, minimum: testShortLeases ? 200 : 10_000)
        leaseHeartbeat = try milliseconds(
            "WHATSAPP_HEARTBEAT_MS", default: 15_000, minimum: testShortLeases ? 50 : 1_000)
        guard leaseHeartbeat < leaseTTL / 2 else {
            throw SettingsError(
                variable: "WHATSAPP_HEARTBEAT_MS",
                message: "the heartbeat (\(leaseHeartbeat)) must be below half the lease TTL (\(leaseTTL)), "
                    + "or the lease is lost between heartbeats")
        }
        let storeVariable = env.value("SESSION_STORE") != nil ? "SESSION_STORE" : "WHATSAPP_AUTH_MODE"
        let storeText = (env.value("SESSION_STORE") ?? env.value("WHATSAPP_AUTH_MODE") ?? "log").lowercased()
        switch storeText {
        case "log", "convex": sessionBackend = .log
        case "local": sessionBackend = .local
        default:
            throw SettingsError(variable: storeVariable, message: "expected log or local, got '\(storeText)'")
        }
        sessionDirectory = env.value("SESSION_DIR") ?? dataDirectory + "/sessions"
        // On PostgreSQL each process would write its own (to its DATA_DIR): off unless asked for.
        let everyText = env.value("SNAPSHOT_EVERY") ?? (eventLog == .lmdb ? "100000" : "0")
        guard let every = UInt64(everyText.replacingOccurrences(of: "_", with: "")), every == 0 || every >= 1_000 else {
            throw SettingsError(
                variable: "SNAPSHOT_EVERY",
                message: "expected a number of events >= 1000, or 0 for no snapshots, got '\(everyText)'")
        }

        snapshotEvery = every
        let keepText = env.value("SNAPSHOT_KEEP") ?? "8"
        guard let keep = Int(keepText), keep >= 1 else {
            throw SettingsError(variable: "SNAPSHOT_KEEP", message: "expected a whole number >= 1, got '\(keepText)'")
        }
        snapshotKeep = keep
        enableWhatsApp = try env.flag("ENABLE_WHATSAPP", default: true)
        whatsappPhone = env.value("WHATSAPP_PHONE") ?? whatsappAccountID
        whatsappAccessToken = env.value("WHATSAPP_CLOUD_ACCESS_TOKEN")
        whatsappPhoneNumberID = env.value("WHATSAPP_PHONE_NUMBER_ID") ?? env.value("WHATSAPP_CLOUD_PHONE_NUMBER_ID")
        whatsappGraphBaseURL = try env.url("WHATSAPP_GRAPH_BASE_URL", default: "https://graph.facebook.com/v21.0")
        telegramAccountID = env.value("TELEGRAM_ACCOUNT_ID") ?? "default"
        telegramBotToken = env.value("TELEGRAM_BOT_TOKEN")
        if let token = telegramBotToken, token.contains(where: { $0 == "/" || $0 == "?" || $0 == "#" || $0 == " " }) {
            // The message names the variable and the expected form, never the value.
            throw SettingsError(variable: "TELEGRAM_BOT_TOKEN", message: "must not contain '/', '?', '#' or spaces")
        }
        telegramAPIBaseURL = try env.url("TELEGRAM_API_BASE_URL", default: "https://api.telegram.org")
        providerTimeout = try milliseconds("PROVIDER_TIMEOUT_MS", default: 30_000, minimum: 100)
        deliveryVisibility = try milliseconds(
            "DELIVERY_VISIBILITY_MS", default: 120_000, minimum: testShortLeases ? 200 : 1_000)
        coreConcurrency = try env.integer("CORE_CONCURRENCY", default: 4, range: 1...256)
        conversations = try ConversationSettings.read(env)
        timeZone = try ConversationSettings.timeZone(env)
        reminderLateAfter = .seconds(try env.integer("REMINDER_LATE_AFTER_SECONDS", default: 60, range: 1...86_400))
        groupContextMessages = try env.integer(
            "GROUP_CONTEXT_MESSAGES", default: GroupContext.defaultLimit, range: 0...500)
        outboundConcurrency = try env.integer("OUTBOUND_CONCURRENCY", default: 16, range: 1...256)
        var limits = ConnectionLimits()
        limits.maxConnections = try env.integer(
            "HTTP_MAX_CONNECTIONS", default: limits.maxConnections, range: 8...65_536)
        limits.headTimeout = .seconds(try env.integer("HTTP_HEAD_TIMEOUT_SECONDS", default: 10, range: 1...3_600))
        limits.bodyTimeout = .seconds(try env.integer("HTTP_BODY_TIMEOUT_SECONDS", default: 30, range: 1...3_600))
        limits.writeTimeout = .seconds(try env.integer("HTTP_WRITE_TIMEOUT_SECONDS", default: 30, range: 1...3_600))
        httpLimits = limits
        jobVisibility = try milliseconds("JOB_VISIBILITY_MS", default: 60_000, minimum: testShortLeases ? 200 : 1_000)
        do {
            provider = try ProviderSettings.fromEnvironment(environment)
        } catch {
            throw SettingsError(variable: error.variable, message: error.message)
        }
        if let raw = env.value("AI_PROVIDER") {
            guard let choice = AIProviderChoice(rawValue: raw.lowercased()) else {
                throw SettingsError(variable: "AI_PROVIDER", message: "expected local, openai or offline, got '\(raw)'")
            }
            switch (choice, provider) {
            case (.openai, nil):
                throw SettingsError(variable: "AI_BASE_URL", message: "required when AI_PROVIDER=openai")
            case (.local, _?), (.offline, _?):
                throw SettingsError(
                    variable: "AI_PROVIDER",
                    message: "AI_PROVIDER=\(choice.rawValue) conflicts with AI_BASE_URL; unset one")
            default: aiProvider = choice
            }
        } else {
            aiProvider = provider == nil ? .local : .openai
        }
        let toolsText = (env.value("AI_TOOLS") ?? "auto").lowercased()
        guard let tools = ToolOffer(rawValue: toolsText) else {
            throw SettingsError(variable: "AI_TOOLS", message: "expected auto, on or off, got '\(toolsText)'")
        }
        aiTools = tools
        aiMaxTokens = try env.value("AI_MAX_TOKENS").map { _ throws(SettingsError) in
            try env.integer("AI_MAX_TOKENS", default: 0, range: 16...131_072)
        }
        if let raw = env.value("AI_TEMPERATURE") {
            guard let temperature = Double(raw), (0...2).contains(temperature) else {
                throw SettingsError(variable: "AI_TEMPERATURE", message: "expected a number in 0...2, got '\(raw)'")
            }
            aiTemperature = temperature
        } else {
            aiTemperature = nil
        }
        localModel = try LocalModelSettings.fromEnvironment(environment, dataDirectory: dataDirectory)
        todoistToken = env.value("TODOIST_API_TOKEN").map(Secret.init)
        let todoistVariable = env.value("TODOIST_API_BASE_URL") != nil ? "TODOIST_API_BASE_URL" : "TODOIST_BASE_URL"
        todoistBaseURL = try env.url(todoistVariable, default: TodoistSettings.defaultBaseURL)
        approvalTTL = .seconds(try env.integer("APPROVAL_TTL_SECONDS", default: 300, range: 1...86_400))
        self.host = env.value("HOST") ?? "127.0.0.1"
        port = try env.integer("PORT", default: 8080, range: 0...65_535)
        web = try WebSettings(environment: environment, dataDirectory: dataDirectory, host: self.host, port: port)
        channels = try ChannelSettings(environment: environment)
        sessionKeyBase64 = env.value("SESSION_ENCRYPTION_KEY")
        do {
            _ = try SessionSealer(keyBase64: sessionKeyBase64)
        } catch {
            // The message names the variable and the expected form, never the value.
            throw SettingsError(variable: "SESSION_ENCRYPTION_KEY", message: "must be 32 bytes, base64-encoded")
        }
    }

    /// The deciders' settings for these values.
    public func engineSettings() throws -> EngineSettings {
        var settings = EngineSettings(lease: try LeaseTiming(ttl: leaseTTL, heartbeat: leaseHeartbeat))
        settings.deliveries.rateLimits = Channel.deliveryRateLimits
        settings.deliveries.visibility = deliveryVisibility
        settings.jobs.visibility = jobVisibility
        settings.jobs.conversations = conversations
        settings.jobs.timeZone = timeZone
        settings.jobs.reminderLateAfter = reminderLateAfter
        return settings
    }

    /// Non-secret settings, as recorded in `worker.started`.
    public var summary: [String: String] {
        let web = role == .web || role == .all ? self.web.summary : [:]
        return [
            "role": role.rawValue, "dataDirectory": dataDirectory, "durability": durability.rawValue,
            "eventLog": eventLog.description,
            "whatsappAccountID": whatsappAccountID,
            "leaseTTLMilliseconds": "\(leaseTTL.wholeMilliseconds)",
            "leaseHeartbeatMilliseconds": "\(leaseHeartbeat.wholeMilliseconds)",
            "sessionStore": sessionBackend.rawValue,
            "sessionEncryption": sessionKeyBase64 == nil ? "off" : "on",
            "snapshotEvery": "\(snapshotEvery)", "snapshotKeep": "\(snapshotKeep)",
            "enableWhatsApp": "\(enableWhatsApp)", "whatsappPhoneNumberID": whatsappPhoneNumberID ?? "unset",
            "whatsappAccessToken": whatsappAccessToken == nil ? "unset" : "set",
            "whatsappGraphBaseURL": whatsappGraphBaseURL, "telegramAccountID": telegramAccountID,
            "telegramBotToken": telegramBotToken == nil ? "unset" : "set", "telegramAPIBaseURL": telegramAPIBaseURL,
            "coreConcurrency": "\(coreConcurrency)", "outboundConcurrency": "\(outboundConcurrency)",
            "httpMaxConnections": "\(httpLimits.maxConnections)",
            "httpTimeoutsSeconds":
                "head \(httpLimits.headTimeout.components.seconds), body \(httpLimits.bodyTimeout.components.seconds), "
                + "write \(httpLimits.writeTimeout.components.seconds)",
            "deliveryVisibilityMilliseconds": "\(deliveryVisibility.wholeMilliseconds)", "http": "\(host):\(port)",
            "jobVisibilityMilliseconds": "\(jobVisibility.wholeMilliseconds)",
            "aiProvider": aiProvider.rawValue, "model": provider?.model ?? aiProvider.rawValue,
            "aiBaseURL": provider?.baseURL ?? "unset",
            "aiAPIKey": provider?.apiKey == nil ? "unset" : "set",
            "todoistToken": todoistToken == nil ? "unset" : "set", "todoistBaseURL": todoistBaseURL,
            "approvalTTLSeconds": "\(approvalTTL.components.seconds)",
        ].merging(web) { $1 }.merging(channels.summary) { $1 }
    }

    /// Whether this role runs the core loop.
    public var runsCore: Bool { role == .core || role == .all }

    /// Why the WhatsApp channel is off for this process, or `nil` when it sends.
    public var whatsappOff: String? {
        guard role == .whatsapp || role == .all else { return "not this role" }
        guard enableWhatsApp else { return "ENABLE_WHATSAPP=false" }
        var missing: [String] = []
        if whatsappAccessToken == nil { missing.append("WHATSAPP_CLOUD_ACCESS_TOKEN") }
        if whatsappPhoneNumberID == nil { missing.append("WHATSAPP_PHONE_NUMBER_ID") }
        return missing.isEmpty ? nil : "no credentials: \(missing.joined(separator: " and ")) not set"
    }

    /// Why the Telegram channel is off for this process, or `nil` when it sends.
    public var telegramOff: String? {
        guard role == .telegram || role == .all else { return "not this role" }
        return telegramBotToken == nil ? "no credentials: TELEGRAM_BOT_TOKEN not set" : nil
    }
}

extension Duration {
    /// Whole milliseconds.
    public var wholeMilliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
