import EventLog
import Foundation
@testable import Projections
import SwitchboardEvents
import Testing

/// The session decider called directly on in-memory state: no log, no LMDB, no async.
@Suite struct PureSessionDeciderTests {
    static let namespace = "whatsapp/default"
    static let holder = Owner(workerID: "wa-1", instance: "A")
    static let now = LogTimestamp(microseconds: 1_800_000_000_000_000)
    static let token: UInt64 = 42

    static func lease(expiresIn: Duration = .seconds(30), held: Bool = true) -> LeaseState {
        LeaseState(
            resource: namespace, owner: holder, token: token, acquiredAt: now.advanced(by: .seconds(-10)),
            expiresAt: now.advanced(by: expiresIn), held: held)
    }

    static func rejected(_ reason: String, by owner: Owner, leaseToken: UInt64) -> SwitchboardEvent {
        .commandRejected(
            CommandRejected(
                command: "session.write", subject: namespace, reason: reason, presentedToken: nil, currentToken: nil,
                presentedLeaseToken: leaseToken, workerID: owner.workerID, instance: owner.instance))
    }

    @Test func theHolderWritesTheBatchInKeyOrderSetsAndRemoves() throws {
        let changes: SessionChanges = ["creds": Data([1, 2]), "old": nil, "app-state": Data([3])]

        let decision = try SessionDecider.write(
            Self.lease(), namespace: Self.namespace, changes: changes, owner: Self.holder, leaseToken: Self.token,
            sealer: try SessionSealer(keyBase64: nil), now: Self.now)

        #expect(decision.outcome == .accepted)
        #expect(
            decision.events == [
                .sessionEntrySet(
                    SessionEntrySet(
                        namespace: Self.namespace, key: "app-state", value: Data([3]), encrypted: false,
                        leaseToken: Self.token)),
                .sessionEntrySet(
                    SessionEntrySet(
                        namespace: Self.namespace, key: "creds", value: Data([1, 2]), encrypted: false,
                        leaseToken: Self.token)),
                .sessionEntryRemoved(
                    SessionEntryRemoved(namespace: Self.namespace, key: "old", leaseToken: Self.token)),
            ])
    }

    @Test func withAKeyValuesAreSealedToTheirNamespaceAndEntry() throws {
        let sealer = try SessionSealer(keyBase64: Data((0..<32).map { UInt8($0) }).base64EncodedString())
        let secret = Data("noise-key-SECRET".utf8)

        let decision = try SessionDecider.write(
            Self.lease(), namespace: Self.namespace, changes: ["creds": secret], owner: Self.holder,
            leaseToken: Self.token, sealer: sealer, now: Self.now)

        guard case .sessionEntrySet(let set) = try #require(decision.events.first), decision.events.count == 1 else {
            Issue.record("expected one session.entry.set, got \(decision.events)")
            return
        }
        #expect(set.encrypted && set.value != secret && set.value.range(of: secret) == nil)
        #expect(try sealer.open(set.value, encrypted: true, namespace: Self.namespace, entry: "creds") == secret)
        #expect(throws: ProjectionError(.crypto, "")) {
            try sealer.open(set.value, encrypted: true, namespace: Self.namespace, entry: "other")
        }
    }

    @Test(
        arguments: [
            ("a stale lease token", lease(), holder, token - 1, LeaseGateRefusal.staleLease),
            (
                "the same worker id in another instance", lease(), Owner(workerID: "wa-1", instance: "B"), token,
                .notOwner
            ),
            ("a lapsed lease", lease(expiresIn: .microseconds(-1)), holder, token, .expired),
            ("a released lease", lease(held: false), holder, token, .notHeld),
            ("no lease", nil, holder, token, .notHeld),
        ] as [(String, LeaseState?, Owner, UInt64, LeaseGateRefusal)])
    func aWriterNotHoldingTheLeaseLiveIsRejectedAndWritesNothing(
        _ name: String, lease: LeaseState?, owner: Owner, leaseToken: UInt64, reason: LeaseGateRefusal
    ) throws {
        for changes: SessionChanges in [["creds": Data([9])], ["creds": nil]] {
            let decision = try SessionDecider.write(
                lease, namespace: Self.namespace, changes: changes, owner: owner, leaseToken: leaseToken,
                sealer: try SessionSealer(keyBase64: nil), now: Self.now)

            #expect(decision.outcome == .rejected(reason: reason), "\(name)")
            #expect(decision.events == [Self.rejected(reason.rawValue, by: owner, leaseToken: leaseToken)], "\(name)")
        }
    }

    @Test func anEmptyBatchOfTheHolderIsAcceptedAndRecordsNothing() throws {
        let decision = try SessionDecider.write(
            Self.lease(expiresIn: .zero), namespace: Self.namespace, changes: [:], owner: Self.holder,
            leaseToken: Self.token, sealer: try SessionSealer(keyBase64: nil), now: Self.now)

        #expect(decision.outcome == .accepted)
        #expect(decision.events.isEmpty)
    }
}
