import EventLog
import Foundation
import SwitchboardEvents
import Testing

@testable import Projections

/// A job queue view that counts the jobs a claim visits.
final class CountingJobQueue<Base: JobQueueView>: JobQueueView {
    let base: Base
    private(set) var visits = 0
    init(_ base: Base) { self.base = base }

    func forEachClaimable(at now: LogTimestamp, _ body: (JobState) throws -> Bool) throws {
        try base.forEachClaimable(at: now) { job in
            visits += 1
            return try body(job)
        }
    }

    func forEachExpiredClaim(before now: LogTimestamp, _ body: (JobState) throws -> Bool) throws {
        try base.forEachExpiredClaim(before: now) { job in
            visits += 1
            return try body(job)
        }
    }
}

/// A delivery queue view that counts the deliveries a claim visits.
final class CountingDeliveryQueue<Base: DeliveryQueueView>: DeliveryQueueView {
    let base: Base
    private(set) var visits = 0
    init(_ base: Base) { self.base = base }

    func forEachReady(channel: String, accountID: String, _ body: (DeliveryState) throws -> Bool) throws {
        try base.forEachReady(channel: channel, accountID: accountID) { delivery in
            visits += 1
            return try body(delivery)
        }
    }

    func forEachExpiredClaim(
        channel: String, accountID: String, before now: LogTimestamp, _ body: (DeliveryState) throws -> Bool
    ) throws {
        try base.forEachExpiredClaim(channel: channel, accountID: accountID, before: now) { delivery in
            visits += 1
            return try body(delivery)
        }
    }

    func accountSendTimes(channel: String, accountID: String) throws -> [Int64] {
        try base.accountSendTimes(channel: channel, accountID: accountID)
    }

    func recipientSendTimes(channel: String, accountID: String, recipient: String) throws -> [Int64] {
        try base.recipientSendTimes(channel: channel, accountID: accountID, recipient: recipient)
    }
}

extension Switchboard {
    /// Claims a job (reclaims first, as the shell does) and returns the claim with the entries the claim read.
    func countedJobClaim() async throws -> (claim: JobClaim?, visits: Int) {
        let owner = self.owner
        let settings = self.settings.jobs
        return try await log.transact { context in
            _ = try context.commit(
                JobDecider.reclaimExpired(
                    settings: settings, queue: TableJobQueue(tables: context.tables), now: context.now))
            let queue = CountingJobQueue(TableJobQueue(tables: context.tables))
            let claim = try context.commit(
                JobDecider.claim(
                    owner: owner, settings: settings, queue: queue, now: context.now, nextSeq: context.nextSeq))
            return (claim, queue.visits)
        }.value
    }

    /// Claims a delivery of `whatsapp/default` under `leaseToken` and returns the result with the entries read.
    func countedDeliveryClaim(leaseToken: UInt64) async throws -> (result: DeliveryClaimResult, visits: Int) {
        let owner = self.owner
        let settings = self.settings.deliveries
        return try await log.transact { context in
            let lease = try DeliveryShell.loadLease("whatsapp/default", context.tables)
            let queue = CountingDeliveryQueue(TableDeliveryQueue(tables: context.tables))
            let result = try context.commit(
                DeliveryDecider.claim(
                    channel: "whatsapp", accountID: "default", owner: owner, leaseToken: leaseToken, lease: lease,
                    settings: settings, queue: queue, now: context.now, nextSeq: context.nextSeq))
            return (result, queue.visits)
        }.value
    }

    /// Enqueues `count` jobs in transactions of 500.
    func enqueueJobs(_ count: Int, _ make: @escaping @Sendable (Int) -> NewJob) async throws {
        let settings = self.settings.jobs
        for start in stride(from: 0, to: count, by: 500) {
            _ = try await log.transact { context in
                for index in start..<min(count, start + 500) {
                    _ = try JobShell.enqueue(make(index), settings: settings, &context)
                }
            }.value
        }
    }

    /// Every job, whatever its status.
    func allJobs() throws -> [JobState] {
        try JobStatus.allCases.flatMap { try jobs($0) }
    }
}

/// The claim-order rules with thousands waiting: a claim reads only what it may take (the entries it visits stay
/// the same whatever waits), and the order is what docs/architecture.md promises.
@Suite("Claims with a backlog")
struct ClaimBacklogTests {
    static let backlog = 3_000

    @Test func aBusyConversationsBacklogIsNeverVisited() async throws {
        try await withEngine { engine in
            try await engine.enqueueJobs(Self.backlog) {
                NewJob(idempotencyKey: "busy-\($0)", conversationID: "busy")
            }
            let running = try #require(try await engine.claimJob())
            #expect(running.job.idempotencyKey == "busy-0")
            for round in 0..<3 {
                _ = try await engine.enqueueJob(NewJob(idempotencyKey: "fresh-\(round)", conversationID: "c-\(round)"))
                let (claim, visits) = try await engine.countedJobClaim()
                #expect(claim?.job.conversationID == "c-\(round)")
                #expect(visits == 1)
                _ = try await engine.completeJob(try #require(claim).job.jobID, token: try #require(claim).token)
            }
            // Nothing else may run while its job runs; its next job, in order, once it ends.
            #expect(try await engine.countedJobClaim().claim == nil)
            _ = try await engine.completeJob(running.job.jobID, token: running.token)
            for expected in 1...3 {
                let next = try #require(try await engine.claimJob())
                #expect(next.job.idempotencyKey == "busy-\(expected)")
                #expect(try await engine.claimJob() == nil)
                _ = try await engine.completeJob(next.job.jobID, token: next.token)
            }
            #expect(try engine.reader.queueDepths().jobsReady == Self.backlog - 4)
        }
    }

    @Test func aChildRunsWhileItsParentWaitsBehindABacklog() async throws {
        try await withEngine { engine in
            _ = try await engine.enqueueJob(NewJob(jobID: "parent", idempotencyKey: "parent", conversationID: "c"))
            let parent = try #require(try await engine.claimJob())
            try await engine.enqueueJobs(Self.backlog) { NewJob(idempotencyKey: "later-\($0)", conversationID: "c") }
            var child = NewJob(jobID: "child", idempotencyKey: "child", conversationID: "c")
            child.parentJobID = "parent"
            _ = try await engine.enqueueJob(child)

            let (claim, visits) = try await engine.countedJobClaim()
            #expect(claim?.job.jobID == "child" && claim?.job.rootJobID == "parent")
            #expect(visits == 1)
            #expect(try await engine.claimJob() == nil)  // the parent's tree is running: the backlog waits
            _ = try await engine.completeJob("child", token: try #require(claim).token)
            _ = try await engine.completeJob("parent", token: parent.token)
            #expect(try await engine.claimJob()?.job.idempotencyKey == "later-0")
        }
    }

    @Test func jobsInBackoffAreSkippedAPriorityAtATime() async throws {
        var settings = EngineSettings.defaults()
        settings.jobs.retry.baseDelay = .seconds(600)
        settings.jobs.retry.maxDelay = .seconds(600)
        settings.jobs.retry.jitter = 0
        let clock = TestClock()
        try await withEngine(settings: settings, clock: clock) { engine in
            let owner = engine.owner
            let jobSettings = engine.settings.jobs
            for start in stride(from: 0, to: Self.backlog, by: 500) {
                _ = try await engine.log.transact { context in
                    for index in start..<min(Self.backlog, start + 500) {
                        var job = NewJob(idempotencyKey: "retry-\(index)", conversationID: "retry-\(index)")
                        job.priority = 1 + index % 3
                        _ = try JobShell.enqueue(job, settings: jobSettings, &context)
                        let claim = try #require(try JobShell.claim(owner: owner, settings: jobSettings, &context))
                        _ = try JobShell.fail(
                            claim.job.jobID, token: claim.token, owner: owner, reason: "provider_error",
                            message: "503", retryable: true, settings: jobSettings, &context)
                    }
                }.value
            }
            _ = try await engine.enqueueJob(NewJob(idempotencyKey: "fresh", conversationID: "fresh"))
            let (claim, visits) = try await engine.countedJobClaim()
            #expect(claim?.job.conversationID == "fresh")
            #expect(visits == 1)

            // Once due, the retries go first: highest priority, then earliest.
            clock.advance(.seconds(601))
            let first = try #require(try await engine.claimJob())
            #expect(first.job.priority == 3 && first.job.idempotencyKey == "retry-2" && first.attempt == 2)
            let second = try #require(try await engine.claimJob())
            #expect(second.job.priority == 3 && second.job.idempotencyKey == "retry-5")
        }
    }

    @Test func aRateLimitedRecipientsBacklogIsNotVisited() async throws {
        var settings = EngineSettings.defaults()
        settings.deliveries.rateLimits["whatsapp"] = RateLimits(
            perRecipientInterval: .seconds(30), perAccount: (256, .zero))
        let clock = TestClock()
        try await withEngine(settings: settings, clock: clock) { engine in
            let lease = try #require(try await engine.acquireLease("whatsapp/default").grant)
            let deliverySettings = engine.settings.deliveries
            @Sendable func message(_ key: String, to recipient: String) -> NewDelivery {
                NewDelivery(
                    idempotencyKey: key, channel: "whatsapp", accountID: "default", recipient: recipient,
                    conversationID: "whatsapp:default:\(recipient)", text: key)
            }
            _ = try await engine.enqueueDelivery(message("blocked-0", to: "+1"))
            guard
                case .claimed(let first) = try await engine.claimDelivery(
                    channel: "whatsapp", accountID: "default", leaseToken: lease.token)
            else { throw TestFailure("the first message was not claimed") }
            _ = try await engine.attemptDelivery(first.delivery.deliveryID, token: first.token, leaseToken: lease.token)
            _ = try await engine.deliverySent(first.delivery.deliveryID, token: first.token, providerMessageID: "m0")
            for start in stride(from: 1, through: Self.backlog, by: 500) {
                _ = try await engine.log.transact { context in
                    for index in start..<min(Self.backlog + 1, start + 500) {
                        _ = try DeliveryShell.enqueue(
                            message("blocked-\(index)", to: "+1"), settings: deliverySettings, &context)
                    }
                }.value
            }
            _ = try await engine.enqueueDelivery(message("other", to: "+2"))

            let (result, visits) = try await engine.countedDeliveryClaim(leaseToken: lease.token)
            guard case .claimed(let other) = result else { throw TestFailure("expected a claim, got \(result)") }
            #expect(other.delivery.recipient == "+2")
            #expect(visits <= 2)  // the blocked recipient's head, then the one it takes
            let (empty, _) = try await engine.countedDeliveryClaim(leaseToken: lease.token)
            #expect(empty.isEmpty)

            // After the interval, the blocked recipient's messages go in order, one per interval.
            clock.advance(.seconds(31))  // within the lease's 45 s
            guard
                case .claimed(let next) = try await engine.claimDelivery(
                    channel: "whatsapp", accountID: "default", leaseToken: lease.token)
            else { throw TestFailure("the blocked recipient's next message was not claimed") }
            #expect(next.delivery.idempotencyKey == "blocked-1")
        }
    }

    @Test func aRetriedUncertainSendLeadsItsRecipientAgain() async throws {
        var settings = EngineSettings.defaults()
        settings.deliveries.rateLimits = [:]
        settings.deliveries.uncertainPolicy = .retry
        settings.deliveries.visibility = .seconds(30)
        let clock = TestClock()
        try await withEngine(settings: settings, clock: clock) { engine in
            let lease = try #require(try await engine.acquireLease("whatsapp/default").grant)
            for key in ["d-1", "d-2"] {
                _ = try await engine.enqueueDelivery(
                    NewDelivery(
                        idempotencyKey: key, channel: "whatsapp", accountID: "default", recipient: "+1",
                        conversationID: "c", text: key))
            }
            guard
                case .claimed(let claim) = try await engine.claimDelivery(
                    channel: "whatsapp", accountID: "default", leaseToken: lease.token)
            else { throw TestFailure("d-1 was not claimed") }
            _ = try await engine.attemptDelivery(claim.delivery.deliveryID, token: claim.token, leaseToken: lease.token)
            // The claim lapses after the attempt: uncertain, then retried by policy — d-1 heads the FIFO again, in
            // backoff, so d-2 must not overtake it.
            clock.advance(.seconds(31))
            _ = try #require(try await engine.renewLease("whatsapp/default", token: lease.token).grant)
            let result = try await engine.claimDelivery(
                channel: "whatsapp", accountID: "default", leaseToken: lease.token)
            #expect(result.isEmpty, "got \(result)")
            #expect(try engine.delivery(claim.delivery.deliveryID)?.status == .pending)
            clock.advance(.seconds(40))
            _ = try #require(try await engine.renewLease("whatsapp/default", token: lease.token).grant)
            guard
                case .claimed(let again) = try await engine.claimDelivery(
                    channel: "whatsapp", accountID: "default", leaseToken: lease.token)
            else { throw TestFailure("d-1 was not claimed again") }
            #expect(again.delivery.idempotencyKey == "d-1" && again.attempt == 2)
        }
    }

    @Test func anExpiredClaimIsSettledFirstAndTheTokenCountsItsEvents() async throws {
        var settings = EngineSettings.defaults()
        settings.jobs.retry.baseDelay = .zero
        settings.jobs.retry.maxDelay = .zero
        let clock = TestClock()
        try await withEngine(settings: settings, clock: clock) { engine in
            var urgent = NewJob(idempotencyKey: "urgent", conversationID: "c")
            urgent.priority = 5
            _ = try await engine.enqueueJob(urgent)
            _ = try await engine.enqueueJob(NewJob(idempotencyKey: "same-conversation", conversationID: "c"))
            _ = try await engine.enqueueJob(NewJob(idempotencyKey: "other", conversationID: "d"))
            let first = try #require(try await engine.claimJob())
            #expect(first.job.idempotencyKey == "urgent")
            clock.advance(.seconds(61))
            let before = try engine.log.lastSeq()
            // The lapsed claim is settled (failed, retried at once); the job rejoins in claim order, first.
            let again = try #require(try await engine.claimJob())
            #expect(again.job.idempotencyKey == "urgent" && again.attempt == 2)
            #expect(again.token == before + 3)
            #expect(try engine.job(first.job.jobID)?.lastReason == "claim_expired")
            #expect(try await engine.claimJob()?.job.idempotencyKey == "other")
        }
    }

    /// Random enqueues (with priorities, run times and child jobs), claims, completions and failures: every
    /// claim takes what the reference rules (``FakeJobQueue``, computed from every job's state) take.
    @Test(arguments: [14, 15, 16] as [UInt64])
    func claimsFollowTheReferenceRules(seed: UInt64) async throws {
        var settings = EngineSettings.defaults()
        settings.jobs.retry.baseDelay = .seconds(2)
        settings.jobs.retry.maxDelay = .seconds(8)
        settings.jobs.visibility = .seconds(3600)  // no claim lapses: the reference knows nothing of reclaims
        let clock = TestClock()
        try await withEngine(settings: settings, clock: clock) { engine in
            var random = SeededGenerator(seed: seed)
            var running: [JobClaim] = []
            var enqueued = 0
            for step in 0..<600 {
                switch Int.random(in: 0..<10, using: &random) {
                case 0..<4:
                    var job = NewJob(
                        idempotencyKey: "k-\(enqueued)", conversationID: "c-\(Int.random(in: 0..<6, using: &random))")
                    job.priority = [0, 0, 0, 1, 5].randomElement(using: &random)!
                    if Int.random(in: 0..<8, using: &random) == 0 {
                        job.runAt = clock.now.advanced(by: .seconds(Int64.random(in: 1...5, using: &random)))
                    }
                    if let parent = running.randomElement(using: &random), Int.random(in: 0..<3, using: &random) == 0 {
                        job.parentJobID = parent.job.jobID
                        job.conversationID = parent.job.conversationID
                    }
                    _ = try await engine.enqueueJob(job)
                    enqueued += 1
                case 4..<7:
                    let jobs = try engine.allJobs()
                    let reference = try JobDecider.claim(
                        owner: engine.owner, settings: engine.settings.jobs, queue: FakeJobQueue(jobs),
                        now: try engine.logNow(), nextSeq: 0
                    ).outcome?.job.jobID
                    let claim = try await engine.claimJob()
                    #expect(claim?.job.jobID == reference, "step \(step)")
                    if let claim { running.append(claim) }
                case 7..<9 where !running.isEmpty:
                    let claim = running.remove(at: Int.random(in: 0..<running.count, using: &random))
                    _ = try await engine.completeJob(claim.job.jobID, token: claim.token)
                case 9 where !running.isEmpty:
                    let claim = running.remove(at: Int.random(in: 0..<running.count, using: &random))
                    _ = try await engine.failJob(
                        claim.job.jobID, token: claim.token, reason: "provider_error", message: "x", retryable: true)
                default:
                    clock.advance(.seconds(1))
                }
            }
            #expect(enqueued > 100)
            #expect(try InvariantChecker.check(engine.log).violations.isEmpty)
            // The indexes a rebuild builds once from the final states are the ones the transitions wrote.
            let scratch = TemporaryDirectory()
            let rebuilt = try await Rebuild.digest(of: engine.log, scratchDirectory: scratch.path, logger: quietLogger)
            #expect(try engine.digest() == rebuilt)
        }
    }
}

extension ClaimBacklogTests {
    /// Random enqueues to a few recipients, claims, attempts and their outcomes (sent, failed with a provider's
    /// retry time, uncertain and retried by policy): every claim takes what the reference rules
    /// (``FakeDeliveryQueue``, computed from every delivery's state) take, and reports the same retry time.
    @Test(arguments: [7, 8, 9] as [UInt64])
    func deliveryClaimsFollowTheReferenceRules(seed: UInt64) async throws {
        var settings = EngineSettings.defaults()
        settings.lease = try LeaseTiming(ttl: .seconds(3600), heartbeat: .seconds(600))
        settings.deliveries.visibility = .seconds(3600)  // no claim lapses: the reference knows no reclaims
        settings.deliveries.uncertainPolicy = .retry
        settings.deliveries.rateLimits["whatsapp"] = RateLimits(
            perRecipientInterval: .seconds(2), perAccount: (256, .zero))
        let clock = TestClock()
        try await withEngine(settings: settings, clock: clock) { engine in
            var random = SeededGenerator(seed: seed)
            let lease = try #require(try await engine.acquireLease("whatsapp/default").grant)
            var inFlight: [DeliveryClaim] = []
            var enqueued = 0
            var claims = 0
            for step in 0..<500 {
                switch Int.random(in: 0..<10, using: &random) {
                case 0..<4:
                    let recipient = "+\(Int.random(in: 1...5, using: &random))"
                    _ = try await engine.enqueueDelivery(
                        NewDelivery(
                            idempotencyKey: "k-\(enqueued)", channel: "whatsapp", accountID: "default",
                            recipient: recipient, conversationID: "whatsapp:default:\(recipient)", text: "m"))
                    enqueued += 1
                case 4..<7:
                    let account = try DeliveryStatus.allCases.flatMap { try engine.deliveries($0) }
                    let reference = FakeDeliveryQueue(account)
                    let history = try await engine.log.transact { context in
                        let view = TableDeliveryQueue(tables: context.tables)
                        return try (1...5).map {
                            (
                                "+\($0)",
                                try view.recipientSendTimes(
                                    channel: "whatsapp", accountID: "default", recipient: "+\($0)")
                            )
                        }
                    }.value
                    reference.recipientTimes = Dictionary(uniqueKeysWithValues: history)
                    let expected = try DeliveryDecider.claim(
                        channel: "whatsapp", accountID: "default", owner: engine.owner, leaseToken: lease.token,
                        lease: try engine.lease("whatsapp/default"), settings: engine.settings.deliveries,
                        queue: reference, now: try engine.logNow(), nextSeq: 0
                    ).outcome
                    let result = try await engine.claimDelivery(
                        channel: "whatsapp", accountID: "default", leaseToken: lease.token)
                    switch (result, expected) {
                    case (.claimed(let claim), .claimed(let reference)):
                        #expect(claim.delivery.deliveryID == reference.delivery.deliveryID, "step \(step)")
                        inFlight.append(claim)
                        claims += 1
                    case (.empty(let retryAt), .empty(let referenceRetryAt)):
                        #expect(retryAt == referenceRetryAt, "step \(step)")
                    default:
                        Issue.record("step \(step): claimed \(result), the reference \(expected)")
                    }
                case 7..<9 where !inFlight.isEmpty:
                    let claim = inFlight.remove(at: Int.random(in: 0..<inFlight.count, using: &random))
                    let id = claim.delivery.deliveryID
                    _ = try await engine.attemptDelivery(id, token: claim.token, leaseToken: lease.token)
                    switch Int.random(in: 0..<4, using: &random) {
                    case 0:
                        _ = try await engine.deliveryFailed(
                            id, token: claim.token, permanent: false,
                            retryAfter: clock.now.advanced(by: .seconds(3)), errorCode: "130429", message: "slow down")
                    case 1:
                        _ = try await engine.deliveryUncertain(id, token: claim.token, reason: "timeout")
                    default:
                        _ = try await engine.deliverySent(id, token: claim.token, providerMessageID: "wamid.\(id)")
                    }
                default:
                    clock.advance(.seconds(1))
                }
            }
            #expect(enqueued > 100 && claims > 50)
            #expect(try InvariantChecker.check(engine.log).violations.isEmpty)
            let scratch = TemporaryDirectory()
            let rebuilt = try await Rebuild.digest(of: engine.log, scratchDirectory: scratch.path, logger: quietLogger)
            #expect(try engine.digest() == rebuilt)
        }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A small deterministic random generator (SplitMix64), so a failing sequence can be replayed.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension DeliveryClaimResult {
    var isEmpty: Bool {
        if case .empty = self { return true }
        return false
    }
}
