import EventLog
// MARK: - Contacts and rejected commands

/// A contact's access changed (`contact.updated`): allowlisted, blocked, or waiting for pairing.
///
/// Written by operator commands and by the inbound decider when an unknown sender first writes. Pairing codes
/// are never stored in clear: ``pairingCodeHash`` is the SHA-256 of the code, hex.
public struct ContactUpdated: EventPayload {
    public static let eventType = "contact.updated"

    /// `whatsapp`, `telegram` or `web`.
    public var channel: String
    /// The channel account.
    public var accountID: String
    /// The sender identity (phone, chat id, web user).
    public var contactID: String
    /// `allowed`, `blocked` or `pending` (unknown, waiting for pairing or approval).
    public var status: String
    /// SHA-256 (hex) of the pairing code the contact must send, while pending.
    public var pairingCodeHash: String?
    /// Who made the change: `operator:<name>`, `pairing`, or `inbound` (first contact).
    public var changedBy: String

    /// Creates a `contact.updated` event.
    public init(
        channel: String, accountID: String, contactID: String, status: String, pairingCodeHash: String? = nil,
        changedBy: String
    ) {
        self.channel = channel
        self.accountID = accountID
        self.contactID = contactID
        self.status = status
        self.pairingCodeHash = pairingCodeHash
        self.changedBy = changedBy
    }
}

/// A command that depends on a token or on state was refused by its decider (`command.rejected`).
///
/// Recorded so an audit can show who tried what with which token: a heartbeat, completion or send attempt
/// under a stale token leaves this trace instead of silently doing nothing.
public struct CommandRejected: EventPayload {
    public static let eventType = "command.rejected"

    /// The command, e.g. `job.complete`, `delivery.attempt`, `session.write`.
    public var command: String
    /// What it was about: a job id, delivery id, lease resource or session namespace.
    public var subject: String
    /// Why: `stale_token`, `stale_lease`, `not_owner`, `expired`, `wrong_state`, `unknown`.
    public var reason: String
    /// The token the command presented.
    public var presentedToken: UInt64?
    /// The token that is current, when there is one.
    public var currentToken: UInt64?
    /// The lease token the command presented, for lease-gated commands.
    public var presentedLeaseToken: UInt64?
    /// The requesting worker id.
    public var workerID: String
    /// The requesting process instance.
    public var instance: String

    /// Creates a `command.rejected` event.
    public init(
        command: String, subject: String, reason: String, presentedToken: UInt64?, currentToken: UInt64?,
        presentedLeaseToken: UInt64? = nil, workerID: String, instance: String
    ) {
        self.command = command
        self.subject = subject
        self.reason = reason
        self.presentedToken = presentedToken
        self.currentToken = currentToken
        self.presentedLeaseToken = presentedLeaseToken
        self.workerID = workerID
        self.instance = instance
    }
}
