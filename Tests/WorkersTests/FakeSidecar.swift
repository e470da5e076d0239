import Foundation
import SwitchboardJSON
import TestSupport
import Workers

// The tests' layer over TestSupport's fake sidecar: the bridge is `switchboard-test-helper sidecar-bridge`, and
// commands are read as JSON.
extension FakeSidecarServer {
    /// The agent's sidecar command line.
    var command: String {
        command(executable: SpawnedProcess.buildDirectory.appendingPathComponent("switchboard-test-helper").path)
    }
}

extension FakeSidecar {
    /// Writes `event` as the sidecar would.
    func emit(_ event: SidecarEvent) { emit(encoding: event) }

    /// The next command of the agent (its JSON).
    func command(within seconds: Double = 10) async throws -> JSONValue {
        let line = try await commandLine(within: seconds)
        guard let json = JSONValue(parsing: line) else { throw TestTimeout(what: "a JSON command, got \(line)") }
        return json
    }

    /// Reads commands until one of `type`; returns it.
    func command(_ type: String, within seconds: Double = 10) async throws -> JSONValue {
        while true {
            let command = try await command(within: seconds)
            if command["type"]?.stringValue == type { return command }
        }
    }

    /// Every command received so far, as JSON.
    var commands: [JSONValue] { received.value.withLock { $0.compactMap { JSONValue(parsing: $0) } } }

    /// Whether a command of `type` was received.
    func received(_ type: String) -> Bool { commands.contains { $0["type"] == .string(type) } }
}
