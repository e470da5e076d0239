import EventLog
import Foundation
import Logging
import Projections
import QRCode
import ServiceLifecycle
import Synchronization

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

/// The WhatsApp linked device of one account (`WHATSAPP_TRANSPORT=web`): runs the Baileys sidecar while, and only
/// while, this process holds the account's lease; commits every auth write of the socket under the lease token
/// before the socket goes on; turns its messages and receipts into ingress items; reconnects by the close reason
/// (``LinkedDevicePolicy``). docs/channels.md, "WhatsApp on your own number".
public final class LinkedDevice: Service, Sendable {
    public enum Pause: String, Sendable {
        /// Logged out or unlinked: link again.
        case unlinked
        /// Another client took the number.
        case replaced
        /// WhatsApp refused the account.
        case refused
    }

    /// What /settings and the status show.
    public struct Snapshot: Sendable, Equatable {
        public var running: Bool
        public var connected: Bool
        public var jid: String?
        public var qr: String?
        public var pairingCode: String?
        public var paused: Pause?
    }

    let keeper: LeaseKeeper
    let session: ChannelSession
    let ingress: ChannelIngress
    let inbound: WhatsAppWebInbound
    let health: ChannelHealth
    let settings: LinkedDeviceSettings
    let logger: Logger
    /// The loop's doorbell (a new tenure, a resume, shutdown).
    private let wakeup = Wakeup()
    /// The running sidecar's watch (the tenure changed, a pause, shutdown): a second waiter needs its own bell.
    private let watch = Wakeup()
    private let stopping = Flag()
    private let state = Mutex(State())

    private struct State {
        var process: SidecarProcess?
        var connected = false
        var jid: String?
        var qr: String?
        var pairingCode: String?
        var paused: Pause?
        var pairPhone: String?
        var pending: [String: CheckedContinuation<SendOutcome, Never>] = [:]
        /// Message ids this device sent lately (its own messages come back as `fromMe` upserts).
        var sentIDs: [String] = []
        var linkWaiters: [CheckedContinuation<String, Never>] = []
        /// Set while the sidecar logs the device out: it is given time to finish.
        var loggingOut = false
    }

    public init(
        keeper: LeaseKeeper, session: ChannelSession, ingress: ChannelIngress, inbound: WhatsAppWebInbound,
        health: ChannelHealth, settings: LinkedDeviceSettings, logger: Logger
    ) {
        self.keeper = keeper
        self.session = session
        self.ingress = ingress
        self.inbound = inbound
        self.health = health
        self.settings = settings
        self.logger = logger
    }

    var metadata: Logger.Metadata { ["channel.account": "\(keeper.accountID)"] }

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
                accountID: keeper.accountID, access: access, selfChat: channels.whatsappSelfChat),
            health: ChannelHealth(
                channel: Channel.whatsapp.rawValue, accountID: keeper.accountID, engine: engine, logger: logger),
            settings: device, logger: logger)
    }

    public var snapshot: Snapshot {
        state.withLock {
            Snapshot(
                running: $0.process != nil, connected: $0.connected, jid: $0.jid, qr: $0.qr,
                pairingCode: $0.pairingCode, paused: $0.paused)
        }
    }

    /// Asks for a pairing code for `phone` (digits with the country code) instead of a QR at the next link.
    public func requestPairingCode(phone: String) {
        let process = state.withLock { state -> SidecarProcess? in
            state.pairPhone = phone
            return state.connected ? nil : state.process
        }
        process?.send(.pair(phone: phone))
    }

    /// Waits until the device is connected; returns the linked jid.
    public func linked() async -> String {
        await withCheckedContinuation { continuation in
            let jid = state.withLock { state -> String? in
                if state.connected, let jid = state.jid { return jid }
                state.linkWaiters.append(continuation)
                return nil
            }
            if let jid { continuation.resume(returning: jid) }
        }
    }

    /// Clears a pause (after linking again, or by the operator): the next tenure or wakeup starts the sidecar.
    public func resume() {
        state.withLock { $0.paused = nil }
        wakeup.signal()
        watch.signal()
    }

    /// Unlinks: the sidecar logs the device out (WhatsApp forgets it) and the session is cleared.
    public func unlink() async {
        let process = state.withLock { state -> SidecarProcess? in
            state.paused = .unlinked
            state.loggingOut = state.process != nil
            return state.process
        }
        process?.send(.logout)
        watch.signal()
        if let process { _ = await process.exited() }
        await clearSession()
        logger.notice("[whatsapp] Unlinked: the session is cleared", metadata: metadata)
    }

    public func run() async throws {
        keeper.notify(wakeup)
        keeper.notify(watch)
        await ServiceLoop(stopping: stopping, wakeup: wakeup, logger: logger).run(onShutdown: { self.watch.signal() }) {
            await self.loop()
        }
        if health.isUp { await health.down(reason: "shutdown", willReconnect: false) }
    }

    private func loop() async {
        while !stopping.isSet && !Task.isCancelled {
            guard let tenure = keeper.current(), state.withLock({ $0.paused == nil }) else {
                await wakeup.wait()
                continue
            }
            await runTenure(tenure)
        }
    }

    /// Runs sidecars for `tenure` until it ends, the agent stops or the account pauses; restarts a sidecar that
    /// exits, with backoff.
    private func runTenure(_ tenure: Tenure) async {
        var exits = 0
        while !stopping.isSet && keeper.current()?.token == tenure.token && state.withLock({ $0.paused == nil }) {
            if let failure = await installOnce() {
                exits += 1
                logger.error("[whatsapp] \(failure.message)", metadata: metadata)
                await health.down(reason: "sidecar_not_installed", willReconnect: true)
                await wakeup.wait(until: .now + .seconds(600))
                continue
            }
            let process: SidecarProcess
            do {
                process = try SidecarProcess(command: settings.command, logger: logger, metadata: metadata)
            } catch {
                exits += 1
                logger.error("[whatsapp] Cannot start the linked-device sidecar: \(error)", metadata: metadata)
                await health.down(reason: "sidecar_failed", willReconnect: true)
                await wakeup.wait(until: .now + LinkedDevicePolicy.backoff(exits, jitter: .random(in: 0..<1)))
                continue
            }
            state.withLock { $0.process = process }
            logger.info(
                "[whatsapp] Linked-device sidecar started (pid \(process.pid))",
                metadata: metadata.merging(["lease.token": "\(tenure.token)"]) { $1 })
            let auth = LinkedSessionLayout.authState(session.entries())
            process.send(
                .start(
                    account: keeper.accountID, auth: auth, browser: settings.browser,
                    staleAfterMs: Int(settings.staleAfter.components.seconds * 1000), waWebSocketUrl: settings.socketURL
                ))
            if auth == nil {
                logger.notice("[whatsapp] Not linked yet: waiting for a QR code to scan", metadata: metadata)
            }
            let end = await drive(process, tenure)
            await finish(process, gracefully: end == .stopping || end == .paused)
            switch end {
            case .exited:
                exits += 1
                let wait = LinkedDevicePolicy.backoff(exits, jitter: .random(in: 0..<1))
                logger.warning(
                    "[whatsapp] The sidecar exited: restarting in \(wait)",
                    metadata: metadata.merging(["sidecar.restarts": "\(exits)"]) { $1 })
                await health.down(reason: "sidecar_exited", willReconnect: true)
                await wakeup.wait(until: .now + wait)
            case .tenureEnded:
                logger.warning("[whatsapp] Lease lost: the linked device is stopped", metadata: metadata)
                await health.down(reason: "lease_lost", willReconnect: true)
                return
            case .stopping, .paused:
                return
            }
        }
    }

    enum End: Equatable { case exited, tenureEnded, stopping, paused }

    /// The milliseconds a sidecar may keep its socket: to the tenure's local deadline, less 100 ms for the pipe and
    /// the sidecar's own timer (at least 1).
    static func validFor(until deadline: ContinuousClock.Instant) -> Int {
        let remaining = deadline - .now - .milliseconds(100)
        return max(
            1, Int(remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000))
    }

    private let installed = Flag()

    /// Runs ``LinkedDeviceSettings/install`` once (off the cooperative pool: npm takes a while); the failure.
    private func installOnce() async -> SidecarError? {
        guard let install = settings.install, !installed.isSet else { return nil }
        let failure = await withCheckedContinuation { (continuation: CheckedContinuation<SidecarError?, Never>) in
            Thread.detachNewThread {
                do throws(SidecarError) {
                    try install()
                    continuation.resume(returning: nil)
                } catch {
                    continuation.resume(returning: error)
                }
            }
        }
        if failure == nil { installed.set() }
        return failure
    }

    /// Reads the sidecar's events until it exits, the tenure ends (the sidecar is killed at once), the agent stops
    /// or the account pauses.
    private func drive(_ process: SidecarProcess, _ tenure: Tenure) async -> End {
        await withTaskGroup(of: End.self) { group in
            group.addTask {
                var closes = 0
                for await line in process.lines {
                    let event: SidecarEvent?
                    do {
                        event = try SidecarProtocol.event(line)
                    } catch {
                        self.logger.warning(
                            "whatsapp.sidecar.bad_event", metadata: self.metadata.merging(["error": "\(error)"]) { $1 })
                        continue
                    }
                    guard let event else { continue }
                    if let end = await self.handle(event, process, tenure, closes: &closes) {
                        if end == .tenureEnded { process.kill() }
                        return end
                    }
                }
                return .exited
            }
            group.addTask {
                // The watch: the sidecar dies the moment the tenure ends (denied, expired by its local deadline,
                // refused) — before any other process can be granted the lease. Each renewal is passed on as a
                // `lease`, so a sidecar whose agent froze closes its socket by itself at the same deadline.
                var told: ContinuousClock.Instant?
                while !self.stopping.isSet {
                    guard let current = self.keeper.current(), current.token == tenure.token else {
                        process.kill()
                        return .tenureEnded
                    }
                    if self.state.withLock({ $0.paused != nil }) { return .paused }
                    if told != current.deadline {
                        told = current.deadline
                        process.send(.lease(validForMs: Self.validFor(until: current.deadline)))
                    }
                    await self.watch.wait(until: current.deadline)
                    if Task.isCancelled { return .exited }
                }
                return .stopping
            }
            let end = await group.next() ?? .exited
            group.cancelAll()
            return end
        }
    }

    /// Handles one event; returns how the tenure's sidecar ends, or `nil` to go on.
    private func handle(_ event: SidecarEvent, _ process: SidecarProcess, _ tenure: Tenure, closes: inout Int) async
        -> End?
    {
        switch event {
        case .ready(let version):
            logger.info("[whatsapp] Sidecar ready (baileys \(version ?? "unknown"))", metadata: metadata)
            if let phone = state.withLock({ $0.pairPhone }) { process.send(.pair(phone: phone)) }
        case .qr(let qr, let expires):
            state.withLock { $0.qr = qr }
            await showQR(qr, expiresIn: .milliseconds(expires ?? 20_000), tenure)
        case .pairingCode(let code):
            state.withLock { $0.pairingCode = code }
            logger.notice(
                "[whatsapp] Pairing code: \(code) — on the phone: Linked devices → Link with phone number",
                metadata: metadata)
        case .connected(let jid, let name):
            closes = 0
            let waiters = state.withLock { state in
                state.connected = true
                state.jid = jid
                state.qr = nil
                state.pairingCode = nil
                defer { state.linkWaiters = [] }
                return state.linkWaiters
            }
            for waiter in waiters { waiter.resume(returning: jid) }
            let entries = session.entries()
            var changes: SessionChanges = [:]
            if entries[LinkedSessionLayout.linkedJID].map({ String(decoding: $0, as: UTF8.self) }) != jid {
                changes[LinkedSessionLayout.linkedJID] = Data(jid.utf8)
            }
            if entries[LinkedSessionLayout.linkQR] != nil { changes[LinkedSessionLayout.linkQR] = .some(nil) }
            if !changes.isEmpty { await session.write(changes, under: tenure) }
            await health.up(
                detail: "linked device \(WhatsAppWebInbound.user(of: jid))\(name.map { " (\($0))" } ?? "")",
                leaseToken: tenure.token)
        case .disconnected(let code, let name, let message):
            closes += 1
            failPending(uncertain: true, reason: "disconnected")
            state.withLock { $0.connected = false }
            let reason = LinkedDevicePolicy.reason(code: code, name: name)
            let action = LinkedDevicePolicy.afterClose(code: code, failures: closes, jitter: .random(in: 0..<1))
            var fields = metadata
            fields["whatsapp.disconnect_code"] = "\(code)"
            if let message { fields["whatsapp.disconnect_message"] = "\(message.prefix(200))" }
            switch action {
            case .reconnectNow:
                logger.info("[whatsapp] Socket closed (\(reason)): reconnecting now", metadata: fields)
                await health.down(reason: reason, code: code, willReconnect: true)
                process.send(.connect)
            case .reconnect(let wait):
                logger.warning("[whatsapp] Socket closed (\(reason)): reconnecting in \(wait)", metadata: fields)
                await health.down(reason: reason, code: code, willReconnect: true)
                // Waits without reading (the sidecar sends nothing until told to connect); the watch cancels it.
                try? await Task.sleep(for: wait)
                guard keeper.current()?.token == tenure.token, !stopping.isSet else {
                    return stopping.isSet ? .stopping : .tenureEnded
                }
                process.send(.connect)
            case .unlinked:
                logger.error(
                    "[whatsapp] The device was unlinked (\(reason)): the session is cleared; link again with `agent whatsapp link` or on /settings",
                    metadata: fields)
                await health.down(reason: reason, code: code, willReconnect: false, terminal: true)
                state.withLock { $0.paused = .unlinked }
                await clearSession(under: tenure)
                process.send(.stop)
                return .paused
            case .replaced:
                logger.error(
                    "[whatsapp] Another client took this number (connection replaced): stopped, not reconnecting; run `agent whatsapp link` or Resume on /settings",
                    metadata: fields)
                await health.down(reason: reason, code: code, willReconnect: false, terminal: true)
                state.withLock { $0.paused = .replaced }
                process.send(.stop)
                return .paused
            case .refused:
                logger.error("[whatsapp] WhatsApp refused the account (\(reason)): stopped", metadata: fields)
                await health.down(reason: reason, code: code, willReconnect: false, terminal: true)
                state.withLock { $0.paused = .refused }
                process.send(.stop)
                return .paused
            }
        case .auth(let batch):
            // Durable before the socket goes on: the sidecar waits for this answer.
            if await session.write(LinkedSessionLayout.changes(batch), under: tenure) {
                process.send(.authCommitted(batch: batch.batch))
            } else {
                process.send(.authRefused(batch: batch.batch, reason: "not_committed"))
                logger.error("[whatsapp] An auth write was refused: the linked device stops", metadata: metadata)
                return keeper.current()?.token == tenure.token ? .exited : .tenureEnded
            }
        case .message(let message):
            let own = state.withLock { state in (jid: state.jid, sent: state.sentIDs.contains(message.id)) }
            guard let item = inbound.item(message, ownJID: own.jid, sentByThisDevice: own.sent) else { break }
            await ingest([item])
        case .receipt(let id, let chat, let status):
            guard let item = inbound.receipt(id: id, chat: chat, status: status) else { break }
            await ingest([item])
        case .sent(let id, let messageID):
            resolve(id, .sent(providerMessageID: messageID), sentID: messageID)
        case .sendFailed(let id, let uncertain, let reason):
            resolve(
                id,
                uncertain
                    ? .uncertain(reason: reason)
                    : .failed(SendFailure(permanent: false, code: "whatsapp_web", message: reason)),
                sentID: nil)
        case .stale(let since):
            logger.warning(
                "[whatsapp] Connected but nothing arrives (\(since / 1000) s since a send): reconnecting",
                metadata: metadata)
        case .unknown:
            break
        }
        return nil
    }

    private func ingest(_ items: [IngressItem]) async {
        // The socket does not redeliver what it handed over: retry a failed write a few times.
        for attempt in 1...5 {
            do {
                try await ingress.ingest(items, channel: Channel.whatsapp.rawValue)
                return
            } catch {
                logger.error(
                    "whatsapp.ingest.failed",
                    metadata: metadata.merging(["error": "\(error)", "attempt": "\(attempt)"]) { $1 })
                try? await Task.sleep(for: .milliseconds(200 * attempt))
            }
        }
    }

    private func showQR(_ qr: String, expiresIn: Duration, _ tenure: Tenure) async {
        logger.notice(
            "[whatsapp] Scan this QR code with WhatsApp on your phone: Settings → Linked devices → Link a device",
            metadata: metadata)
        // On the terminal, beside the log lines (stderr).
        if settings.printQR, let code = try? QRCode(qr) {
            FileHandle.standardError.write(Data(code.terminalText().utf8))
        }
        let expiresAt = Date().addingTimeInterval(Double(expiresIn.components.seconds))
        let value = #"{"qr":"\#(qr)","expiresAt":\#(Int(expiresAt.timeIntervalSince1970))}"#
        await session.write([LinkedSessionLayout.linkQR: Data(value.utf8)], under: tenure)
    }

    private func clearSession(under tenure: Tenure? = nil) async {
        let changes = LinkedSessionLayout.unlink(session.entries())
        if !changes.isEmpty { await session.write(changes, under: tenure) }
        state.withLock {
            $0.jid = nil
            $0.qr = nil
        }
    }

    /// Ends `process`: when the agent stops or the account pauses, `stop` (or the logout under way) gets up to
    /// 2 s (5 s) before SIGKILL; otherwise SIGKILL at once.
    private func finish(_ process: SidecarProcess, gracefully: Bool) async {
        if gracefully && !process.hasExited {
            let loggingOut = state.withLock { $0.loggingOut }
            if !loggingOut {
                process.send(.stop)
                process.closeInput()
            }
            let grace: Duration = loggingOut ? .seconds(5) : .seconds(2)
            await withTaskGroup(of: Void.self) { group in
                group.addTask { _ = await process.exited() }
                group.addTask {
                    try? await Task.sleep(for: grace)
                    if !Task.isCancelled { process.kill() }
                }
                await group.next()
                group.cancelAll()
            }
        } else {
            process.kill()
        }
        _ = await process.exited()
        failPending(uncertain: true, reason: "sidecar_stopped")
        state.withLock {
            $0.process = nil
            $0.connected = false
            $0.loggingOut = false
        }
        logger.info("[whatsapp] Linked-device sidecar stopped (pid \(process.pid))", metadata: metadata)
    }

    // MARK: Sending

    /// Sends `text` to `jid` through the sidecar, quoting `quoted`: `uncertain` when the sidecar does not answer
    /// within the send timeout or goes away meanwhile (the message may have reached WhatsApp).
    func send(deliveryID: String, jid: String, text: String, quoted: String?) async -> SendOutcome {
        let timeout = settings.sendTimeout
        return await withTaskGroup(of: SendOutcome?.self) { group in
            group.addTask { await self.submit(deliveryID: deliveryID, jid: jid, text: text, quoted: quoted) }
            group.addTask {
                try? await Task.sleep(for: timeout)
                if !Task.isCancelled { self.resolve(deliveryID, .uncertain(reason: "timeout"), sentID: nil) }
                return nil
            }
            var outcome: SendOutcome = .uncertain(reason: "timeout")
            for await result in group {
                if let result {
                    outcome = result
                    group.cancelAll()
                }
            }
            return outcome
        }
    }

    private func submit(deliveryID: String, jid: String, text: String, quoted: String?) async -> SendOutcome {
        await withCheckedContinuation { continuation in
            let process = state.withLock { state -> SidecarProcess? in
                guard state.connected, let process = state.process, state.pending[deliveryID] == nil else { return nil }
                state.pending[deliveryID] = continuation
                return process
            }
            guard let process else {
                continuation.resume(
                    returning: .failed(
                        SendFailure(
                            permanent: false, code: "not_connected", message: "the linked device is not connected")))
                return
            }
            process.send(.send(id: deliveryID, jid: jid, text: text, quoted: quoted))
        }
    }

    /// Shows typing to `jid` (best effort).
    func typing(jid: String) -> Bool {
        guard let process = state.withLock({ $0.connected ? $0.process : nil }) else { return false }
        process.send(.presence(jid: jid, state: "composing"))
        return true
    }

    private func resolve(_ id: String, _ outcome: SendOutcome, sentID: String?) {
        let continuation = state.withLock { state -> CheckedContinuation<SendOutcome, Never>? in
            if let sentID {
                state.sentIDs.append(sentID)
                if state.sentIDs.count > 512 { state.sentIDs.removeFirst(state.sentIDs.count - 512) }
            }
            return state.pending.removeValue(forKey: id)
        }
        continuation?.resume(returning: outcome)
    }

    private func failPending(uncertain: Bool, reason: String) {
        let pending = state.withLock { state in
            defer { state.pending = [:] }
            return state.pending
        }
        for (_, continuation) in pending {
            continuation.resume(
                returning: uncertain
                    ? .uncertain(reason: reason) : .failed(SendFailure(permanent: false, code: reason, message: reason))
            )
        }
    }
}
