import EventLog
@testable import Projections
import SwitchboardEvents
import Testing

/// The lease deciders called directly on in-memory state: no log, no LMDB, no async.
@Suite struct PureLeaseDeciderTests {
    static let resource = "whatsapp/default"
    static let ownerA = Owner(workerID: "wa-1", instance: "A")
    static let ownerB = Owner(workerID: "wa-2", instance: "B")
    /// Same `WORKER_ID` as A, another process (a rolling deploy).
    static let ownerA2 = Owner(workerID: "wa-1", instance: "A2")
    static let now = LogTimestamp(microseconds: 1_800_000_000_000_000)
    static let ttl = Duration.seconds(45)
    static let nextSeq: UInt64 = 100
    static let token: UInt64 = 42

    /// A's lease under ``token``, expiring `expiresIn` after ``now`` (negative: already past), held or not.
    static func leaseOfA(expiresIn: Duration = .seconds(30), held: Bool = true, owner: Owner = ownerA) -> LeaseState {
        LeaseState(
            resource: resource, owner: owner, token: token, acquiredAt: now.advanced(by: .seconds(-60)),
            expiresAt: now.advanced(by: expiresIn), held: held)
    }

    static func grant(_ lease: LeaseState) -> LeaseGrant {
        LeaseGrant(resource: lease.resource, owner: lease.owner, token: lease.token, expiresAt: lease.expiresAt)
    }

    static func expired(_ lease: LeaseState) -> SwitchboardEvent {
        .leaseExpired(
            LeaseExpired(
                resource: resource, ownerWorkerID: lease.owner.workerID, ownerInstance: lease.owner.instance,
                token: lease.token, expiredAt: lease.expiresAt))
    }

    static func acquired(_ owner: Owner, token: UInt64, previous: Owner?) -> SwitchboardEvent {
        .leaseAcquired(
            LeaseAcquired(
                resource: resource, ownerWorkerID: owner.workerID, ownerInstance: owner.instance, token: token,
                expiresAt: now.advanced(by: ttl), ttlMilliseconds: 45_000,
                previousOwner: previous.map { "\($0.workerID)#\($0.instance)" }))
    }

    static func renewed(_ owner: Owner, token: UInt64) -> SwitchboardEvent {
        .leaseRenewed(
            LeaseRenewed(
                resource: resource, ownerWorkerID: owner.workerID, ownerInstance: owner.instance, token: token,
                expiresAt: now.advanced(by: ttl)))
    }

    static func denied(_ requester: Owner, _ reason: String, holder: LeaseState?, presented: UInt64?)
        -> SwitchboardEvent
    {
        .leaseDenied(
            LeaseDenied(
                resource: resource, requesterWorkerID: requester.workerID, requesterInstance: requester.instance,
                holderWorkerID: holder?.owner.workerID, holderInstance: holder?.owner.instance,
                holderToken: holder?.token, holderExpiresAt: holder?.expiresAt, reason: reason,
                presentedToken: presented))
    }

    static func granted(_ owner: Owner, token: UInt64) -> LeaseDecision {
        .granted(LeaseGrant(resource: resource, owner: owner, token: token, expiresAt: now.advanced(by: ttl)))
    }

    /// One row of a lease decider table.
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var lease: LeaseState?
        var requester: Owner
        /// The presented token (renew and release).
        var token: UInt64 = PureLeaseDeciderTests.token
        var outcome: LeaseDecision
        var events: [SwitchboardEvent]
        var testDescription: String { name }
    }

    // MARK: Acquire

    static let acquireCases: [Case] = {
        let live = leaseOfA()
        let lapsed = leaseOfA(expiresIn: .microseconds(-1))
        let atDeadline = leaseOfA(expiresIn: .zero)
        let released = leaseOfA(held: false)
        return [
            Case(
                name: "free resource: granted, token = nextSeq", lease: nil, requester: ownerA,
                outcome: granted(ownerA, token: nextSeq),
                events: [acquired(ownerA, token: nextSeq, previous: nil)]),
            Case(
                name: "held by another: denied as held, told the holder", lease: live, requester: ownerB,
                outcome: .denied(reason: .held, holder: grant(live)),
                events: [denied(ownerB, "held", holder: live, presented: nil)]),
            Case(
                name: "held by the same worker id in another instance: held", lease: live, requester: ownerA2,
                outcome: .denied(reason: .held, holder: grant(live)),
                events: [denied(ownerA2, "held", holder: live, presented: nil)]),
            Case(
                name: "live at exactly expiresAt: still held", lease: atDeadline, requester: ownerB,
                outcome: .denied(reason: .held, holder: grant(atDeadline)),
                events: [denied(ownerB, "held", holder: atDeadline, presented: nil)]),
            Case(
                name: "expired: the expiry first, token = seq of acquired", lease: lapsed, requester: ownerB,
                outcome: granted(ownerB, token: nextSeq + 1),
                events: [expired(lapsed), acquired(ownerB, token: nextSeq + 1, previous: ownerA)]),
            Case(
                name: "expired, re-acquired by its old owner: a new tenure", lease: lapsed, requester: ownerA,
                outcome: granted(ownerA, token: nextSeq + 1),
                events: [expired(lapsed), acquired(ownerA, token: nextSeq + 1, previous: ownerA)]),
            Case(
                name: "released: granted at once", lease: released, requester: ownerB,
                outcome: granted(ownerB, token: nextSeq),
                events: [acquired(ownerB, token: nextSeq, previous: ownerA)]),
            Case(
                name: "re-acquired by the holder: same token, extended", lease: live, requester: ownerA,
                outcome: granted(ownerA, token: token), events: [renewed(ownerA, token: token)]),
        ]
    }()

    @Test(arguments: acquireCases)
    func acquire(_ row: Case) {
        let decision = LeaseDecider.acquire(
            row.lease, resource: Self.resource, owner: row.requester, ttl: Self.ttl, now: Self.now,
            nextSeq: Self.nextSeq)

        #expect(decision.outcome == row.outcome)
        #expect(decision.events == row.events)
    }

    @Test func theTokenOfAGrantIsTheSeqItsLeaseAcquiredEventGets() throws {
        for lease in [nil, Self.leaseOfA(expiresIn: .seconds(-1)), Self.leaseOfA(held: false)] {
            let decision = LeaseDecider.acquire(
                lease, resource: Self.resource, owner: Self.ownerB, ttl: Self.ttl, now: Self.now,
                nextSeq: Self.nextSeq)

            let index = try #require(
                decision.events.firstIndex {
                    if case .leaseAcquired = $0 { return true }
                    return false
                })
            #expect(decision.outcome.grant?.token == Self.nextSeq + UInt64(index))
        }
    }

    // MARK: Renew

    static let renewCases: [Case] = {
        let live = leaseOfA()
        let lapsed = leaseOfA(expiresIn: .microseconds(-1))
        let released = leaseOfA(held: false)
        return [
            Case(
                name: "own live lease: extended, same token", lease: live, requester: ownerA,
                outcome: granted(ownerA, token: token), events: [renewed(ownerA, token: token)]),
            Case(
                name: "another owner with the current token: not_owner", lease: live, requester: ownerB,
                outcome: .denied(reason: .notOwner, holder: grant(live)),
                events: [denied(ownerB, "not_owner", holder: live, presented: token)]),
            Case(
                name: "same worker id, other instance: not_owner", lease: live, requester: ownerA2,
                outcome: .denied(reason: .notOwner, holder: grant(live)),
                events: [denied(ownerA2, "not_owner", holder: live, presented: token)]),
            Case(
                name: "stale token: stale_token, told the holder", lease: live, requester: ownerA, token: token - 1,
                outcome: .denied(reason: .staleToken, holder: grant(live)),
                events: [denied(ownerA, "stale_token", holder: live, presented: token - 1)]),
            Case(
                name: "expired: the expiry recorded, then denied as expired", lease: lapsed, requester: ownerA,
                outcome: .denied(reason: .expired, holder: nil),
                events: [expired(lapsed), denied(ownerA, "expired", holder: nil, presented: token)]),
            Case(
                name: "released: not_held", lease: released, requester: ownerA,
                outcome: .denied(reason: .notHeld, holder: nil),
                events: [denied(ownerA, "not_held", holder: nil, presented: token)]),
            Case(
                name: "never acquired: not_held", lease: nil, requester: ownerA,
                outcome: .denied(reason: .notHeld, holder: nil),
                events: [denied(ownerA, "not_held", holder: nil, presented: token)]),
        ]
    }()

    @Test(arguments: renewCases)
    func renew(_ row: Case) {
        let decision = LeaseDecider.renew(
            row.lease, resource: Self.resource, owner: row.requester, token: row.token, ttl: Self.ttl, now: Self.now)

        #expect(decision.outcome == row.outcome)
        #expect(decision.events == row.events)
    }

    // MARK: Release

    static let releaseCases: [Case] = {
        let live = leaseOfA()
        let lapsed = leaseOfA(expiresIn: .microseconds(-1))
        let released = leaseOfA(held: false)
        let releasedEvent = SwitchboardEvent.leaseReleased(
            LeaseReleased(resource: resource, ownerWorkerID: "wa-1", ownerInstance: "A", token: token))
        return [
            Case(
                name: "own lease: released", lease: live, requester: ownerA, outcome: .granted(grant(live)),
                events: [releasedEvent]),
            Case(
                name: "own lease past its expiry, nobody took it: released", lease: lapsed, requester: ownerA,
                outcome: .granted(grant(lapsed)), events: [releasedEvent]),
            Case(
                name: "another owner: not_owner, nothing freed", lease: live, requester: ownerB,
                outcome: .denied(reason: .notOwner, holder: grant(live)),
                events: [denied(ownerB, "not_owner", holder: live, presented: token)]),
            Case(
                name: "same worker id, other instance: not_owner", lease: live, requester: ownerA2,
                outcome: .denied(reason: .notOwner, holder: grant(live)),
                events: [denied(ownerA2, "not_owner", holder: live, presented: token)]),
            Case(
                name: "stale token: the new tenure is kept", lease: live, requester: ownerA, token: token - 1,
                outcome: .denied(reason: .staleToken, holder: grant(live)),
                events: [denied(ownerA, "stale_token", holder: live, presented: token - 1)]),
            Case(
                name: "already released: not_held", lease: released, requester: ownerA,
                outcome: .denied(reason: .notHeld, holder: nil),
                events: [denied(ownerA, "not_held", holder: nil, presented: token)]),
            Case(
                name: "never acquired: not_held", lease: nil, requester: ownerA,
                outcome: .denied(reason: .notHeld, holder: nil),
                events: [denied(ownerA, "not_held", holder: nil, presented: token)]),
        ]
    }()

    @Test(arguments: releaseCases)
    func release(_ row: Case) {
        let decision = LeaseDecider.release(
            row.lease, resource: Self.resource, owner: row.requester, token: row.token, now: Self.now)

        #expect(decision.outcome == row.outcome)
        #expect(decision.events == row.events)
    }

    // MARK: The gate of lease-gated commands

    @Test(
        arguments: [
            ("holder, current token, live", leaseOfA(), ownerA, token, nil),
            ("holder at exactly expiresAt", leaseOfA(expiresIn: .zero), ownerA, token, nil),
            ("stale token", leaseOfA(), ownerA, token - 1, LeaseGateRefusal.staleLease),
            ("another instance", leaseOfA(), ownerA2, token, .notOwner),
            ("lapsed, not yet recorded", leaseOfA(expiresIn: .microseconds(-1)), ownerA, token, .expired),
            ("lapsed and recorded", leaseOfA(expiresIn: .microseconds(-1), held: false), ownerA, token, .expired),
            ("released", leaseOfA(held: false), ownerA, token, .notHeld),
            ("never acquired", nil, ownerA, token, .notHeld),
        ] as [(String, LeaseState?, Owner, UInt64, LeaseGateRefusal?)])
    func gate(_ name: String, lease: LeaseState?, owner: Owner, leaseToken: UInt64, refusal: LeaseGateRefusal?) {
        #expect(LeaseDecider.gate(lease, owner: owner, leaseToken: leaseToken, now: Self.now) == refusal, "\(name)")
    }

    @Test func reasonsAreStoredAsTodaysStrings() {
        #expect(
            LeaseDenialReason.allCases.map(\.rawValue) == ["held", "stale_token", "expired", "not_owner", "not_held"])
        #expect(LeaseGateRefusal.allCases.map(\.rawValue) == ["stale_lease", "not_owner", "expired", "not_held"])
    }
}
