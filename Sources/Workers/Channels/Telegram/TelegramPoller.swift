import EventLog
import Foundation
import Logging
import Projections
import ServiceLifecycle
import Synchronization

/// Telegram long polling (`TELEGRAM_MODE=polling`), run by the holder of the bot's lease only (Telegram serves
/// one `getUpdates` consumer at a time).
///
/// Each tenure starts with `getMe` (the bot identity, kept in the session as `bot`; a different bot resets the
/// offset) and the stored `offset`. Each batch of updates is ingested in one transaction, and only then the next
/// offset is written to the session under the lease token — so an update is confirmed to Telegram (by the next
/// `getUpdates` with a higher offset) only after it is in the log. A crash between the two re-reads the batch,
/// which the ingress deduplicates. Works without any public URL.
public final class TelegramPoller: Service, Sendable {
    let keeper: LeaseKeeper
    let session: ChannelSession
    let api: TelegramBotAPI
    let inbound: TelegramInbound
    let ingress: ChannelIngress
    let health: ChannelHealth
    let pollTimeout: Int
    let logger: Logger
    private let wakeup = Wakeup()
    private let stopping = Flag()
    private let inFlight = Mutex<Task<Result<[TelegramUpdate], TelegramAPIError>, Never>?>(nil)

    public init(
        keeper: LeaseKeeper, session: ChannelSession, api: TelegramBotAPI, inbound: TelegramInbound,
        ingress: ChannelIngress, health: ChannelHealth, pollTimeout: Int, logger: Logger
    ) {
        self.keeper = keeper
        self.session = session
        self.api = api
        self.inbound = inbound
        self.ingress = ingress
        self.health = health
        self.pollTimeout = pollTimeout
        self.logger = logger
    }

    public func run() async throws {
        keeper.notify(wakeup)
        // A long poll in flight would hold the shutdown for its timeout: its updates stay unconfirmed.
        await ServiceLoop(stopping: stopping, wakeup: wakeup, logger: logger).run(
            onShutdown: { self.inFlight.withLock { $0 }?.cancel() }
        ) {
            await self.loop()
        }
        if health.isUp { await health.down(reason: "shutdown", willReconnect: false) }
    }

    /// The session entry of the bot identity.
    struct Identity: Codable, Equatable {
        var id: Int64
        var username: String?
    }

    private func loop() async {
        var active: UInt64?
        var offset: Int64?
        var failures = 0
        while !stopping.isSet && !Task.isCancelled {
            guard let tenure = keeper.current() else {
                if active != nil {
                    active = nil
                    logger.warning("[telegram] Polling paused — lease lost for account '\(keeper.accountID)'")
                    await health.down(reason: "lease_lost", willReconnect: true)
                }
                await wakeup.wait()
                continue
            }
            if active != tenure.token {
                guard let start = await begin(tenure) else {
                    failures += 1
                    await wakeup.wait(until: .now + backoff(failures, cap: .seconds(60)))
                    continue
                }
                offset = start
                active = tenure.token
                logger.info(
                    "[telegram] Polling for updates (offset \(offset.map { "\($0)" } ?? "none"))",
                    metadata: ["lease.token": "\(tenure.token)"])
            }
            let poll = Task { [api, pollTimeout, offset] in await api.getUpdates(offset: offset, timeout: pollTimeout) }
            inFlight.withLock { $0 = poll }
            if stopping.isSet { poll.cancel() }
            let result = await poll.value
            inFlight.withLock { $0 = nil }
            if stopping.isSet { break }
            switch result {
            case .failure(let error):
                failures += 1
                await failed(error, failures: failures)
            case .success(let updates):
                failures = 0
                await health.up(detail: "long_poll", leaseToken: tenure.token)
                guard !updates.isEmpty else { continue }
                if let next = await record(updates, under: tenure) { offset = next }
            }
        }
    }

    /// Reads the identity and offset for a new tenure; `nil` (after recording why) when `getMe` fails.
    private func begin(_ tenure: Tenure) async -> Int64?? {
        switch await api.getMe() {
        case .failure(let error):
            await failed(error, failures: 1)
            return nil
        case .success(let me):
            let entries = session.entries()
            let stored = entries["bot"].flatMap { try? JSONDecoder().decode(Identity.self, from: $0) }
            var offset = entries["offset"].flatMap { Int64(String(decoding: $0, as: UTF8.self)) }
            let identity = Identity(id: me.id, username: me.username)
            if stored != identity {
                var changes: SessionChanges = ["bot": try? JSONEncoder().encode(identity)]
                if let stored, stored.id != me.id {
                    // Offsets belong to one bot: another bot starts from its own pending updates.
                    logger.warning("[telegram] The bot changed (was \(stored.id), now \(me.id)): offset reset")
                    changes["offset"] = .some(nil)
                    offset = nil
                }
                await session.write(changes, under: tenure)
            }
            inbound.groups.identity.set(id: me.id, username: me.username, firstName: me.first_name)
            logger.info("[telegram] Bot @\(me.username ?? "\(me.id)") for account '\(keeper.accountID)'")
            return .some(offset)
        }
    }

    /// Ingests a batch, then writes the next offset; returns it, or `nil` when the batch must be read again.
    private func record(_ updates: [TelegramUpdate], under tenure: Tenure) async -> Int64? {
        var items: [IngressItem] = []
        for update in updates {
            let (item, migration) = inbound.item(for: update)
            if let migration { await inbound.chats.migrated(from: migration.from, to: migration.to) }
            if let item { items.append(item) }
        }
        do {
            try await ingress.ingest(items, channel: Channel.telegram.rawValue)
        } catch {
            logger.error("[telegram] Updates not recorded (read again)", metadata: ["error": "\(error)"])
            await wakeup.wait(until: .now + .seconds(1))
            return nil
        }
        guard let last = updates.compactMap(\.updateID).max() else { return nil }
        let next = last + 1
        guard await session.write(["offset": Data(String(next).utf8)], under: tenure) else { return nil }
        return next
    }

    private func failed(_ error: TelegramAPIError, failures: Int) async {
        let code = error.errorCode ?? error.status
        switch error.code {
        case .refused where code == 409:
            logger.error(
                "[telegram] getUpdates refused: a webhook is set for this bot — run `agent telegram delete-webhook` or use TELEGRAM_MODE=webhook"
            )
            await health.down(reason: "webhook_active", code: 409, willReconnect: true)
            await wakeup.wait(until: .now + .seconds(30))
        case .refused where code == 401 || code == 404:
            logger.error("[telegram] The bot token was refused (\(error.message))")
            await health.down(reason: "auth_failed", code: code, willReconnect: true)
            await wakeup.wait(until: .now + backoff(failures, cap: .seconds(300)))
        case .refused where code == 429:
            await wakeup.wait(until: .now + .seconds(error.retryAfter ?? 5))
        case .refused, .notSent, .uncertain, .badResponse:
            logger.warning("[telegram] getUpdates failed: \(error.message)")
            await health.down(reason: "error", code: code, willReconnect: true)
            await wakeup.wait(until: .now + backoff(failures, cap: .seconds(30)))
        }
    }
}
