// The Switchboard agent: one process per role (AGENT_ROLE), or every role in one process (`all`).
import ArgumentParser
import EventLog
import Foundation
import Logging
import Metrics
import Projections
import Prometheus
import ServiceLifecycle
import SwitchboardEvents
import Workers

let version = "0.2.0-workers"

/// `agent`: runs the workers (the default subcommand, `run`), or an operator command.
@main
struct Agent: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Runs Switchboard's workers on the shared event log, or an operator command.",
        discussion: """
            With no subcommand (or `run`), starts the workers: see `agent run --help` for every setting.
            """,
        version: version,
        subcommands: [
            RunAgent.self, ModelCommand.self, PairingCommand.self, TelegramCommand.self, WhatsAppCommand.self,
        ],
        defaultSubcommand: RunAgent.self)
}

/// `agent run` (the default): every setting is an environment variable and the same flag; a flag wins over the
/// variable. The operator subcommands declare their own options, so a flag after `agent model` or `agent pairing`
/// is theirs.
struct RunAgent: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Runs Switchboard's workers on the shared event log (the default).",
        discussion: """
            Every option may be given as its environment variable instead (named in each help line); a flag \
            wins over the variable. A bad or missing value stops the agent with exit code 64, naming it.
            """)

    @Option(help: "AGENT_ROLE: core, whatsapp, telegram, web or all (default all).") var role: String?
    @Option(help: "WORKER_ID: this worker's name (default <role>-<hostname>).") var workerId: String?
    @Option(help: "DATA_DIR: the LMDB environment directory, shared by every process (default ./data).")
    var dataDir: String?
    @Option(help: "EVENTLOG_DURABILITY: durable (default) or relaxed.") var eventlogDurability: String?
    @Option(help: "ENABLE_WHATSAPP: true (default) or false.") var enableWhatsapp: String?
    @Option(help: "WHATSAPP_ACCOUNT_ID: the WhatsApp account whose lease this worker holds (default default).")
    var whatsappAccountId: String?
    @Option(help: "WHATSAPP_PHONE: the account's phone number (default: the account id).") var whatsappPhone: String?
    @Option(help: "WHATSAPP_LEASE_TTL_MS: channel lease TTL (default 45000, at least 10000).")
    var whatsappLeaseTtlMs: String?
    @Option(help: "WHATSAPP_HEARTBEAT_MS: lease renewal period, below TTL/2 (default 15000).")
    var whatsappHeartbeatMs: String?
    @Option(help: "WHATSAPP_CLOUD_ACCESS_TOKEN: the Cloud API token (prefer the variable: flags show in ps).")
    var whatsappCloudAccessToken: String?
    @Option(help: "WHATSAPP_PHONE_NUMBER_ID: the Cloud API sender's phone number id.") var whatsappPhoneNumberId:
        String?
    @Option(help: "WHATSAPP_GRAPH_BASE_URL: Graph API base with version (default https://graph.facebook.com/v21.0).")
    var whatsappGraphBaseUrl: String?
    @Option(help: "TELEGRAM_ACCOUNT_ID: the Telegram bot's account id (default default).") var telegramAccountId:
        String?
    @Option(help: "TELEGRAM_BOT_TOKEN: the bot token (prefer the variable: flags show in ps).")
    var telegramBotToken: String?
    @Option(help: "TELEGRAM_API_BASE_URL: Bot API base (default https://api.telegram.org).")
    var telegramApiBaseUrl: String?
    @Option(help: "PROVIDER_TIMEOUT_MS: deadline of one provider call (default 30000).") var providerTimeoutMs: String?
    @Option(help: "CORE_CONCURRENCY: jobs the core runs at once (default 4).") var coreConcurrency: String?
    @Option(help: "JOB_VISIBILITY_MS: how long a job claim lasts without a heartbeat (default 60000).")
    var jobVisibilityMs: String?
    @Option(help: "AI_BASE_URL: an OpenAI-compatible API root with /v1 (unset: the offline assistant).")
    var aiBaseUrl: String?
    @Option(help: "AI_MODEL: the model (required with AI_BASE_URL; the key only as AI_API_KEY).") var aiModel: String?
    @Option(help: "APPROVAL_TTL_SECONDS: how long a tool call waits for the user's approval (default 300).")
    var approvalTtlSeconds: String?
    @Option(help: "HOST: address of the HTTP server: web chat, /healthz, /metrics (default 127.0.0.1).")
    var host: String?
    @Option(help: "PORT: its port (default 8080; 0 picks a free one).") var port: String?
    @Option(help: "SESSION_STORE: log (default) or local.") var sessionStore: String?
    @Option(help: "SESSION_DIR: the local session store's folder (default <DATA_DIR>/sessions).")
    var sessionDir: String?
    @Option(help: "SNAPSHOT_EVERY: events between projection snapshots (default 100000; 0 = off).")
    var snapshotEvery: String?
    @Option(help: "SNAPSHOT_KEEP: snapshots kept (default 8).") var snapshotKeep: String?
    @Option(help: "LOG_LEVEL: trace … critical (default info).") var logLevel: String?
    @Option(help: "WEB_PASSWORD: the web chat owner's secret (prefer the variable: flags show in ps).")
    var webPassword: String?
    @Option(help: "WEB_PUBLIC_URL: the address people open; https makes the session cookie Secure.")
    var webPublicUrl: String?
    @Option(
        help: "TELEGRAM_MODE: webhook, polling or off (default webhook with TELEGRAM_WEBHOOK_SECRET, else polling).")
    var telegramMode: String?
    @Option(help: "TELEGRAM_DM_POLICY, WHATSAPP_DM_POLICY: pairing (default), allowlist, open or disabled.")
    var telegramDmPolicy: String?
    @Option(help: "WHATSAPP_DM_POLICY (see --telegram-dm-policy).") var whatsappDmPolicy: String?
    @Option(help: "TELEGRAM_ALLOWED_CHAT_IDS: chat ids answered without pairing.") var telegramAllowedChatIds: String?
    @Option(help: "WHATSAPP_ALLOWED_NUMBERS: numbers answered without pairing.") var whatsappAllowedNumbers: String?

    /// The environment with every given flag laid over its variable.
    func environment() -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        let flags: [(String, String?)] = [
            ("AGENT_ROLE", role), ("WORKER_ID", workerId), ("DATA_DIR", dataDir),
            ("EVENTLOG_DURABILITY", eventlogDurability), ("ENABLE_WHATSAPP", enableWhatsapp),
            ("WHATSAPP_ACCOUNT_ID", whatsappAccountId), ("WHATSAPP_PHONE", whatsappPhone),
            ("WHATSAPP_LEASE_TTL_MS", whatsappLeaseTtlMs), ("WHATSAPP_HEARTBEAT_MS", whatsappHeartbeatMs),
            ("WHATSAPP_CLOUD_ACCESS_TOKEN", whatsappCloudAccessToken),
            ("WHATSAPP_PHONE_NUMBER_ID", whatsappPhoneNumberId), ("WHATSAPP_GRAPH_BASE_URL", whatsappGraphBaseUrl),
            ("TELEGRAM_ACCOUNT_ID", telegramAccountId), ("TELEGRAM_BOT_TOKEN", telegramBotToken),
            ("TELEGRAM_API_BASE_URL", telegramApiBaseUrl), ("PROVIDER_TIMEOUT_MS", providerTimeoutMs),
            ("CORE_CONCURRENCY", coreConcurrency), ("JOB_VISIBILITY_MS", jobVisibilityMs), ("AI_BASE_URL", aiBaseUrl),
            ("AI_MODEL", aiModel), ("APPROVAL_TTL_SECONDS", approvalTtlSeconds), ("HOST", host), ("PORT", port),
            ("SESSION_STORE", sessionStore),
            ("SESSION_DIR", sessionDir), ("SNAPSHOT_EVERY", snapshotEvery), ("SNAPSHOT_KEEP", snapshotKeep),
            ("LOG_LEVEL", logLevel), ("WEB_PASSWORD", webPassword), ("WEB_PUBLIC_URL", webPublicUrl),
            ("TELEGRAM_MODE", telegramMode), ("TELEGRAM_DM_POLICY", telegramDmPolicy),
            ("WHATSAPP_DM_POLICY", whatsappDmPolicy), ("TELEGRAM_ALLOWED_CHAT_IDS", telegramAllowedChatIds),
            ("WHATSAPP_ALLOWED_NUMBERS", whatsappAllowedNumbers),
        ]
        for case (let name, let value?) in flags { environment[name] = value }
        return environment
    }

    func run() async throws {
        let environment = environment()
        let level = environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "agent")
        let settings: AgentSettings
        do {
            settings = try AgentSettings(environment: environment)
        } catch {
            FileHandle.standardError.write(Data("agent: invalid configuration: \(error)\n".utf8))
            throw ExitCode(64)
        }
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))

        let configuration = settings.logConfiguration(
            writer: WriterIdentity(role: settings.role.rawValue, workerID: settings.workerID))
        let engine: Switchboard
        do {
            engine = try Switchboard(
                configuration, settings: try settings.engineSettings(), sessionKeyBase64: settings.sessionKeyBase64,
                logger: logger)
        } catch {
            FileHandle.standardError.write(
                Data("agent: cannot open the event log at \(settings.logDescription): \(error)\n".utf8))
            throw ExitCode(70)
        }
        let services = AgentRuntime.services(
            settings: settings, engine: engine, version: version, registry: registry, logger: logger)
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        if environment["SWITCHBOARD_EXIT_ON_STDIN_EOF"] == "1" { stopWhenStandardInputCloses() }
        logger.info(
            "[main] Agent is running (role: \(settings.role.rawValue))", metadata: ["worker.id": "\(settings.workerID)"]
        )
        try await group.run()
    }

    /// Tests spawn agents with a pipe on stdin: when the test process dies, the pipe closes and the agent stops
    /// gracefully instead of living on.
    func stopWhenStandardInputCloses() {
        Thread {
            while !FileHandle.standardInput.availableData.isEmpty {}
            kill(getpid(), SIGTERM)
        }.start()
    }
}
