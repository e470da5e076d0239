import EventLog
import Foundation

/// A channel session store entry was written (`session.entry.set`), e.g. a WhatsApp socket credential or key.
///
/// Written by the channel worker holding the lease on ``namespace``; a key set appended by one command commits
/// all or nothing. Accepted only when ``leaseToken`` is the current token of the lease named ``namespace``
/// (decided by the Projections module).
public struct SessionEntrySet: EventPayload {
    public static let eventType = "session.entry.set"

    /// The store namespace, equal to the lease resource that guards it, e.g. `whatsapp/default`.
    public var namespace: String
    /// The entry key, e.g. `creds` or `<category>-<id>`.
    public var key: String
    /// The value bytes; encoded in JSON as base64.
    public var value: Data
    /// Whether ``value`` is encrypted (the key lives outside the log).
    public var encrypted: Bool
    /// The fencing token of the writer's lease on ``namespace``; `nil` only for a namespace no lease guards.
    public var leaseToken: UInt64?

    /// Creates a `session.entry.set` event.
    public init(namespace: String, key: String, value: Data, encrypted: Bool, leaseToken: UInt64?) {
        self.namespace = namespace
        self.key = key
        self.value = value
        self.encrypted = encrypted
        self.leaseToken = leaseToken
    }
}

/// A channel session store entry was deleted (`session.entry.removed`).
///
/// Same writer and fencing as `session.entry.set`.
public struct SessionEntryRemoved: EventPayload {
    public static let eventType = "session.entry.removed"

    /// The store namespace, e.g. `whatsapp/default`.
    public var namespace: String
    /// The removed key.
    public var key: String
    /// The fencing token of the writer's lease on ``namespace``.
    public var leaseToken: UInt64?

    /// Creates a `session.entry.removed` event.
    public init(namespace: String, key: String, leaseToken: UInt64?) {
        self.namespace = namespace
        self.key = key
        self.leaseToken = leaseToken
    }
}
