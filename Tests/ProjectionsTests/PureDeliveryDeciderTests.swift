import EventLog
import SwitchboardEvents
@testable import Projections
import Testing

/// The log time the pure delivery tests decide at.
private let t0 = LogTimestamp(microseconds: 2_000_000_000_000)
private let sender = Owner(workerID: "tg-1", instance: "i-1")
private let leaseToken: UInt64 = 11
private let liveLease = LeaseState(
    resource: "telegram/bot", owner: sender, token: leaseToken, acquiredAt: t0.advanced(by: .seconds(-10)),
    expiresAt: t0.advanced(by: .seconds(30)), held: true)

/// A delivery of the `telegram`/`bot` account as the projection would hold it.
func deliveryState(
    _ id: String, to recipient: String = "42", seq: UInt64, status: DeliveryStatus = .pending, attempt: Int = 0,
    maxAttempts: Int = 5, notBefore: LogTimestamp? = nil, token: UInt64 = 0, visibleUntil: LogTimestamp? = nil
) -> DeliveryState {
    DeliveryState(
        deliveryID: id, idempotencyKey: "key-\(id)", channel: "telegram", accountID: "bot", recipient: recipient,
        conversationID: "conv-\(recipient)", kind: "assistant_message", text: "hello", part: 0,
        maxAttempts: maxAttempts, enqueueSeq: seq, status: status, attempt: attempt,
        notBefore: notBefore ?? LogTimestamp(microseconds: 0), token: token,
        leaseToken: status == .pending ? nil : leaseToken, claimedBy: status == .pending ? nil : sender,
        visibleUntil: visibleUntil, lastError: nil, providerMessageID: nil, sourceMessageID: nil,
        replyToExternalID: nil)
}

/// An in-memory ``DeliveryQueueView`` over one account's deliveries and send history.
final class FakeDeliveryQueue: DeliveryQueueView {
    let deliveries: [DeliveryState]
    var accountTimes: [Int64] = []
    var recipientTimes: [String: [Int64]] = [:]
    private(set) var pendingVisits = 0

    init(_ deliveries: [DeliveryState]) { self.deliveries = deliveries }

    private func account(_ channel: String, _ accountID: String) -> [DeliveryState] {
        deliveries.filter { $0.channel == channel && $0.accountID == accountID }.sorted {
            $0.enqueueSeq < $1.enqueueSeq
        }
    }

    /// Each recipient's FIFO head (its oldest unfinished delivery) when pending, earliest `notBefore` first.
    func forEachReady(channel: String, accountID: String, _ body: (DeliveryState) throws -> Bool) throws {
        let unfinished: Set<DeliveryStatus> = [.pending, .claimed, .attempting]
        let heads = Dictionary(
            grouping: account(channel, accountID).filter { unfinished.contains($0.status) }, by: \.recipient
        ).values.compactMap { $0.first }.filter { $0.status == .pending }
            .sorted { ($0.notBefore, $0.enqueueSeq) < ($1.notBefore, $1.enqueueSeq) }
        for delivery in heads {
            pendingVisits += 1
            if try !body(delivery) { return }
        }
    }

    func forEachExpiredClaim(
        channel: String, accountID: String, before now: LogTimestamp, _ body: (DeliveryState) throws -> Bool
    ) throws {
        let inflight = account(channel, accountID).filter { $0.status == .claimed || $0.status == .attempting }
            .sorted {
                ($0.visibleUntil?.microseconds ?? 0, $0.deliveryID) < (
                    $1.visibleUntil?.microseconds ?? 0, $1.deliveryID
                )
            }
        for delivery in inflight where (delivery.visibleUntil?.microseconds ?? 0) < now.microseconds {
            if try !body(delivery) { return }
        }
    }

    func accountSendTimes(channel: String, accountID: String) throws -> [Int64] { accountTimes }

    func recipientSendTimes(channel: String, accountID: String, recipient: String) throws -> [Int64] {
        recipientTimes[recipient] ?? []
    }
}

/// `count` send times ending `ago` before `t0`, a millisecond apart.
private func sends(_ count: Int, endingAgo ago: Duration) -> [Int64] {
    let last = t0.advanced(by: .zero - ago).microseconds
    return (0..<count).map { last - Int64(count - 1 - $0) * 1000 }
}

struct DeliveryClaimCase: Sendable, CustomTestStringConvertible {
    var name: String
    var deliveries: [DeliveryState]
    var accountTimes: [Int64] = []
    var recipientTimes: [String: [Int64]] = [:]
    var expected: DeliveryExpectation
    var testDescription: String { name }
}

enum DeliveryExpectation: Sendable, Equatable {
    case claims(String)
    case empty(retryAt: LogTimestamp?)
}

@Suite struct PureDeliveryDeciderTests {
    static let claimOrder: [DeliveryClaimCase] = [
        DeliveryClaimCase(
            name: "oldest pending first",
            deliveries: [deliveryState("d-2", to: "7", seq: 2), deliveryState("d-1", seq: 1)], expected: .claims("d-1")),
        DeliveryClaimCase(
            name: "FIFO per recipient: a claimed head blocks its recipient",
            deliveries: [
                deliveryState(
                    "d-1", seq: 1, status: .claimed, attempt: 1, token: 5, visibleUntil: t0.advanced(by: .seconds(9))),
                deliveryState("d-2", seq: 2), deliveryState("d-3", to: "7", seq: 3),
            ],
            expected: .claims("d-3")),
        DeliveryClaimCase(
            name: "FIFO per recipient: a backed-off head blocks its successor",
            deliveries: [
                deliveryState("d-1", seq: 1, attempt: 1, notBefore: t0.advanced(by: .seconds(4))),
                deliveryState("d-2", seq: 2),
            ],
            expected: .empty(retryAt: t0.advanced(by: .seconds(4)))),
        DeliveryClaimCase(
            name: "per-recipient interval",
            deliveries: [deliveryState("d-1", seq: 1), deliveryState("d-2", to: "7", seq: 2)],
            recipientTimes: ["42": sends(1, endingAgo: .milliseconds(300))], expected: .claims("d-2")),
        DeliveryClaimCase(
            name: "per-recipient interval, nothing else",
            deliveries: [deliveryState("d-1", seq: 1)], recipientTimes: ["42": sends(1, endingAgo: .milliseconds(300))],
            expected: .empty(retryAt: t0.advanced(by: .milliseconds(700)))),
        DeliveryClaimCase(
            name: "group window of 20 a minute",
            deliveries: [deliveryState("d-1", to: "-100", seq: 1)],
            recipientTimes: ["-100": sends(20, endingAgo: .seconds(2))],
            expected: .empty(retryAt: t0.advanced(by: .seconds(58)).advanced(by: .milliseconds(-19)))),
        DeliveryClaimCase(
            name: "account window of 30 a second",
            deliveries: [deliveryState("d-1", seq: 1)], accountTimes: sends(30, endingAgo: .milliseconds(100)),
            expected: .empty(retryAt: t0.advanced(by: .milliseconds(900)).advanced(by: .milliseconds(-29)))),
        DeliveryClaimCase(
            name: "sends older than the account window do not count",
            deliveries: [deliveryState("d-1", seq: 1)], accountTimes: sends(30, endingAgo: .seconds(2)),
            expected: .claims("d-1")),
        DeliveryClaimCase(
            name: "a retried head goes by its retry time, not its enqueue order",
            deliveries: [
                deliveryState("d-1", seq: 1, attempt: 1, notBefore: t0.advanced(by: .seconds(-1))),
                deliveryState("d-2", to: "7", seq: 2, notBefore: t0.advanced(by: .seconds(-3))),
            ],
            expected: .claims("d-2")),
        DeliveryClaimCase(
            name: "earliest retry time of several",
            deliveries: [
                deliveryState("d-1", seq: 1, attempt: 1, notBefore: t0.advanced(by: .seconds(8))),
                deliveryState("d-2", to: "7", seq: 2),
            ],
            recipientTimes: ["7": sends(1, endingAgo: .milliseconds(100))],
            expected: .empty(retryAt: t0.advanced(by: .milliseconds(900)))),
    ]

    @Test(arguments: claimOrder)
    func claimTakesTheNextDeliverableMessage(_ test: DeliveryClaimCase) throws {
        let queue = FakeDeliveryQueue(test.deliveries)
        queue.accountTimes = test.accountTimes
        queue.recipientTimes = test.recipientTimes
        let settings = DeliverySettings.withProviderLimits

        let decision = try DeliveryDecider.claim(
            channel: "telegram", accountID: "bot", owner: sender, leaseToken: leaseToken, lease: liveLease,
            settings: settings, queue: queue, now: t0, nextSeq: 300)

        switch test.expected {
        case .claims(let id):
            let delivery = try #require(test.deliveries.first { $0.deliveryID == id })
            let visibleUntil = t0.advanced(by: settings.visibility)
            #expect(
                decision.events == [
                    .deliveryClaimed(
                        DeliveryClaimed(
                            deliveryID: id, workerID: sender.workerID, ownerInstance: sender.instance, token: 300,
                            leaseResource: "telegram/bot", leaseToken: leaseToken, attempt: delivery.attempt + 1,
                            visibleUntil: visibleUntil))
                ])
            #expect(decision.correlationIDs == [delivery.conversationID])
            guard case .claimed(let claim) = decision.outcome else {
                Issue.record("expected a claim, got \(decision.outcome)")
                return
            }
            #expect(claim.token == 300 && claim.leaseToken == leaseToken && claim.visibleUntil == visibleUntil)
            #expect(claim.delivery.status == .claimed && claim.delivery.deliveryID == id)
        case .empty(let retryAt):
            #expect(decision.outcome == .empty(retryAt: retryAt))
            #expect(decision.events.isEmpty)
        }
    }

    @Test func claimStopsAtTheFirstDeliverableMessage() throws {
        let queue = FakeDeliveryQueue((1...40).map { deliveryState("d-\($0)", to: "r\($0)", seq: UInt64($0)) })

        let decision = try DeliveryDecider.claim(
            channel: "telegram", accountID: "bot", owner: sender, leaseToken: leaseToken, lease: liveLease,
            settings: DeliverySettings(), queue: queue, now: t0, nextSeq: 1)

        #expect(decision.outcome.claimedID == "d-1")
        #expect(queue.pendingVisits == 1)
    }

    struct LeaseCase: Sendable, CustomTestStringConvertible {
        var name: String
        var lease: LeaseState?
        var reason: DeliveryRejection
        var testDescription: String { name }
    }

    static let leaseCases: [LeaseCase] = {
        var other = liveLease
        other.owner = Owner(workerID: "tg-2", instance: "i-2")
        var newer = liveLease
        newer.token = leaseToken + 5
        var lapsed = liveLease
        lapsed.expiresAt = t0.advanced(by: .microseconds(-1))
        var released = liveLease
        released.held = false
        return [
            LeaseCase(name: "never acquired", lease: nil, reason: .notHeld),
            LeaseCase(name: "another tenure", lease: newer, reason: .staleLease),
            LeaseCase(name: "another owner", lease: other, reason: .notOwner),
            LeaseCase(name: "expired", lease: lapsed, reason: .expired),
            LeaseCase(name: "released", lease: released, reason: .notHeld),
        ]
    }()

    @Test(arguments: leaseCases)
    func claimWithoutTheLiveLeaseIsRefused(_ test: LeaseCase) throws {
        let decision = try DeliveryDecider.claim(
            channel: "telegram", accountID: "bot", owner: sender, leaseToken: leaseToken, lease: test.lease,
            settings: DeliverySettings(), queue: FakeDeliveryQueue([deliveryState("d-1", seq: 1)]), now: t0,
            nextSeq: 1)

        #expect(decision.outcome == .rejected(reason: test.reason))
        #expect(
            decision.events == [
                .commandRejected(
                    CommandRejected(
                        command: "delivery.claim", subject: "telegram/bot", reason: test.reason.rawValue,
                        presentedToken: nil, currentToken: nil, presentedLeaseToken: leaseToken,
                        workerID: sender.workerID, instance: sender.instance))
            ])
    }

    @Test(arguments: [UncertainPolicy.hold, .retry])
    func expiredClaimsAreSettledByTheReclaim(_ policy: UncertainPolicy) throws {
        var settings = DeliverySettings()
        settings.uncertainPolicy = policy
        let gone = t0.advanced(by: .seconds(-1))
        let claimed = deliveryState("d-1", seq: 1, status: .claimed, attempt: 1, token: 5, visibleUntil: gone)
        let attempting = deliveryState(
            "d-2", to: "7", seq: 2, status: .attempting, attempt: 1, token: 6, visibleUntil: gone)
        let live = deliveryState(
            "d-3", to: "9", seq: 3, status: .claimed, attempt: 1, token: 7, visibleUntil: t0)

        let decision = try DeliveryDecider.reclaimExpired(
            channel: "telegram", accountID: "bot", settings: settings,
            queue: FakeDeliveryQueue([claimed, attempting, live]), now: t0)

        let backoff1 = t0.advanced(by: settings.retry.delay(afterAttempt: 1, key: "d-1"))
        let backoff2 = t0.advanced(by: settings.retry.delay(afterAttempt: 1, key: "d-2"))
        var expected: [SwitchboardEvent] = [
            .deliveryFailed(
                DeliveryFailed(
                    deliveryID: "d-1", token: 5, attempt: 1, permanent: false, retryAfter: backoff1,
                    errorCode: "claim_expired", message: "claim expired before the send was attempted")),
            .deliveryUncertain(
                DeliveryUncertain(
                    deliveryID: "d-2", token: 6, attempt: 1, reason: "claim expired after the send was attempted")),
        ]
        if policy == .retry {
            expected.append(
                .deliveryFailed(
                    DeliveryFailed(
                        deliveryID: "d-2", token: 6, attempt: 1, permanent: false, retryAfter: backoff2,
                        errorCode: "uncertain",
                        message: "retrying an uncertain send (policy retry): the recipient may get a duplicate")))
        }
        #expect(decision.events == expected)
        #expect(decision.outcome == 2)
    }

    // A new tenure of the account's lease settles the claims of earlier tenures at once, however long they
    // would stay visible: never attempted → pending again without backoff; attempted → uncertain (by policy).
    // Claims of the new tenure itself, and of other accounts, are left alone.
    @Test(arguments: [UncertainPolicy.hold, .retry])
    func aNewTenureSettlesTheClaimsOfEarlierTenures(_ policy: UncertainPolicy) throws {
        var settings = DeliverySettings()
        settings.uncertainPolicy = policy
        let later = t0.advanced(by: .seconds(100))
        let claimed = deliveryState("d-1", seq: 1, status: .claimed, attempt: 1, token: 5, visibleUntil: later)
        let attempting = deliveryState(
            "d-2", to: "7", seq: 2, status: .attempting, attempt: 1, token: 6, visibleUntil: later)
        var current = deliveryState("d-3", to: "9", seq: 3, status: .claimed, attempt: 1, token: 7, visibleUntil: later)
        current.leaseToken = leaseToken + 1
        var otherAccount = deliveryState(
            "d-4", to: "9", seq: 4, status: .attempting, attempt: 1, token: 8, visibleUntil: later)
        otherAccount.accountID = "other"

        let decision = try DeliveryDecider.settleEarlierTenures(
            channel: "telegram", accountID: "bot", leaseToken: leaseToken + 1, settings: settings,
            queue: FakeDeliveryQueue([claimed, attempting, current, otherAccount]), now: t0)

        var expected: [SwitchboardEvent] = [
            .deliveryFailed(
                DeliveryFailed(
                    deliveryID: "d-1", token: 5, attempt: 1, permanent: false, retryAfter: t0,
                    errorCode: "tenure_ended", message: "claimed under an earlier lease tenure and never attempted")),
            .deliveryUncertain(
                DeliveryUncertain(
                    deliveryID: "d-2", token: 6, attempt: 1, reason: "the lease tenure it was attempted under ended")),
        ]
        if policy == .retry {
            expected.append(
                .deliveryFailed(
                    DeliveryFailed(
                        deliveryID: "d-2", token: 6, attempt: 1, permanent: false,
                        retryAfter: t0.advanced(by: settings.retry.delay(afterAttempt: 1, key: "d-2")),
                        errorCode: "uncertain",
                        message: "retrying an uncertain send (policy retry): the recipient may get a duplicate")))
        }
        #expect(decision.events == expected)
        #expect(decision.outcome == 2)
        // The same tenure (a renewal by acquire) settles nothing.
        let renewal = try DeliveryDecider.settleEarlierTenures(
            channel: "telegram", accountID: "bot", leaseToken: leaseToken, settings: settings,
            queue: FakeDeliveryQueue([claimed, attempting]), now: t0)
        #expect(renewal.events.isEmpty)
    }

    enum Command: String, CaseIterable, Sendable {
        case attempt, sent, failed, uncertain
    }

    struct FencingCase: Sendable, CustomTestStringConvertible {
        var name: String
        var delivery: DeliveryState?
        var token: UInt64
        var lease: LeaseState? = liveLease
        /// The refusal of each command (`nil`: accepted).
        var reasons: [Command: DeliveryRejection?]
        var testDescription: String { name }
    }

    static let fencing: [FencingCase] = {
        let claimed = deliveryState("d-1", seq: 1, status: .claimed, attempt: 1, token: 5, visibleUntil: t0)
        let attempting = deliveryState("d-1", seq: 1, status: .attempting, attempt: 1, token: 5, visibleUntil: t0)
        let uncertain = deliveryState("d-1", seq: 1, status: .uncertain, attempt: 1, token: 5)
        var newerLease = liveLease
        newerLease.token = leaseToken + 1
        return [
            FencingCase(
                name: "unknown delivery", delivery: nil, token: 5,
                reasons: [.attempt: .unknown, .sent: .unknown, .failed: .unknown, .uncertain: .unknown]),
            FencingCase(
                name: "stale claim token", delivery: attempting, token: 4,
                reasons: [.attempt: .staleToken, .sent: .staleToken, .failed: .staleToken, .uncertain: .staleToken]),
            FencingCase(
                name: "claimed, current tokens", delivery: claimed, token: 5,
                reasons: [.attempt: nil, .sent: .wrongState, .failed: nil, .uncertain: .wrongState]),
            FencingCase(
                name: "claimed, stale lease", delivery: claimed, token: 5, lease: newerLease,
                reasons: [.attempt: .staleLease, .sent: .wrongState, .failed: nil, .uncertain: .wrongState]),
            FencingCase(
                name: "attempting", delivery: attempting, token: 5,
                reasons: [.attempt: .wrongState, .sent: nil, .failed: nil, .uncertain: nil]),
            FencingCase(
                name: "uncertain, a late send is recorded", delivery: uncertain, token: 5,
                reasons: [.attempt: .wrongState, .sent: nil, .failed: .wrongState, .uncertain: .wrongState]),
        ]
    }()

    @Test(arguments: fencing, Command.allCases)
    func deliveryCommandsAreFencedByClaimAndLeaseTokens(_ test: FencingCase, _ command: Command) throws {
        let settings = DeliverySettings()
        let decision: Decision<DeliveryCommandResult>
        switch command {
        case .attempt:
            decision = DeliveryDecider.attempt(
                test.delivery, deliveryID: "d-1", token: test.token, leaseToken: leaseToken, owner: sender,
                lease: test.lease, now: t0)
        case .sent:
            decision = DeliveryDecider.sent(
                test.delivery, deliveryID: "d-1", token: test.token, providerMessageID: "m-1", owner: sender)
        case .failed:
            decision = DeliveryDecider.failed(
                test.delivery, deliveryID: "d-1", token: test.token, owner: sender, permanent: true, retryAfter: nil,
                errorCode: "400", message: "bad chat", settings: settings, now: t0)
        case .uncertain:
            decision = DeliveryDecider.uncertain(
                test.delivery, deliveryID: "d-1", token: test.token, owner: sender, reason: "timeout",
                settings: settings, now: t0)
        }
        let expectedReason = try #require(test.reasons[command])
        if let reason = expectedReason {
            #expect(decision.outcome == .rejected(reason: reason))
            #expect(
                decision.events == [
                    .commandRejected(
                        CommandRejected(
                            command: "delivery.\(command.rawValue)", subject: "d-1", reason: reason.rawValue,
                            presentedToken: test.token, currentToken: test.delivery?.token,
                            presentedLeaseToken: command == .attempt ? leaseToken : nil, workerID: sender.workerID,
                            instance: sender.instance))
                ])
            return
        }
        #expect(decision.outcome == .accepted)
        let accepted: SwitchboardEvent =
            switch command {
            case .attempt:
                .deliveryAttempted(DeliveryAttempted(deliveryID: "d-1", token: 5, leaseToken: leaseToken, attempt: 1))
            case .sent:
                .deliverySent(
                    DeliverySent(
                        deliveryID: "d-1", token: 5, leaseToken: leaseToken, attempt: 1, providerMessageID: "m-1"))
            case .failed:
                .deliveryFailed(
                    DeliveryFailed(
                        deliveryID: "d-1", token: 5, attempt: 1, permanent: true, retryAfter: nil, errorCode: "400",
                        message: "bad chat"))
            case .uncertain:
                .deliveryUncertain(DeliveryUncertain(deliveryID: "d-1", token: 5, attempt: 1, reason: "timeout"))
            }
        #expect(decision.events == [accepted])
        #expect(decision.correlationIDs == ["conv-42"])
    }

    struct RetryCase: Sendable, CustomTestStringConvertible {
        var name: String
        var attempt: Int
        var permanent: Bool
        var retryAfter: Duration?
        /// The recorded `retryAfter`: the backoff, the provider's when later, or none when failed for good.
        var expected: Expected
        enum Expected: Sendable { case backoff, providers, none }
        var testDescription: String { name }
    }

    @Test(arguments: [
        RetryCase(name: "backoff", attempt: 1, permanent: false, retryAfter: nil, expected: .backoff),
        RetryCase(
            name: "provider's later retryAfter", attempt: 1, permanent: false, retryAfter: .seconds(90),
            expected: .providers),
        RetryCase(
            name: "provider's earlier retryAfter", attempt: 1, permanent: false, retryAfter: .zero, expected: .backoff),
        RetryCase(name: "permanent", attempt: 1, permanent: true, retryAfter: .seconds(90), expected: .none),
        RetryCase(name: "out of attempts", attempt: 5, permanent: false, retryAfter: nil, expected: .none),
    ])
    func failedIsRetriedAfterTheLaterOfBackoffAndRetryAfter(_ test: RetryCase) {
        let settings = DeliverySettings()
        let delivery = deliveryState(
            "d-1", seq: 1, status: .attempting, attempt: test.attempt, token: 5, visibleUntil: t0)
        let retryAfter = test.retryAfter.map { t0.advanced(by: $0) }

        let decision = DeliveryDecider.failed(
            delivery, deliveryID: "d-1", token: 5, owner: sender, permanent: test.permanent, retryAfter: retryAfter,
            errorCode: "429", message: "slow down", settings: settings, now: t0)

        let recorded: LogTimestamp? =
            switch test.expected {
            case .backoff: t0.advanced(by: settings.retry.delay(afterAttempt: test.attempt, key: "d-1"))
            case .providers: retryAfter
            case .none: nil
            }
        #expect(decision.outcome == .accepted)
        #expect(
            decision.events == [
                .deliveryFailed(
                    DeliveryFailed(
                        deliveryID: "d-1", token: 5, attempt: test.attempt, permanent: recorded == nil,
                        retryAfter: recorded, errorCode: "429", message: "slow down"))
            ])
    }

    @Test func enqueueReturnsATypedResult() throws {
        let delivery = NewDelivery(
            idempotencyKey: "msg-1:0", channel: "telegram", accountID: "bot", recipient: "42", conversationID: "c",
            text: "hi")

        let fresh = try DeliveryDecider.enqueue(delivery, existingDeliveryID: nil, settings: DeliverySettings())
        let repeated = try DeliveryDecider.enqueue(delivery, existingDeliveryID: "d-0", settings: DeliverySettings())

        #expect(fresh.outcome == DeliveryEnqueue(deliveryID: delivery.deliveryID, duplicate: false))
        #expect(fresh.events.count == 1 && fresh.correlationIDs == ["c"])
        #expect(repeated.outcome == DeliveryEnqueue(deliveryID: "d-0", duplicate: true) && repeated.events.isEmpty)
    }
}

extension DeliveryClaimResult {
    /// The claimed delivery's id, when the result is a claim.
    fileprivate var claimedID: String? {
        if case .claimed(let claim) = self { return claim.delivery.deliveryID }
        return nil
    }
}
