import EventLog
import Foundation
import Logging
import Projections
import ServiceLifecycle
import SwitchboardEvents
import Synchronization

/// The connection state of one channel account in this process, recorded as `channel.connected` /
/// `channel.disconnected` on each change (never twice in a row), which `replay alerts` counts.
public final class ChannelHealth: Sendable {
    public let channel: String
    public let accountID: String
    let engine: Switchboard
    let logger: Logger

    enum Link: Sendable { case unknown, up, down }
    private let link = Mutex(Link.unknown)

    public init(channel: String, accountID: String, engine: Switchboard, logger: Logger) {
        self.channel = channel
        self.accountID = accountID
        self.engine = engine
        self.logger = logger
    }

    /// Whether the last recorded state is connected.
    public var isUp: Bool { link.withLock { $0 == .up } }

    /// Records `channel.connected` unless already connected.
    public func up(detail: String, leaseToken: UInt64?) async {
        guard
            link.withLock({ link -> Bool in
                defer { link = .up }
                return link != .up
            })
        else { return }
        logger.info(
            "[\(channel)] Connected (\(detail)) for account '\(accountID)'",
            metadata: ["channel.account": "\(accountID)", "lease.token": "\(leaseToken.map { "\($0)" } ?? "none")"])
        await append(
            ChannelConnected(
                channel: channel, accountID: accountID, workerID: engine.owner.workerID,
                ownerInstance: engine.owner.instance, leaseToken: leaseToken, detail: detail))
    }

    /// Records `channel.disconnected` when connected, or when a first connection failed (`willReconnect`); not
    /// again while already down — except a `terminal` one (unlinked, replaced: the account stops until someone
    /// acts), which is always recorded.
    public func down(reason: String, code: Int? = nil, willReconnect: Bool, terminal: Bool = false) async {
        guard
            link.withLock({ link -> Bool in
                let record = terminal || link == .up || (link == .unknown && willReconnect)
                if record || link == .up { link = .down }
                return record
            })
        else { return }
        logger.warning(
            "[\(channel)] Disconnected (\(reason)) for account '\(accountID)'",
            metadata: [
                "channel.account": "\(accountID)", "channel.reason": "\(reason)",
                "channel.code": "\(code.map { "\($0)" } ?? "none")", "channel.will_reconnect": "\(willReconnect)",
            ])
        await append(
            ChannelDisconnected(
                channel: channel, accountID: accountID, workerID: engine.owner.workerID,
                ownerInstance: engine.owner.instance, reason: reason, code: code, willReconnect: willReconnect))
    }

    private func append(_ event: some EventPayload) async {
        do {
            try await engine.log.append(event)
        } catch {
            logger.error("channel.event.not_recorded", metadata: ["error": "\(error)"])
        }
    }
}

/// What a probe of a channel's credentials found.
public enum ChannelProbe: Sendable, Equatable {
    /// The provider answered and knows the credentials; `detail` names the connection (e.g. `webhook @bot`).
    case ok(detail: String)
    /// The provider refused the credentials (HTTP status or provider code).
    case refused(code: Int?, message: String)
    /// The provider could not be reached or answered with an error.
    case unreachable(code: Int?, message: String)
}

/// For a channel whose inbound arrives by webhook: while this process holds the account's lease it probes the
/// provider with the credentials (Telegram `getMe`, the WhatsApp phone number) and records the connection —
/// `channel.connected` when the probe passes, `channel.disconnected` when it fails (retried with backoff), when the
/// lease is lost and on shutdown.
public final class ChannelConnection: Service, Sendable {
    let keeper: LeaseKeeper
    let health: ChannelHealth
    let probe: @Sendable (Tenure) async -> ChannelProbe
    let logger: Logger
    private let wakeup = Wakeup()
    private let stopping = Flag()

    public init(
        keeper: LeaseKeeper, health: ChannelHealth, logger: Logger,
        probe: @escaping @Sendable (Tenure) async -> ChannelProbe
    ) {
        self.keeper = keeper
        self.health = health
        self.probe = probe
        self.logger = logger
    }

    public func run() async throws {
        keeper.notify(wakeup)
        await ServiceLoop(stopping: stopping, wakeup: wakeup, logger: logger).run { await self.loop() }
        if health.isUp { await health.down(reason: "shutdown", willReconnect: false) }
    }

    private func loop() async {
        var probed: UInt64?
        var failures = 0
        while !stopping.isSet && !Task.isCancelled {
            guard let tenure = keeper.current() else {
                if probed != nil {
                    probed = nil
                    await health.down(reason: "lease_lost", willReconnect: true)
                }
                await wakeup.wait()
                continue
            }
            if probed == tenure.token {
                await wakeup.wait()
                continue
            }
            // A probe in flight ends at a graceful shutdown: a provider that refuses connections keeps the HTTP
            // client retrying for the whole provider timeout, and the lease is released only after this loop.
            let outcome = await cancelWhenGracefulShutdown { await self.probe(tenure) }
            if stopping.isSet || Task.isCancelled { break }
            switch outcome {
            case .ok(let detail):
                probed = tenure.token
                failures = 0
                await health.up(detail: detail, leaseToken: tenure.token)
            case .refused(let code, let message):
                failures += 1
                logger.error(
                    "[\(health.channel)] Credentials refused: \(message)", metadata: ["channel.code": "\(code ?? 0)"])
                await health.down(reason: "auth_failed", code: code, willReconnect: true)
                await wakeup.wait(until: .now + backoff(failures, cap: .seconds(300)))
            case .unreachable(let code, let message):
                failures += 1
                logger.warning(
                    "[\(health.channel)] Provider unreachable: \(message)", metadata: ["channel.code": "\(code ?? 0)"])
                await health.down(reason: "error", code: code, willReconnect: true)
                await wakeup.wait(until: .now + backoff(failures, cap: .seconds(60)))
            }
        }
    }
}

/// 1 s, 2 s, 4 s … up to `cap`.
func backoff(_ failures: Int, cap: Duration) -> Duration {
    let seconds = 1 << min(max(failures - 1, 0), 10)
    return min(.seconds(seconds), cap)
}
