import EventLog
// MARK: - Workers

/// A worker process started (`worker.started`).
///
/// Written by the process itself once its log is open. Together with `worker.stopped` it lets operators see
/// which instances ran, with which version and settings.
public struct WorkerStarted: EventPayload {
    public static let eventType = "worker.started"

    /// The process role: `core`, `whatsapp`, `telegram`, `web`, `all`...
    public var role: String
    /// The operator-chosen worker id (`WORKER_ID`).
    public var workerID: String
    /// The per-process instance id (the UUID of its `WriterIdentity.instanceID`).
    public var instance: String
    /// The operating-system process id.
    public var pid: Int32
    /// The build version of the binary.
    public var version: String
    /// The effective non-secret settings (timeouts, account ids, feature flags); never tokens or keys.
    public var configuration: [String: String]

    /// Creates a `worker.started` event.
    public init(
        role: String, workerID: String, instance: String, pid: Int32, version: String,
        configuration: [String: String] = [:]
    ) {
        self.role = role
        self.workerID = workerID
        self.instance = instance
        self.pid = pid
        self.version = version
        self.configuration = configuration
    }
}

/// A worker process is stopping (`worker.stopped`).
///
/// Written by the process itself during shutdown; a process that crashes writes none.
public struct WorkerStopped: EventPayload {
    public static let eventType = "worker.stopped"

    /// The process role.
    public var role: String
    /// The operator-chosen worker id.
    public var workerID: String
    /// The per-process instance id.
    public var instance: String
    /// Why: `graceful` (SIGTERM or SIGINT), `error` or `finished`.
    public var reason: String
    /// More detail, e.g. the error description.
    public var detail: String?

    /// Creates a `worker.stopped` event.
    public init(role: String, workerID: String, instance: String, reason: String, detail: String? = nil) {
        self.role = role
        self.workerID = workerID
        self.instance = instance
        self.reason = reason
        self.detail = detail
    }
}

// MARK: - Channels

/// A channel connection came up (`channel.connected`), e.g. the WhatsApp socket opened or Telegram polling
/// started.
///
/// Written by the channel worker. For a channel account guarded by a lease, ``leaseToken`` is the tenure the
/// connection was opened under.
public struct ChannelConnected: EventPayload {
    public static let eventType = "channel.connected"

    /// The channel: `whatsapp`, `telegram` or `web`.
    public var channel: String
    /// The channel account.
    public var accountID: String
    /// The worker id of the connected process.
    public var workerID: String
    /// The per-process instance id of the connected process.
    public var ownerInstance: String
    /// The fencing token of the account lease held, if the account is leased.
    public var leaseToken: UInt64?
    /// Free-form detail, e.g. the connection mode (`webhook`, `long_poll`, `socket`).
    public var detail: String?

    /// Creates a `channel.connected` event.
    public init(
        channel: String, accountID: String, workerID: String, ownerInstance: String, leaseToken: UInt64? = nil,
        detail: String? = nil
    ) {
        self.channel = channel
        self.accountID = accountID
        self.workerID = workerID
        self.ownerInstance = ownerInstance
        self.leaseToken = leaseToken
        self.detail = detail
    }
}

/// A channel connection went down (`channel.disconnected`).
///
/// Written by the channel worker.
public struct ChannelDisconnected: EventPayload {
    public static let eventType = "channel.disconnected"

    /// The channel.
    public var channel: String
    /// The channel account.
    public var accountID: String
    /// The worker id of the disconnected process.
    public var workerID: String
    /// The per-process instance id of the disconnected process.
    public var ownerInstance: String
    /// Why, e.g. `closed`, `logged_out`, `lease_lost`, `shutdown`, `error`.
    public var reason: String
    /// A transport or provider code, e.g. WebSocket close code `1006` or an HTTP status.
    public var code: Int?
    /// Whether the worker will try to reconnect.
    public var willReconnect: Bool

    /// Creates a `channel.disconnected` event.
    public init(
        channel: String, accountID: String, workerID: String, ownerInstance: String, reason: String,
        code: Int? = nil, willReconnect: Bool
    ) {
        self.channel = channel
        self.accountID = accountID
        self.workerID = workerID
        self.ownerInstance = ownerInstance
        self.reason = reason
        self.code = code
        self.willReconnect = willReconnect
    }
}
