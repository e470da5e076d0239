import ArgumentParser
import Foundation
import Logging
import Projections
import ServiceLifecycle
import Workers

/// `agent whatsapp link`: links the agent to a person's own WhatsApp number as a linked device — the QR code on the
/// terminal (or `--pairing-code <phone>`), the keys committed to the session store under the account's lease —
/// then exits. The agent started afterwards with `WHATSAPP_TRANSPORT=web` (or with nothing set: a stored link
/// chooses it) connects without a QR. Linking is done by the lease holder only: with a running agent holding
/// the account, link on its /settings page instead.
struct WhatsAppLink: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "link", abstract: "Links your own WhatsApp number: shows a QR code to scan with the phone.")

    @OptionGroup var location: LogLocation
    @Option(help: "WHATSAPP_ACCOUNT_ID: the account (default default).") var account: String?
    @Option(help: "Link with a code typed on the phone instead of a QR: the number, with its country code.")
    var pairingCode: String?
    @Option(help: "Give up after this many seconds.") var timeout = 300

    func run() async throws {
        var settings = try location.settings()
        if let account { settings.whatsappAccountID = account }
        let account = settings.whatsappAccountID
        let resource = "whatsapp/\(account)"
        var handler = StreamLogHandler.standardError(label: "agent")
        handler.logLevel = .notice
        let logger = Logger(label: "agent", factory: { _ in handler })
        try await location.withEngine(settings, create: true) { engine in
            if let lease = try engine.lease(resource), lease.owner != engine.owner,
                lease.expiresAt > (try engine.logNow())
            {
                complain(
                    "agent whatsapp link: \(resource) is held by '\(lease.owner.workerID)': link on that agent's "
                        + "/settings page, or stop it first (only the lease holder runs the linked device)")
                throw ExitCode(1)
            }
            let store = try SessionStore(
                backend: settings.sessionBackend, engine: engine, directory: settings.sessionDirectory)
            if let jid = try store.value(LinkedSessionLayout.linkedJID, namespace: resource),
                try store.value(LinkedSessionLayout.creds, namespace: resource) != nil
            {
                let user = WhatsAppWebInbound.user(of: String(decoding: jid, as: UTF8.self))
                print("Already linked to +\(user). Run `agent whatsapp unlink` first to link another number.")
                return
            }
            let keeper = LeaseKeeper(
                channel: "whatsapp", accountID: account, engine: engine, timing: engine.settings.lease,
                status: WorkerStatus(
                    role: "operator", workerID: engine.owner.workerID, instance: engine.owner.instance),
                logger: logger)
            let device = LinkedDevice.make(
                settings: settings, keeper: keeper, store: store, engine: engine, printQR: true, logger: logger)
            if let pairingCode { device.requestPairingCode(phone: ChannelSettings.phoneDigits(pairingCode)) }
            let group = ServiceGroup(
                configuration: ServiceGroupConfiguration(
                    services: [keeper, device], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            print(
                pairingCode == nil
                    ? "Starting the linked device: scan the QR code below with WhatsApp on your phone "
                        + "(Settings → Linked devices → Link a device)."
                    : "Starting the linked device: a pairing code follows; on the phone: Linked devices → Link a device → "
                        + "Link with phone number instead.")
            let linked = try await withThrowingTaskGroup(of: String?.self) { tasks in
                tasks.addTask {
                    try await group.run()
                    return nil
                }
                tasks.addTask {
                    let jid = await device.linked()
                    await group.triggerGracefulShutdown()
                    return jid
                }
                tasks.addTask {
                    try await Task.sleep(for: .seconds(timeout))
                    await group.triggerGracefulShutdown()
                    return nil
                }
                var jid: String?
                for try await result in tasks {
                    if let result { jid = result }
                    if jid != nil || result == nil { tasks.cancelAll() }
                }
                return jid
            }
            guard let linked else {
                complain("agent whatsapp link: not linked within \(timeout) s (no QR scanned)")
                throw ExitCode(1)
            }
            print("Linked to +\(WhatsAppWebInbound.user(of: linked)). Start the agent: it connects without a QR.")
        }
    }
}

/// `agent whatsapp unlink`: logs the linked device out (WhatsApp forgets it) and clears its keys.
struct WhatsAppUnlink: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unlink", abstract: "Unlinks your own WhatsApp number and clears its keys.")

    @OptionGroup var location: LogLocation
    @Option(help: "WHATSAPP_ACCOUNT_ID: the account (default default).") var account: String?

    func run() async throws {
        var settings = try location.settings()
        if let account { settings.whatsappAccountID = account }
        let resource = "whatsapp/\(settings.whatsappAccountID)"
        try await location.withEngine(settings) { engine in
            let decision = try await engine.acquireLease(resource)
            guard let grant = decision.grant else {
                complain(
                    "agent whatsapp unlink: \(resource) is held by another worker: unlink on its /settings page, or "
                        + "stop it first")
                throw ExitCode(1)
            }
            let store = try SessionStore(
                backend: settings.sessionBackend, engine: engine, directory: settings.sessionDirectory)
            let changes = LinkedSessionLayout.unlink(try store.entries(resource))
            if !changes.isEmpty { _ = try await store.write(changes, namespace: resource, leaseToken: grant.token) }
            _ = try await engine.releaseLease(resource, token: grant.token)
            print(
                changes.isEmpty
                    ? "Nothing was linked."
                    : "Cleared the linked device's keys. Remove \"Switchboard\" from the phone's Linked devices list too "
                        + "(the agent was not running, so it could not log out itself).")
        }
    }
}
