@testable import EventLog
import SwitchboardEvents
import Foundation
import Logging
import TestSupport
import Projections
import Testing
import Workers

@Suite("Agent settings")
struct AgentSettingsTests {
    @Test func defaultsMatchTheRunbook() throws {
        let settings = try AgentSettings(environment: [:])
        #expect(settings.role == .all)
        #expect(settings.dataDirectory == "./data")
        #expect(settings.durability == .durable)
        #expect(settings.whatsappAccountID == "default")
        #expect(settings.leaseTTL == .seconds(45))
        #expect(settings.leaseHeartbeat == .seconds(15))
        #expect(settings.workerID.hasPrefix("all-"))
        #expect(settings.sessionBackend == .log)
        #expect(settings.sessionDirectory == "./data/sessions")
        #expect(settings.sessionKeyBase64 == nil)
        #expect(settings.snapshotEvery == 100_000)
        #expect(settings.snapshotKeep == 8)
        #expect(try AgentSettings(environment: ["SNAPSHOT_EVERY": "0", "SNAPSHOT_KEEP": "2"]).snapshotEvery == 0)
    }

    @Test func channelAndServerSettings() throws {
        let defaults = try AgentSettings(environment: [:])
        #expect(defaults.coreConcurrency == 4)
        #expect(defaults.host == "127.0.0.1")
        #expect(defaults.port == 8080)
        #expect(defaults.enableWhatsApp)
        #expect(defaults.telegramAccountID == "default")
        #expect(defaults.telegramAPIBaseURL == "https://api.telegram.org")
        #expect(defaults.whatsappOff?.contains("WHATSAPP_CLOUD_ACCESS_TOKEN") == true)
        #expect(defaults.telegramOff?.contains("TELEGRAM_BOT_TOKEN") == true)
        let configured = try AgentSettings(environment: [
            "AGENT_ROLE": "all", "WHATSAPP_CLOUD_ACCESS_TOKEN": "t", "WHATSAPP_PHONE_NUMBER_ID": "1",
            "TELEGRAM_BOT_TOKEN": "1:x", "TELEGRAM_API_BASE_URL": "http://127.0.0.1:9/", "CORE_CONCURRENCY": "8",
            "PORT": "0", "AGENT_TEST_SHORT_LEASES": "1", "WHATSAPP_LEASE_TTL_MS": "1000",
            "WHATSAPP_HEARTBEAT_MS": "200",
        ])
        #expect(configured.whatsappOff == nil)
        #expect(configured.telegramOff == nil)
        #expect(configured.telegramAPIBaseURL == "http://127.0.0.1:9")
        #expect(configured.coreConcurrency == 8)
        #expect(configured.leaseTTL == .seconds(1))
        #expect(!configured.summary.values.contains { $0 == "t" || $0 == "1:x" })
        #expect(
            try AgentSettings(environment: ["ENABLE_WHATSAPP": "false", "AGENT_ROLE": "whatsapp"]).whatsappOff
                == "ENABLE_WHATSAPP=false")
        #expect(try AgentSettings(environment: ["AGENT_ROLE": "core"]).telegramOff == "not this role")
    }

    @Test func assistantSettings() throws {
        let defaults = try AgentSettings(environment: [:])
        #expect(defaults.provider == nil)
        #expect(defaults.todoistToken == nil)
        #expect(defaults.todoistBaseURL == "https://api.todoist.com/api/v1")
        #expect(defaults.approvalTTL == .seconds(300))
        #expect(defaults.jobVisibility == .seconds(60))
        #expect(try defaults.engineSettings().jobs.visibility == .seconds(60))
        #expect(defaults.summary["model"] == "local")
        #expect(defaults.aiProvider == .local)
        #expect(defaults.aiTools == .auto)
        let configured = try AgentSettings(environment: [
            "AI_BASE_URL": "http://127.0.0.1:11434/v1/", "AI_MODEL": "qwen", "AI_LITE_MODEL": "small",
            "AI_GATEWAY_API_KEY": "sk-secret", "AI_FALLBACK_MODEL": "a, b", "TODOIST_API_TOKEN": "todo-secret",
            "TODOIST_BASE_URL": "http://127.0.0.1:9/api/v1", "APPROVAL_TTL_SECONDS": "5", "JOB_VISIBILITY_MS": "2000",
        ])
        let provider = try #require(configured.provider)
        #expect(provider.baseURL == "http://127.0.0.1:11434/v1")
        #expect(provider.model == "qwen")
        #expect(provider.liteModel == "small")
        #expect(provider.apiKey?.reveal() == "sk-secret")
        #expect(provider.fallbackModels == ["a", "b"])
        #expect(configured.todoistToken?.reveal() == "todo-secret")
        #expect(configured.todoistBaseURL == "http://127.0.0.1:9/api/v1")
        #expect(configured.approvalTTL == .seconds(5))
        #expect(try configured.engineSettings().jobs.visibility == .seconds(2))
        #expect(configured.summary["model"] == "qwen")
        #expect(configured.aiProvider == .openai)
        // Secrets are never in the recorded summary.
        #expect(!configured.summary.values.contains { $0.contains("secret") })
        #expect(!"\(configured)".contains("sk-secret") && !"\(configured)".contains("todo-secret"))
    }

    @Test func theModelChoiceIsExplicitAndConflictsAreRefused() throws {
        #expect(try AgentSettings(environment: ["AI_PROVIDER": "offline"]).aiProvider == .offline)
        let bad: [[String: String]] = [
            ["AI_PROVIDER": "cloud"],
            ["AI_PROVIDER": "openai"],
            ["AI_PROVIDER": "local", "AI_BASE_URL": "http://127.0.0.1:1/v1", "AI_MODEL": "m"],
            ["AI_TOOLS": "sometimes"],
            ["AI_MAX_TOKENS": "3"],
            ["AI_TEMPERATURE": "9"],
            ["LLM_GGUF": "/nonexistent/model.gguf"],
        ]
        for environment in bad {
            #expect(throws: SettingsError.self, "\(environment)") { try AgentSettings(environment: environment) }
        }
        // Without an installed local model, `local` falls back to the offline assistant and says why.
        let directory = TemporaryDirectory()
        let settings = try AgentSettings(environment: ["DATA_DIR": directory.path])
        let choice = ModelChoice.resolve(settings)
        #expect(choice.provider == nil)
        #expect(choice.local == nil)
        #expect(choice.description.contains("agent model install"))
        // An installed one is served on a loopback port, with tools not offered under `auto` and short replies.
        let model = try testModelSettings()
        let local = try AgentSettings(environment: [
            "DATA_DIR": directory.path, "LLM_HOME": model.home, "LLM_LAUNCHER": try #require(model.launcher),
        ])
        let served = ModelChoice.resolve(local, port: { 4321 })
        #expect(served.provider?.baseURL == "http://127.0.0.1:4321/v1")
        #expect(served.provider?.model == LocalModel.bundledModelName)
        #expect(served.local?.port == 4321)
        #expect(!served.offerTools)
        #expect(served.turn.maxTokens == 512)
        #expect(served.turn.temperature == 0.3)
        #expect(served.description.hasPrefix("local SmolLM2-135M-Instruct"))
        let remote = ModelChoice.resolve(
            try AgentSettings(environment: ["AI_BASE_URL": "http://127.0.0.1:1/v1", "AI_MODEL": "m"]))
        #expect(remote.offerTools)
        #expect(remote.turn.maxTokens == 2_048)
    }

    @Test func theOriginalAuthModeNamesStillWork() throws {
        #expect(try AgentSettings(environment: ["WHATSAPP_AUTH_MODE": "local"]).sessionBackend == .local)
        #expect(try AgentSettings(environment: ["WHATSAPP_AUTH_MODE": "convex"]).sessionBackend == .log)
        #expect(
            try AgentSettings(environment: ["SESSION_STORE": "local", "WHATSAPP_AUTH_MODE": "convex"]).sessionBackend
                == .local)
    }

    @Test func aBadSessionKeyIsNamedButNeverEchoed() {
        let secret = "c2VjcmV0LXZhbHVlLXRoYXQtaXMtbm90LTMyLWJ5dGVz"
        #expect {
            try AgentSettings(environment: ["SESSION_ENCRYPTION_KEY": secret])
        } throws: { error in
            "\(error)".contains("SESSION_ENCRYPTION_KEY") && !"\(error)".contains(secret)
        }
    }

    @Test func thePostgreSQLBackendIsChosenAndItsSettingsChecked() throws {
        let url = "postgres://switchboard:pa%24%24word@db.internal:6432/events?sslmode=require"
        let settings = try AgentSettings(environment: [
            "EVENTLOG_BACKEND": "postgres", "DATABASE_URL": url, "EVENTLOG_SCHEMA": "prod_log",
        ])
        guard case .postgres(let parsed, let schema) = settings.eventLog else {
            Issue.record("postgres expected, got \(settings.eventLog)")
            return
        }
        #expect(parsed.password == "pa$$word" && parsed.user == "switchboard" && schema == "prod_log")
        #expect(settings.snapshotEvery == 0, "off by default on PostgreSQL: each process would write its own")
        #expect(!settings.summary.values.contains { $0.contains("pa$$word") || $0.contains("pa%24%24word") })
        #expect(try AgentSettings(environment: [:]).eventLog == .lmdb)
        let refused: [([String: String], String)] = [
            (["EVENTLOG_BACKEND": "postgres"], "DATABASE_URL"),
            (["EVENTLOG_BACKEND": "postgres", "DATABASE_URL": "mysql://x:secretpw@h/db"], "DATABASE_URL"),
            (["EVENTLOG_BACKEND": "postgres", "DATABASE_URL": url, "EVENTLOG_SCHEMA": "Bad-Name"], "EVENTLOG_SCHEMA"),
            (
                ["EVENTLOG_BACKEND": "postgres", "DATABASE_URL": url, "EVENTLOG_DURABILITY": "relaxed"],
                "EVENTLOG_DURABILITY"
            ),
            (["EVENTLOG_BACKEND": "sqlite"], "EVENTLOG_BACKEND"),
        ]
        for (environment, variable) in refused {
            #expect {
                try AgentSettings(environment: environment)
            } throws: { error in
                "\(error)".contains(variable) && !"\(error)".contains("secretpw") && !"\(error)".contains("pa$$word")
            }
        }
    }

    @Test func operatorValuesAreTaken() throws {
        let settings = try AgentSettings(environment: [
            "AGENT_ROLE": "whatsapp", "WORKER_ID": "wa-1", "DATA_DIR": "/srv/log", "EVENTLOG_DURABILITY": "relaxed",
            "WHATSAPP_ACCOUNT_ID": "cloud-api", "WHATSAPP_LEASE_TTL_MS": "60000", "WHATSAPP_HEARTBEAT_MS": "20000",
        ])
        #expect(settings.role == .whatsapp)
        #expect(settings.workerID == "wa-1")
        #expect(settings.dataDirectory == "/srv/log")
        #expect(settings.durability == .relaxed)
        #expect(settings.whatsappAccountID == "cloud-api")
        #expect(settings.leaseTTL == .seconds(60))
        #expect(settings.leaseHeartbeat == .seconds(20))
    }

    @Test(arguments: [
        (["AGENT_ROLE": "sender"], "AGENT_ROLE"),
        (["EVENTLOG_DURABILITY": "fast"], "EVENTLOG_DURABILITY"),
        (["EVENTLOG_DURABILITY": "unsynced"], "EVENTLOG_DURABILITY"),
        (["WHATSAPP_LEASE_TTL_MS": "45s"], "WHATSAPP_LEASE_TTL_MS"),
        (["WHATSAPP_LEASE_TTL_MS": "5000"], "WHATSAPP_LEASE_TTL_MS"),
        (["WHATSAPP_HEARTBEAT_MS": "-1"], "WHATSAPP_HEARTBEAT_MS"),
        (["WHATSAPP_HEARTBEAT_MS": "22500"], "WHATSAPP_HEARTBEAT_MS"),
        (["WHATSAPP_LEASE_TTL_MS": "20000", "WHATSAPP_HEARTBEAT_MS": "15000"], "WHATSAPP_HEARTBEAT_MS"),
        (["WORKER_ID": String(repeating: "w", count: 256)], "WORKER_ID"),
        (["SESSION_STORE": "convexx"], "SESSION_STORE"),
        (["WHATSAPP_AUTH_MODE": "cloud"], "WHATSAPP_AUTH_MODE"),
        (["SESSION_ENCRYPTION_KEY": "c2hvcnQ="], "SESSION_ENCRYPTION_KEY"),
        (["SNAPSHOT_EVERY": "10"], "SNAPSHOT_EVERY"),
        (["SNAPSHOT_EVERY": "often"], "SNAPSHOT_EVERY"),
        (["SNAPSHOT_KEEP": "0"], "SNAPSHOT_KEEP"),
        (["ENABLE_WHATSAPP": "maybe"], "ENABLE_WHATSAPP"),
        (["CORE_CONCURRENCY": "0"], "CORE_CONCURRENCY"),
        (["PORT": "70000"], "PORT"),
        (["TELEGRAM_API_BASE_URL": "ftp://x"], "TELEGRAM_API_BASE_URL"),
        (["WHATSAPP_GRAPH_BASE_URL": "graph"], "WHATSAPP_GRAPH_BASE_URL"),
        (["PROVIDER_TIMEOUT_MS": "10"], "PROVIDER_TIMEOUT_MS"),
        (["DELIVERY_VISIBILITY_MS": "500"], "DELIVERY_VISIBILITY_MS"),
        (["WHATSAPP_LEASE_TTL_MS": "1000"], "WHATSAPP_LEASE_TTL_MS"),
        (["AGENT_TEST_SHORT_LEASES": "1", "WHATSAPP_LEASE_TTL_MS": "100"], "WHATSAPP_LEASE_TTL_MS"),
        (["JOB_VISIBILITY_MS": "500"], "JOB_VISIBILITY_MS"),
        (["AI_BASE_URL": "localhost:8080"], "AI_BASE_URL"),
        (["AI_BASE_URL": "http://127.0.0.1:8080/v1"], "AI_MODEL"),
        (["AI_MODEL": "gpt"], "AI_BASE_URL"),
        (["AI_BASE_URL": "http://127.0.0.1:8080/v1", "AI_MODEL": "m", "AI_MAX_RETRIES": "99"], "AI_MAX_RETRIES"),
        (
            ["AI_BASE_URL": "http://127.0.0.1:8080/v1", "AI_MODEL": "m", "AI_CONTEXT_WINDOW": "big"],
            "AI_CONTEXT_WINDOW"
        ),
        (["TODOIST_API_BASE_URL": "todoist"], "TODOIST_API_BASE_URL"),
        (["TODOIST_BASE_URL": "ftp://todoist"], "TODOIST_BASE_URL"),
        (["APPROVAL_TTL_SECONDS": "0"], "APPROVAL_TTL_SECONDS"),
        (["APPROVAL_TTL_SECONDS": "5m"], "APPROVAL_TTL_SECONDS"),
    ])
    func badValuesNameTheVariable(environment: [String: String], variable: String) {
        #expect {
            try AgentSettings(environment: environment)
        } throws: { error in
            (error as? SettingsError)?.variable == variable
        }
    }
}

@Suite("Agent and replay processes", .timeLimit(.minutes(2)))
struct AgentProcessTests {
    static func quietLog(_ dir: String) throws -> EventLog {
        try EventLog(
            EventLogConfiguration(directory: dir, writer: WriterIdentity(role: "test", workerID: "checker")),
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    @Test func theAgentRecordsItsLifeInTheLogAndStopsGracefullyOnSIGTERM() async throws {
        let dir = TemporaryDirectory()
        let agent = try SpawnedProcess(
            "agent", [],
            environment: ["DATA_DIR": dir.sub("data"), "WORKER_ID": "wa-1", "AGENT_ROLE": "whatsapp", "PORT": "0"],
            readStandardError: true)
        let startup = await agent.lines(until: "worker.started")
        #expect(startup.contains { $0.contains("[main] Agent is running (role: whatsapp)") }, "\(startup)")
        // No credentials: the channel says so and the process stays up without contending or sending.
        #expect(
            startup.contains {
                $0.contains(
                    "[whatsapp] Channel off (no credentials: WHATSAPP_CLOUD_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID not set)"
                )
            }, "\(startup)")
        agent.signal(SIGTERM)
        let (status, rest) = await agent.finish()
        #expect(status == 0, "\(rest)")
        let log = try Self.quietLog(dir.sub("data"))
        let records = try await log.closeAfter { try log.records(from: 1) }
        try #require(records.map(\.type) == ["worker.started", "worker.stopped"])
        let started = try records[0].decode(WorkerStarted.self)
        let stopped = try records[1].decode(WorkerStopped.self)
        #expect(started.workerID == "wa-1")
        #expect(started.role == "whatsapp")
        #expect(started.pid == agent.process.processIdentifier)
        #expect(stopped.reason == "graceful")
        #expect(stopped.instance == started.instance)
        #expect(records[0].writer.instanceID == records[1].writer.instanceID)
    }

    @Test func theAgentSnapshotsTheProjectionsAndReplayRebuildsFromTheSnapshot() async throws {
        let dir = TemporaryDirectory()
        let data = dir.sub("data")
        let agent = try SpawnedProcess(
            "agent", [],
            environment: [
                "DATA_DIR": data, "WORKER_ID": "core-1", "AGENT_ROLE": "web", "SNAPSHOT_EVERY": "1000", "PORT": "0",
            ],
            readStandardError: true)
        _ = await agent.lines(until: "worker.started")
        // Another process writes 1 000 events; the agent is woken by their commits and takes a snapshot.
        let engine = try Switchboard(
            EventLogConfiguration(directory: data, writer: WriterIdentity(role: "test", workerID: "writer")),
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<1_000 {
                group.addTask {
                    _ = try await engine.enqueueJob(NewJob(idempotencyKey: "k\(i)", conversationID: "c\(i % 7)"))
                }
            }
            try await group.waitForAll()
        }
        let taken = await agent.lines(until: "snapshot.taken")
        #expect(taken.last?.contains("snapshot.seq=") == true, "\(taken)")
        _ = try await engine.enqueueJob(NewJob(idempotencyKey: "after", conversationID: "c"))
        await engine.close()
        agent.signal(SIGTERM)
        #expect(await agent.finish().status == 0)

        let listed = try await SpawnedProcess.run("replay", ["snapshots", "list", "--json", "--data-dir", data])
        let snapshot = try #require(
            listed.lines.first.flatMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [[String: Any]] }?
                .first)
        let seq = try #require((snapshot["seq"] as? NSNumber)?.uint64Value)
        #expect(seq >= 1_000)
        let state = try await SpawnedProcess.run(
            "replay", ["state", "--json", "--at", "\(seq + 1)", "--data-dir", data])
        let object = try #require(
            state.lines.first.flatMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] })
        #expect((object["rebuiltFrom"] as? NSNumber)?.uint64Value == seq)
        let verified = try await SpawnedProcess.run("replay", ["verify", "--data-dir", data])
        #expect(verified.status == 0)
        #expect(verified.lines.last?.contains("1 snapshot(s) checked") == true, "\(verified.lines)")

        // A snapshot changed behind the projector's back fails verify, which names it.
        var configuration = EventLogConfiguration(
            directory: try #require(snapshot["path"] as? String), writer: WriterIdentity(role: "test", workerID: "x"))
        configuration.projector = SwitchboardProjector()
        let copy = try EventLog(configuration, logger: Logger(label: "t", factory: { _ in SwiftLogNoOpLogHandler() }))
        let dead = copy.table(ProjectionTable.jobDead)
        _ = try await copy.transact { context in
            try context.projectionWriter.put(dead, Array("forged".utf8), [])
        }
        await copy.close()
        let tampered = try await SpawnedProcess.run("replay", ["verify", "--data-dir", data])
        #expect(tampered.status == 1)
        #expect(
            tampered.lines.contains { $0.contains("snapshot \(seq): digest") && $0.contains("differs") },
            "\(tampered.lines)")
    }

    @Test func badConfigurationExitsWithAClearMessageAndWritesNothing() async throws {
        let dir = TemporaryDirectory()
        let result = try await SpawnedProcess(
            "agent", [], environment: ["DATA_DIR": dir.sub("data"), "AGENT_ROLE": "nonsense"],
            readStandardError: true
        ).finish()
        #expect(result.status == 64)
        #expect(result.lines.contains { $0.contains("AGENT_ROLE") && $0.contains("nonsense") })
        #expect(!FileManager.default.fileExists(atPath: dir.sub("data")))
    }

    @Test func replayVerifyPassesACleanLogAndFailsACorruptedOne() async throws {
        let dir = TemporaryDirectory()
        var configuration = EventLogConfiguration(
            directory: dir.path, writer: WriterIdentity(role: "test", workerID: "w"))
        configuration.projector = SwitchboardProjector()  // as the agent writes it
        let log = try EventLog(configuration, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        for i in 0..<40 {
            try await log.append([PendingEvent(type: "test.event", payload: Array("{\"n\":\"value-\(i)-zz\"}".utf8))])
        }
        await log.close()
        let clean = try await SpawnedProcess.run("replay", ["verify", "--data-dir", dir.path])
        #expect(clean.status == 0)
        #expect(clean.lines.last?.hasPrefix("[OK] 40 records") == true, "\(clean.lines)")

        #expect(try corruptEveryOccurrence(of: "value-17-zz", in: dir.sub("data.mdb")) >= 1)
        let corrupt = try await SpawnedProcess.run("replay", ["verify", "--data-dir", dir.path])
        #expect(corrupt.status == 1)
        #expect(corrupt.lines.contains { $0.hasPrefix("[FAIL] seq 18: corruptRecord") }, "\(corrupt.lines)")
    }

    @Test func replayRefusesADirectoryWithoutALog() async throws {
        let dir = TemporaryDirectory()
        let result = try await SpawnedProcess.run("replay", ["verify", "--data-dir", dir.sub("missing")])
        #expect(result.status != 0)
        #expect(!FileManager.default.fileExists(atPath: dir.sub("missing")))
    }
}
