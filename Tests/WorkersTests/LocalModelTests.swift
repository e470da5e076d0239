import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import TestSupport
import Testing
import Workers

/// The package's root folder (the tests run from a checkout).
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// The local model installed for the tests by `scripts/ensure-llm.sh` (run by `scripts/test.sh`, the README's test
/// command): `SWITCHBOARD_TEST_LLM_HOME`, or `.build/llm`. A test that needs it fails, saying how to install it,
/// when it is missing.
func testModelSettings() throws -> LocalModelSettings {
    let home = ProcessInfo.processInfo.environment["SWITCHBOARD_TEST_LLM_HOME"] ?? packageRoot + "/.build/llm"
    var settings = LocalModelSettings(home: home, launcher: packageRoot + "/scripts/llm-server.py")
    // scripts/test.sh sets LLM_THREADS=1, so a core stays free for the timing tests running beside the model.
    settings.threads = Int(ProcessInfo.processInfo.environment["LLM_THREADS"] ?? "") ?? 0
    let status = LocalModel.status(settings)
    guard status.ready else {
        throw TestTimeout(
            what: "the local model at \(home) (\(status.summary)); install it with scripts/ensure-llm.sh \(home)")
    }
    return settings
}

@Suite("Local model")
struct LocalModelTests {
    @Test func statusSaysWhatIsMissingAndHowToInstallIt() throws {
        let directory = TemporaryDirectory()
        let empty = LocalModelSettings(home: directory.sub("llm"), launcher: packageRoot + "/scripts/llm-server.py")
        let status = LocalModel.status(empty)
        #expect(!status.ready)
        #expect(!status.serverInstalled)
        #expect(status.modelSource == "none")
        #expect(status.summary.contains("agent model install"))
        // A GGUF given by path is used even without the bundled package; the server is still missing.
        let gguf = directory.sub("model.gguf")
        #expect(FileManager.default.createFile(atPath: gguf, contents: Data("GGUF".utf8)))
        var custom = empty
        custom.gguf = gguf
        #expect(LocalModel.status(custom).model == gguf)
        #expect(LocalModel.status(custom).modelSource == "LLM_GGUF")
        #expect(!LocalModel.status(custom).ready)
    }

    /// A wait for a state that never comes ends when its task is cancelled (a test's time limit), with the
    /// state as it is, instead of hanging the run.
    @Test func aCancelledHealthWaitReturnsTheCurrentState() async {
        let health = ModelHealth(model: "m", baseURL: "http://127.0.0.1:1/v1")
        let waiting = Task { await health.wait { $0.state == .healthy } }
        waiting.cancel()
        #expect(await waiting.value.state == .starting)
        // Cancelled before it waits, too.
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await health.wait { $0.restarts == 7 }
        }
        #expect(await early.value.restarts == 0)
        // A wait that is satisfied returns at once.
        #expect(await health.wait { $0.state == .starting }.model == "m")
    }

    @Test func badSettingsNameTheVariable() {
        #expect(throws: SettingsError.self) {
            try LocalModelSettings.fromEnvironment(["LLM_GGUF": "/nonexistent/model.gguf"], dataDirectory: "/tmp")
        }
        #expect(throws: SettingsError.self) {
            try LocalModelSettings.fromEnvironment(["LLM_CONTEXT": "12"], dataDirectory: "/tmp")
        }
        let defaults = try? LocalModelSettings.fromEnvironment([:], dataDirectory: "/srv/data")
        #expect(defaults?.home == "/srv/data/llm")
    }

    @Test func theAgentsModelStatusCommandReportsAMissingInstall() async throws {
        let directory = TemporaryDirectory()
        let (status, lines) = try await SpawnedProcess.run(
            "agent", ["model", "status", "--llm-home", directory.sub("llm")])
        #expect(status == 1)
        #expect(lines.joined(separator: "\n").contains("not installed"))
        // A flag after the subcommand is the subcommand's (the workers' options live under `agent run`).
        let (_, byDataDir) = try await SpawnedProcess.run("agent", ["model", "status", "--data-dir", directory.path])
        #expect(byDataDir.joined(separator: "\n").contains(directory.path + "/llm/venv"))
    }

    /// The supervisor starts the real llama.cpp server with the bundled model, which answers a greedy question;
    /// killed, it is restarted; a graceful shutdown stops it.
    @Test(.timeLimit(.minutes(8))) func theSupervisorServesRestartsAndStopsTheRealModel() async throws {
        let settings = try testModelSettings()
        let model = try #require(LocalModel.model(settings))
        let http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
        let logger = Logger(label: "test.model")
        let supervisor = ModelSupervisor(
            settings: settings, modelPath: model.path, modelName: LocalModel.bundledModelName,
            launcher: try #require(settings.launcher), port: try ModelSupervisor.freePort(), httpClient: http,
            logger: logger)
        let group = ServiceGroup(services: [supervisor], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let ready = await supervisor.health.wait { $0.state == .healthy }
            let firstPID = try #require(ready.pid)

            var request = HTTPClientRequest(url: supervisor.baseURL + "/chat/completions")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(
                ByteBuffer(
                    string: #"""
                        {"model":"SmolLM2-135M-Instruct","temperature":0,"max_tokens":32,
                         "messages":[{"role":"system","content":"You are a helpful assistant."},
                                     {"role":"user","content":"What is the capital of France?"}]}
                        """#))
            let response = try await http.execute(request, timeout: .seconds(120))
            #expect(response.status == .ok)
            let body = String(buffer: try await response.body.collect(upTo: 1 << 20))
            #expect(body.contains("Paris"), "\(body)")

            kill(firstPID, SIGKILL)
            // At least one restart: a restarted server that fails its first health check is restarted again.
            let restarted = await supervisor.health.wait { $0.state == .healthy && $0.restarts >= 1 }
            #expect(restarted.pid != firstPID)
            let secondPID = try #require(restarted.pid)

            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            #expect(supervisor.health.snapshot.state == .stopped)
            #expect(kill(secondPID, 0) == -1, "the model server is gone after the agent stopped")
        }
        try await http.shutdown()
    }
}
