import EventLog
import Foundation
import Logging
import Projections
import ServiceLifecycle
import Synchronization

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
        /// Not started: nothing is linked and no transport was chosen; /settings (Link WhatsApp) starts it.
        case notStarted
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
    let wakeup = Wakeup()
    /// The running sidecar's watch (the tenure changed, a pause, shutdown): a second waiter needs its own bell.
    let watch = Wakeup()
    let stopping = Flag()
    let state = Mutex(State())

    struct State {
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

    /// Pauses the device (the sidecar, if running, is stopped) until ``resume()``.
    public func pause(_ pause: Pause) {
        state.withLock { $0.paused = pause }
        watch.signal()
    }

    /// Clears a pause (after linking again, or by the operator): the next tenure or wakeup starts the sidecar.
    public func resume() {
        state.withLock { $0.paused = nil }
        keeper.activate()
        wakeup.signal()
        watch.signal()
    }

    /// Unlinks: the sidecar logs the device out (WhatsApp forgets it) and the session is cleared; `false` when the
    /// keys could not be cleared (this process does not hold the account's lease).
    @discardableResult
    public func unlink() async -> Bool {
        let process = state.withLock { state -> SidecarProcess? in
            state.paused = .unlinked
            state.loggingOut = state.process != nil
            return state.process
        }
        process?.send(.logout)
        watch.signal()
        if let process { _ = await process.exited() }
        guard await clearSession() else {
            logger.error("[whatsapp] Unlink: the keys could not be cleared (this process does not hold the lease)")
            return false
        }
        logger.notice("[whatsapp] Unlinked: the session is cleared", metadata: metadata)
        return true
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
            switch await installOnce() {
            case .installed:
                break
            case .stopping:
                return
            case .failed(let failure, let retry, let fresh):
                if fresh {
                    logger.error("[whatsapp] \(failure.message)", metadata: metadata)
                    await health.down(reason: "sidecar_not_installed", willReconnect: true)
                }
                await wakeup.wait(until: retry)
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

    /// The sidecar's installation: not started, running on a thread of its own, or done.
    private final class Installation: Sendable {
        enum Phase {
            case idle, running, installed
            /// Failed; tried again from `retry` on; `reported` once the failure was logged.
            case failed(SidecarError, retry: ContinuousClock.Instant, reported: Bool)
        }
        let phase = Mutex(Phase.idle)
    }

    enum InstallOutcome {
        case installed
        case stopping
        /// `fresh` the first time this failure is returned (log it once).
        case failed(SidecarError, retry: ContinuousClock.Instant, fresh: Bool)
    }

    private let installation = Installation()

    /// Runs ``LinkedDeviceSettings/install`` once, off the cooperative pool (npm takes a while, up to minutes when
    /// the registry does not answer), and waits for it — or for shutdown, which never waits for npm. A failed
    /// install is tried again after 10 minutes.
    private func installOnce() async -> InstallOutcome {
        guard let install = settings.install else { return .installed }
        let start = installation.phase.withLock { phase -> Bool in
            switch phase {
            case .idle:
                phase = .running
                return true
            case .failed(_, let retry, _) where ContinuousClock.now >= retry:
                phase = .running
                return true
            case .running, .installed, .failed:
                return false
            }
        }
        if start {
            let installation = self.installation
            let wakeup = self.wakeup
            Thread.detachNewThread {
                do throws(SidecarError) {
                    try install()
                    installation.phase.withLock { $0 = .installed }
                } catch {
                    installation.phase.withLock {
                        $0 = .failed(error, retry: .now + .seconds(600), reported: false)
                    }
                }
                wakeup.signal()
            }
        }
        while true {
            if stopping.isSet { return .stopping }
            let outcome = installation.phase.withLock { phase -> InstallOutcome? in
                switch phase {
                case .installed:
                    return .installed
                case .failed(let error, let retry, let reported):
                    phase = .failed(error, retry: retry, reported: true)
                    return .failed(error, retry: retry, fresh: !reported)
                case .idle, .running:
                    return nil
                }
            }
            if let outcome { return outcome }
            await wakeup.wait()
        }
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

    /// Removes every `web.*` entry; whether that was written (or nothing was there).
    @discardableResult
    func clearSession(under tenure: Tenure? = nil) async -> Bool {
        let changes = LinkedSessionLayout.unlink(session.entries())
        state.withLock {
            $0.jid = nil
            $0.qr = nil
        }
        return changes.isEmpty ? true : await session.write(changes, under: tenure)
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

}
