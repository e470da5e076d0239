import Crypto
import EventLog
import SwitchboardEvents
import Foundation

/// synced and renamed over the old one, so a batch is all or nothing even if the process dies mid-write.
public struct LocalSessionFiles: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    struct FileEntry: Codable {
        var value: Data
        var encrypted: Bool
    }

    func path(_ namespace: String) -> String {
        let safe = namespace.map {
            $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_"
                ? String($0) : "%" + String($0.asciiValue ?? 0, radix: 16)
        }
        return directory + "/" + safe.joined() + ".json"
    }

    func read(_ namespace: String) throws -> [String: FileEntry] {
        let file = path(namespace)
        guard FileManager.default.fileExists(atPath: file) else { return [:] }
        do {
            return try JSONDecoder().decode(
                [String: FileEntry].self, from: Data(contentsOf: URL(fileURLWithPath: file)))
        } catch {
            throw ProjectionError(.io, "session file \(file) is unreadable: \(error)")
        }
    }

    func write(_ namespace: String, _ entries: [String: FileEntry]) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(entries)
        let file = path(namespace)
        let temporary = file + ".tmp-\(getpid())"
        try writeDurably(data, to: temporary, mode: 0o600)
        guard rename(temporary, file) == 0 else {
            unlink(temporary)
            throw ProjectionError(.io, "cannot replace \(file): errno \(errno)")
        }
        syncDirectory(directory)
    }
}

/// A per-account key/value store for channel credentials and cursors (Telegram `getUpdates` offset, WhatsApp
/// tokens, OAuth tokens), on the backend the configuration selects.
///
/// Writes are batches, all or nothing, and only the current holder of the namespace's lease may write: the
/// `log` backend decides that inside the write transaction; the `local` backend checks the lease in a
/// snapshot just before it replaces the namespace's file (the file is local to this host, so only processes
/// here could race it).
public struct SessionStore: Sendable {
    public let backend: SessionBackend
    let engine: Switchboard
    let files: LocalSessionFiles?

    /// - Parameter directory: the folder of the `local` backend (ignored for `log`).
    public init(backend: SessionBackend, engine: Switchboard, directory: String? = nil) throws(ProjectionError) {
        self.backend = backend
        self.engine = engine
        if backend == .local {
            guard let directory else {
                throw ProjectionError(.invalidArgument, "the local session backend needs a directory (SESSION_DIR)")
            }
            files = LocalSessionFiles(directory: directory)
        } else {
            files = nil
        }
    }

    /// Writes a batch to `namespace` as `owner` (default: this process) holding its lease under `leaseToken`.
    public func write(_ changes: SessionChanges, namespace: String, leaseToken: UInt64, as owner: Owner? = nil)
        async throws -> SessionWriteResult
    {
        let owner = owner ?? engine.owner
        let sealer = engine.sealer
        switch backend {
        case .log:
            return try await engine.decide {
                try SessionShell.write(
                    namespace: namespace, changes: changes, owner: owner, leaseToken: leaseToken, sealer: sealer, &$0)
            }
        case .local:
            guard let files else {
                throw ProjectionError(.invalidArgument, "the local session backend has no directory")
            }
            let lease = try engine.lease(namespace)
            if let reason = LeaseDecider.gate(lease, owner: owner, leaseToken: leaseToken, now: try engine.logNow()) {
                return .rejected(reason: reason)
            }
            var entries = try files.read(namespace)
            for (key, value) in changes {
                if let value {
                    entries[key] = LocalSessionFiles.FileEntry(
                        value: try sealer.seal(value, namespace: namespace, entry: key), encrypted: sealer.encrypts)
                } else {
                    entries.removeValue(forKey: key)
                }
            }
            try files.write(namespace, entries)
            return .accepted
        }
    }

    /// The value of `key` in `namespace`, decrypted.
    public func value(_ key: String, namespace: String) throws -> Data? {
        try entries(namespace)[key]
    }

    /// Every entry of `namespace`, decrypted.
    public func entries(_ namespace: String) throws -> [String: Data] {
        let sealer = engine.sealer
        switch backend {
        case .log:
            let stored: [(String, SessionEntryState)] = try engine.log.withSnapshot { snapshot in
                var out: [(String, SessionEntryState)] = []
                let prefix = Key(namespace).prefix
                try snapshot.scan(engine.log.table(ProjectionTables.sessions), from: prefix) { key, value in
                    guard hasPrefix(key, prefix) else { return false }
                    out.append(
                        (
                            String(decoding: key[prefix.count...], as: UTF8.self),
                            try StateCoding.decode(SessionEntryState.self, value)
                        ))
                    return true
                }
                return out
            }
            return try Dictionary(
                uniqueKeysWithValues: stored.map { key, entry in
                    (key, try sealer.open(entry.value, encrypted: entry.encrypted, namespace: namespace, entry: key))
                })
        case .local:
            guard let files else { return [:] }
            return try files.read(namespace).mapValues { $0 }.reduce(into: [:]) { out, item in
                out[item.key] = try sealer.open(
                    item.value.value, encrypted: item.value.encrypted, namespace: namespace, entry: item.key)
            }
        }
    }

    /// Keys and value sizes of `namespace` — never the values (for operators).
    public func listing(_ namespace: String) throws -> [(key: String, bytes: Int)] {
        try entries(namespace).map { ($0.key, $0.value.count) }.sorted { $0.key < $1.key }
    }
}
