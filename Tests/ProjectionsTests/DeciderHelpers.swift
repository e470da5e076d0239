import EventLog
import SwitchboardEvents
import Foundation
import Projections
import Testing

/// One decider test's world: its own temporary directory, a settable log clock and an engine on a fresh log.
struct DeciderFixture {
    let directory = TemporaryDirectory()
    let clock = TestClock()
    let engine: Switchboard

    init(worker: String = "tester", settings: EngineSettings = .defaults()) throws {
        engine = try openEngine(directory.path, worker: worker, settings: settings, clock: clock)
    }

    /// The log time the next command will run at (the clock only moves forward).
    var now: LogTimestamp { clock.now }

    /// Moves the clock to `time` (which must not be in the past).
    func advance(to time: LogTimestamp) {
        precondition(time >= clock.now, "the test clock never goes back")
        clock.advance(time.duration(since: clock.now))
    }

    /// Closes the engine; the directory is kept alive until then.
    func close() async {
        await engine.close()
        withExtendedLifetime(directory) {}
    }
}

extension EngineSettings {
    /// The defaults with a lease long enough (1 h) that tests moving time by minutes keep the account lease, and
    /// the providers' rate limits.
    static func longLease() throws -> EngineSettings {
        var settings = EngineSettings.defaults()
        settings.lease = try LeaseTiming(ttl: .seconds(3600), heartbeat: .seconds(60))
        settings.deliveries = .withProviderLimits
        return settings
    }
}

extension DeliverySettings {
    /// The defaults with the providers' limits as the agent gives them (Workers' `Channel.rateLimits`, which this
    /// module cannot see): Telegram 1 s per chat, 20 a minute per group (negative ids), 30/s; WhatsApp 6 s per user,
    /// 80/s. `ChannelTypeTests` checks the agent's are these.
    static var withProviderLimits: DeliverySettings {
        var settings = DeliverySettings()
        settings.rateLimits = [
            "telegram": RateLimits(
                perRecipientInterval: .seconds(1), perGroupWindow: (20, .seconds(60)), perAccount: (30, .seconds(1)),
                isGroup: { $0.hasPrefix("-") }),
            "whatsapp": RateLimits(perRecipientInterval: .seconds(6), perAccount: (80, .seconds(1))),
        ]
        return settings
    }
}

extension Switchboard {
    /// Every record of `type`, in log order.
    func recorded(_ type: String) throws -> [Record] {
        try log.records(from: 1).filter { $0.type == type }
    }

    /// Every event of `kind`, decoded, in log order.
    func recorded<E: EventPayload>(_ kind: E.Type) throws -> [E] {
        try recorded(E.eventType).map { try $0.decode(E.self) }
    }

    /// The seq of the only record of `type`; fails the test when there is not exactly one.
    func onlySeq(of type: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> UInt64 {
        let records = try recorded(type)
        #expect(records.count == 1, "\(records.count) \(type) records", sourceLocation: sourceLocation)
        return try #require(records.first, sourceLocation: sourceLocation).seq
    }

    /// Claims a job, failing the test when nothing is claimable.
    func mustClaimJob(as owner: Owner? = nil, sourceLocation: SourceLocation = #_sourceLocation) async throws
        -> JobClaim
    {
        let claim = try await claimJob(as: owner)
        return try #require(claim, "expected a claimable job", sourceLocation: sourceLocation)
    }

    /// Claims a delivery of `channel`/`accountID`, failing the test when the result is not a claim.
    func mustClaimDelivery(
        channel: String, accountID: String, leaseToken: UInt64, as owner: Owner? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> DeliveryClaim {
        let result = try await claimDelivery(channel: channel, accountID: accountID, leaseToken: leaseToken, as: owner)
        return try #require(result.claimed, "expected a claim, got \(result)", sourceLocation: sourceLocation)
    }

    /// Acquires `resource` and returns the fencing token, failing the test when denied.
    func mustAcquire(_ resource: String, as owner: Owner? = nil, sourceLocation: SourceLocation = #_sourceLocation)
        async throws -> UInt64
    {
        let decision = try await acquireLease(resource, as: owner)
        return try #require(decision.grant, "lease denied: \(decision)", sourceLocation: sourceLocation).token
    }
}

extension DeliveryClaimResult {
    /// The claim, when the result is one.
    var claimed: DeliveryClaim? {
        if case .claimed(let claim) = self { return claim }
        return nil
    }
}

extension IngestResult {
    /// The accepted message's fields, when accepted.
    var accepted: (messageSeq: UInt64, conversationID: String, jobID: String?, contactStatus: ContactStatus)? {
        if case .accepted(let seq, let conversation, let job, let status) = self {
            return (seq, conversation, job, status)
        }
        return nil
    }
}

extension Duration {
    /// `self` scaled by 1.2: the top of the default 20 % retry jitter.
    var withFullJitter: Duration { self * 6 / 5 }
}
