import Foundation
import Logging
import Projections

/// How the linked device runs.
public struct LinkedDeviceSettings: Sendable {
    /// The sidecar's command line (`node <DATA_DIR>/sidecars/whatsapp-web/index.mjs`, or a test's).
    public var command: [String]
    /// Shown in the phone's Linked devices list.
    public var browser: [String] = ["Switchboard", "Chrome", "1.0"]
    /// The sidecar's liveness check (see the protocol's `stale`).
    public var staleAfter: Duration = .seconds(120)
    /// A WebSocket URL instead of WhatsApp's (tests).
    public var socketURL: String?
    /// Whether the owner may talk to the assistant from their own "message yourself" chat.
    public var selfChat = false
    /// How long a send may wait for the sidecar's answer before it is uncertain.
    public var sendTimeout: Duration = .seconds(30)
    /// Whether a QR is printed on the terminal (stdout) as well as logged and shown on /settings.
    public var printQR = true
    /// Installs the sidecar before its first start (the default command's; `nil` for a given command).
    public var install: (@Sendable () throws(SidecarError) -> Void)?

    public init(command: [String]) { self.command = command }
}

extension LinkedDevice {
    /// The linked device of `settings`' WhatsApp account under `keeper`, as the agent and `agent whatsapp link` run it.
    public static func make(
        settings: AgentSettings, keeper: LeaseKeeper, store: SessionStore, engine: Switchboard, printQR: Bool,
        logger: Logger
    ) -> LinkedDevice {
        let channels = settings.channels
        var device = LinkedDeviceSettings(
            command: channels.whatsappSidecarCommand ?? WhatsAppSidecar.command(dataDirectory: settings.dataDirectory))
        if channels.whatsappSidecarCommand == nil {
            let directory = WhatsAppSidecar.directory(dataDirectory: settings.dataDirectory)
            device.install = { () throws(SidecarError) in
                try WhatsAppSidecar.install(directory) { line in logger.notice("\(line)") }
            }
        }
        device.socketURL = channels.whatsappWebSocketURL
        device.selfChat = channels.whatsappSelfChat
        device.sendTimeout = settings.providerTimeout
        device.printQR = printQR
        let access = ChannelAccess(
            channel: Channel.whatsapp.rawValue, policy: channels.whatsappPolicy,
            allowlist: channels.whatsappAllowedNumbers)
        return LinkedDevice(
            keeper: keeper, session: ChannelSession(store: store, keeper: keeper, logger: logger),
            ingress: ChannelIngress(engine: engine, logger: logger),
            inbound: WhatsAppWebInbound(
                accountID: keeper.accountID, access: access, selfChat: channels.whatsappSelfChat,
                groups: WhatsAppWebGroups(policy: channels.groupPolicy, allowed: channels.whatsappAllowedGroups)),
            health: ChannelHealth(
                channel: Channel.whatsapp.rawValue, accountID: keeper.accountID, engine: engine, logger: logger),
            settings: device, logger: logger)
    }
}
