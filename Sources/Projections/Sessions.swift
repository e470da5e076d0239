import Crypto
import EventLog
import SwitchboardEvents
import Foundation

/// Where channel session entries (credentials, cursors, tokens) live.
public enum SessionBackend: String, Sendable, Equatable {
    /// Inside the LMDB environment, as `session.entry.*` events (values sealed when a key is configured).
    case log
    /// Files in a directory on this host, one file per namespace, replaced atomically.
    case local
}

/// One change of a session batch: set a value, or remove the key (`nil`).
public typealias SessionChanges = [String: Data?]

/// Seals session values with ChaChaPoly when a 32-byte key is configured.
public struct SessionSealer: Sendable {
    let key: SymmetricKey?

    /// - Parameter keyBase64: a base64 32-byte key (`SESSION_ENCRYPTION_KEY`), or `nil` for no encryption.
    public init(keyBase64: String?) throws(ProjectionError) {
        guard let keyBase64 else {
            key = nil
            return
        }
        guard let bytes = Data(base64Encoded: keyBase64), bytes.count == 32 else {
            throw ProjectionError(.invalidArgument, "SESSION_ENCRYPTION_KEY must be 32 bytes, base64-encoded")
        }
        key = SymmetricKey(data: bytes)
    }

    /// Whether values are encrypted.
    public var encrypts: Bool { key != nil }

    func seal(_ value: Data, namespace: String, entry: String) throws -> Data {
        guard let key else { return value }
        do {
            return try ChaChaPoly.seal(value, using: key, authenticating: Data("\(namespace)\u{0}\(entry)".utf8))
                .combined
        } catch {
            throw ProjectionError(.crypto, "cannot seal a session value")
        }
    }

    func open(_ value: Data, encrypted: Bool, namespace: String, entry: String) throws -> Data {
        guard encrypted else { return value }
        guard let key else { throw ProjectionError(.crypto, "the value is encrypted and no key is configured") }
        do {
            let box = try ChaChaPoly.SealedBox(combined: value)
            return try ChaChaPoly.open(box, using: key, authenticating: Data("\(namespace)\u{0}\(entry)".utf8))
        } catch {
            throw ProjectionError(.crypto, "a session value failed to decrypt (wrong key or tampered)")
        }
    }
}

/// The outcome of a session write.
public enum SessionWriteResult: Sendable, Equatable {
    /// The whole batch was written.
    case accepted
    /// Nothing was written: the writer does not hold the namespace's lease under the presented token.
    case rejected(reason: LeaseGateRefusal)
}

/// The session decider of the `log` backend: writes a batch atomically, only for the current lease holder of
/// the namespace (the namespace is the lease resource, e.g. `whatsapp/default`). Pure: a function of the
/// namespace's lease, the command and the log time, whose events a shell appends (see ``Decision``).
public enum SessionDecider {
    /// Writes `changes` to `namespace` (in key order), or refuses (recording `command.rejected`) when `owner`
    /// does not hold the namespace's `lease` live under `leaseToken` at `now`. Values are sealed by `sealer`.
    public static func write(
        _ lease: LeaseState?, namespace: String, changes: SessionChanges, owner: Owner, leaseToken: UInt64,
        sealer: SessionSealer, now: LogTimestamp
    ) throws -> Decision<SessionWriteResult> {
        if let reason = LeaseDecider.gate(lease, owner: owner, leaseToken: leaseToken, now: now) {
            return Decision(
                .rejected(reason: reason),
                events: [
                    .commandRejected(
                        CommandRejected(
                            command: "session.write", subject: namespace, reason: reason.rawValue,
                            presentedToken: nil, currentToken: nil, presentedLeaseToken: leaseToken,
                            workerID: owner.workerID, instance: owner.instance))
                ])
        }
        var events: [SwitchboardEvent] = []
        events.reserveCapacity(changes.count)
        for key in changes.keys.sorted() {
            if let value = changes[key] ?? nil {
                events.append(
                    .sessionEntrySet(
                        SessionEntrySet(
                            namespace: namespace, key: key,
                            value: try sealer.seal(value, namespace: namespace, entry: key),
                            encrypted: sealer.encrypts, leaseToken: leaseToken)))
            } else {
                events.append(
                    .sessionEntryRemoved(SessionEntryRemoved(namespace: namespace, key: key, leaseToken: leaseToken)))
            }
        }
        return Decision(.accepted, events: events)
    }
}

// MARK: - Shell: load, decide, append inside the write transaction

extension SessionDecider {
    /// ``write(_:namespace:changes:owner:leaseToken:sealer:now:)`` against the namespace's stored lease, appended.
    public static func write(
        namespace: String, changes: SessionChanges, owner: Owner, leaseToken: UInt64, sealer: SessionSealer,
        _ context: inout WriteContext
    ) throws -> SessionWriteResult {
        let lease = try LeaseDecider.load(namespace, context)
        return try context.commit(
            write(
                lease, namespace: namespace, changes: changes, owner: owner, leaseToken: leaseToken, sealer: sealer,
                now: context.now))
    }
}

/// Files-on-disk session store (`local` backend): one JSON file per namespace, written to a temporary file,
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
                try SessionDecider.write(
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
