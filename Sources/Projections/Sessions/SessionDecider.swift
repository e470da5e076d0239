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
