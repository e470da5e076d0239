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
    /// `EVENTLOG_DURABILITY`: `durable` (default) or `relaxed`.
    public var durability: Durability
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

    /// Reads and validates the settings.
    /// - Throws: ``SettingsError`` naming the first bad variable.
    public init(environment: [String: String]) throws(SettingsError) {
        func value(_ name: String) -> String? {
            guard let raw = environment[name]?.trimmingCharacters(in: .whitespaces), !raw.isEmpty else { return nil }
            return raw
        }
        func milliseconds(_ name: String, default fallback: Int, minimum: Int) throws(SettingsError) -> Duration {
            guard let raw = value(name) else { return .milliseconds(fallback) }
            guard let ms = Int(raw), ms >= minimum else {
                throw SettingsError(variable: name, message: "expected whole milliseconds >= \(minimum), got '\(raw)'")
            }
            return .milliseconds(ms)
        }
        let roleText = value("AGENT_ROLE") ?? "all"
        guard let role = AgentRole(rawValue: roleText.lowercased()) else {
            let accepted = AgentRole.allCases.map(\.rawValue).joined(separator: ", ")
            throw SettingsError(
                variable: "AGENT_ROLE", message: "unknown role '\(roleText)'; expected one of \(accepted)")
        }
        self.role = role
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "host"
        workerID = value("WORKER_ID") ?? "\(role.rawValue)-\(host)"
        guard workerID.utf8.count <= 255 else {
            throw SettingsError(variable: "WORKER_ID", message: "longer than 255 bytes")
        }
        dataDirectory = value("DATA_DIR") ?? "./data"
        let durabilityText = value("EVENTLOG_DURABILITY") ?? "durable"
        // `unsynced` is for throwaway scratch environments, never for the log.
        guard let durability = Durability(rawValue: durabilityText.lowercased()), durability != .unsynced else {
            throw SettingsError(
                variable: "EVENTLOG_DURABILITY", message: "expected durable or relaxed, got '\(durabilityText)'")
        }
        self.durability = durability
        whatsappAccountID = value("WHATSAPP_ACCOUNT_ID") ?? "default"
        leaseTTL = try milliseconds("WHATSAPP_LEASE_TTL_MS", default: 45_000, minimum: 10_000)
        leaseHeartbeat = try milliseconds("WHATSAPP_HEARTBEAT_MS", default: 15_000, minimum: 1_000)
        guard leaseHeartbeat < leaseTTL / 2 else {
            throw SettingsError(
                variable: "WHATSAPP_HEARTBEAT_MS",
                message: "the heartbeat (\(leaseHeartbeat)) must be below half the lease TTL (\(leaseTTL)), "
                    + "or the lease is lost between heartbeats")
        }
        let storeVariable = value("SESSION_STORE") != nil ? "SESSION_STORE" : "WHATSAPP_AUTH_MODE"
        let storeText = (value("SESSION_STORE") ?? value("WHATSAPP_AUTH_MODE") ?? "log").lowercased()
        switch storeText {
        case "log", "convex": sessionBackend = .log
        case "local": sessionBackend = .local
        default:
            throw SettingsError(variable: storeVariable, message: "expected log or local, got '\(storeText)'")
        }
        sessionDirectory = value("SESSION_DIR") ?? dataDirectory + "/sessions"
        let everyText = value("SNAPSHOT_EVERY") ?? "100000"
        guard let every = UInt64(everyText.replacingOccurrences(of: "_", with: "")), every == 0 || every >= 1_000 else {
            throw SettingsError(
                variable: "SNAPSHOT_EVERY",
                message: "expected a number of events >= 1000, or 0 for no snapshots, got '\(everyText)'")
        }
        snapshotEvery = every
        let keepText = value("SNAPSHOT_KEEP") ?? "8"
        guard let keep = Int(keepText), keep >= 1 else {
            throw SettingsError(variable: "SNAPSHOT_KEEP", message: "expected a whole number >= 1, got '\(keepText)'")
        }
        snapshotKeep = keep
        sessionKeyBase64 = value("SESSION_ENCRYPTION_KEY")
        do {
            _ = try SessionSealer(keyBase64: sessionKeyBase64)
        } catch {
            // The message names the variable and the expected form, never the value.
            throw SettingsError(variable: "SESSION_ENCRYPTION_KEY", message: "must be 32 bytes, base64-encoded")
        }
    }

    /// The deciders' settings for these values.
    public func engineSettings() throws -> EngineSettings {
        EngineSettings(lease: try LeaseTiming(ttl: leaseTTL, heartbeat: leaseHeartbeat))
    }

    /// Non-secret settings, as recorded in `worker.started`.
    public var summary: [String: String] {
        [
            "role": role.rawValue, "dataDirectory": dataDirectory, "durability": durability.rawValue,
            "whatsappAccountID": whatsappAccountID,
            "leaseTTLMilliseconds": "\(leaseTTL.components.seconds * 1000)",
            "leaseHeartbeatMilliseconds": "\(leaseHeartbeat.components.seconds * 1000)",
            "sessionStore": sessionBackend.rawValue,
            "sessionEncryption": sessionKeyBase64 == nil ? "off" : "on",
            "snapshotEvery": "\(snapshotEvery)", "snapshotKeep": "\(snapshotKeep)",
        ]
    }
}
