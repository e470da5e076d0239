import ArgumentParser
import EventLog
import Foundation
import Logging
import Projections
import Workers

/// Options every operator subcommand shares: where the log is.
struct LogLocation: ParsableArguments {
    @Option(help: "DATA_DIR: the LMDB environment directory (default ./data).") var dataDir: String?

    /// The environment with the flags laid over it.
    func environment() -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        if let dataDir { environment["DATA_DIR"] = dataDir }
        return environment
    }

    /// The agent settings of this environment (exit 64 when invalid).
    func settings() throws -> AgentSettings {
        do {
            return try AgentSettings(environment: environment())
        } catch {
            FileHandle.standardError.write(Data("agent: invalid configuration: \(error)\n".utf8))
            throw ExitCode(64)
        }
    }

    /// Opens the shared log as an operator (role `operator`; exit 70 when it cannot be opened). A directory
    /// without a log is refused unless `create` (a first setup).
    func open(_ settings: AgentSettings, create: Bool = false) throws -> Switchboard {
        guard
            create || settings.eventLog != .lmdb
                || FileManager.default.fileExists(atPath: settings.dataDirectory + "/data.mdb")
        else {
            FileHandle.standardError.write(
                Data("agent: no event log at \(settings.dataDirectory) (set DATA_DIR or --data-dir)\n".utf8))
            throw ExitCode(70)
        }
        let name = ProcessInfo.processInfo.environment["USER"] ?? "operator"
        var configuration = settings.logConfiguration(
            writer: WriterIdentity(role: "operator", workerID: "cli-\(name)"))
        configuration.createIfMissing = create
        do {
            return try Switchboard(
                configuration, settings: try settings.engineSettings(), sessionKeyBase64: settings.sessionKeyBase64,
                logger: Logger(label: "agent-cli", factory: { _ in SwiftLogNoOpLogHandler() }))
        } catch {
            FileHandle.standardError.write(
                Data("agent: cannot open the event log at \(settings.logDescription): \(error)\n".utf8))
            throw ExitCode(70)
        }
    }
}

extension LogLocation {
    /// Runs `body` with the log open, and closes it afterwards whatever happens.
    func withEngine<T>(
        _ settings: AgentSettings, create: Bool = false, _ body: (Switchboard) async throws -> T
    ) async throws -> T {
        let engine = try open(settings, create: create)
        do {
            let result = try await body(engine)
            await engine.close()
            return result
        } catch {
            await engine.close()
            throw error
        }
    }
}

/// Prints `value` as sorted, indented JSON.
func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// Writes `message` to standard error.
func complain(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
