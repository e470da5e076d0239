import Foundation

/// The linked device's Node sidecar as shipped: its files are compiled into the agent (`.embedInCode`) and written
/// to `<DATA_DIR>/sidecars/whatsapp-web/` on first use, where `npm` installs the pinned `baileys` once.
public enum WhatsAppSidecar {
    /// The sidecar's files (name, bytes).
    static let files: [(name: String, bytes: [UInt8])] = [
        ("package.json", PackageResources.package_json), ("index.mjs", PackageResources.index_mjs),
        ("sidecar.mjs", PackageResources.sidecar_mjs), ("auth-store.mjs", PackageResources.auth_store_mjs),
        ("commands.mjs", PackageResources.commands_mjs), ("connection.mjs", PackageResources.connection_mjs),
        ("lines.mjs", PackageResources.lines_mjs), ("logging.mjs", PackageResources.logging_mjs),
        ("messages.mjs", PackageResources.messages_mjs),
    ]

    /// Where the sidecar is installed under `dataDirectory`.
    public static func directory(dataDirectory: String) -> String { dataDirectory + "/sidecars/whatsapp-web" }

    /// The command that runs the installed sidecar.
    public static func command(dataDirectory: String) -> [String] {
        ["node", directory(dataDirectory: dataDirectory) + "/index.mjs"]
    }

    /// Whether `directory` holds this build's files and the installed package.
    public static func isInstalled(_ directory: String) -> Bool {
        guard FileManager.default.fileExists(atPath: directory + "/node_modules/baileys/package.json") else {
            return false
        }
        return files.allSatisfy { file in
            FileManager.default.contents(atPath: directory + "/" + file.name).map { [UInt8]($0) } == file.bytes
        }
    }

    /// Writes this build's files to `directory` and installs the pinned package when it is missing, reporting one
    /// line per step to `progress`. `environment` adds to the process's environment for `node` and `npm` (an npm
    /// setting such as `npm_config_registry`) without changing this process's own.
    /// - Throws: ``SidecarError`` with one line saying what is missing (Node 20, the registry) and what to do.
    public static func install(
        _ directory: String, environment: [String: String] = [:], progress: (String) -> Void
    ) throws(SidecarError) {
        try writeFiles(directory)
        let version = try run(
            ["node", "--version"], in: directory, environment: environment, step: "node --version", timeout: 30)
        let major = Int(
            version.trimmingCharacters(in: .whitespacesAndNewlines).dropFirst().split(separator: ".").first ?? "")
        guard let major, major >= 20 else {
            throw SidecarError(
                message:
                    "the WhatsApp linked device needs Node 20 or later (found \(version.isEmpty ? "none" : version)): "
                    + "install it (apt-get install nodejs) and restart")
        }
        if FileManager.default.fileExists(atPath: directory + "/node_modules/baileys/package.json") { return }
        progress("[whatsapp] Installing the linked-device sidecar (baileys, about 30 MB) into \(directory)")
        let lock = FileManager.default.fileExists(atPath: directory + "/package-lock.json")
        _ = try run(
            ["npm", lock ? "ci" : "install", "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error"],
            in: directory, environment: environment, step: "npm install", timeout: 600)
    }

    /// Writes this build's files to `directory` (those that differ).
    public static func writeFiles(_ directory: String) throws(SidecarError) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            for file in files {
                let path = directory + "/" + file.name
                if FileManager.default.contents(atPath: path).map({ [UInt8]($0) }) != file.bytes {
                    try Data(file.bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
                }
            }
        } catch {
            throw SidecarError(message: "cannot write the WhatsApp sidecar to \(directory): \(error)")
        }
    }

    /// Runs `arguments` in `directory`; returns its output, or throws with its last line.
    private static func run(
        _ arguments: [String], in directory: String, environment: [String: String] = [:], step: String, timeout: Int
    ) throws(SidecarError) -> String {
        let process = Process()
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["timeout", "\(timeout)"] + arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw SidecarError(message: "\(step): cannot start \(arguments[0]): \(error)")
        }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            if process.terminationStatus == 127 {
                throw SidecarError(
                    message: "\(arguments[0]) is not installed: the WhatsApp linked device needs Node 20 or later "
                        + "(apt-get install nodejs npm)")
            }
            let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter {
                !$0.isEmpty
            }
            let network = ["ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "ENETUNREACH"]
            // The line that names the network failure, not npm's pointer to its log file.
            if let cause = lines.last(where: { line in network.contains { line.contains($0) } }) {
                throw SidecarError(
                    message: "\(step): the npm registry cannot be reached (\(cause.prefix(200))): the linked device "
                        + "needs it once, to install baileys")
            }
            let last = lines.last(where: { !$0.contains("A complete log of this run") }) ?? "no output"
            throw SidecarError(message: "\(step) exited with status \(process.terminationStatus): \(last.prefix(200))")
        }
        return text
    }
}
