import EventLog
import SwitchboardEvents
import Foundation
import Projections
import Testing

@Suite struct DeciderLeaseTests {
    let resource = "whatsapp/default"
    let ownerA = Owner(workerID: "wa-1", instance: "A")
    let ownerB = Owner(workerID: "wa-2", instance: "B")

    @Test func acquireOnFreeResourceIsGrantedWithTheSeqOfLeaseAcquiredAsToken() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        let start = fixture.now

        let decision = try await engine.acquireLease(resource, as: ownerA)

        let grant = try #require(decision.grant)
        let acquiredSeq = try engine.onlySeq(of: LeaseAcquired.eventType)
        #expect(grant.token == acquiredSeq)
        #expect(grant.owner == ownerA)
        #expect(grant.expiresAt == start.advanced(by: .seconds(45)))
        let event = try #require(try engine.recorded(LeaseAcquired.self).first)
        #expect(event.token == acquiredSeq)
        #expect(event.ownerWorkerID == "wa-1" && event.ownerInstance == "A")
        let lease = try #require(try engine.lease(resource))
        #expect(lease.held && lease.token == acquiredSeq && lease.owner == ownerA)
        await fixture.close()
    }

    @Test func acquireByThisProcessUsesTheEngineOwner() async throws {
        let fixture = try DeciderFixture(worker: "core-7")
        let engine = fixture.engine

        let grant = try #require(try await engine.acquireLease(resource).grant)

        #expect(grant.owner == engine.owner)
        #expect(engine.owner.workerID == "core-7")
        #expect(try engine.lease(resource)?.owner == engine.owner)
        await fixture.close()
    }

    @Test func secondOwnerIsDeniedAsHeldAndToldTheHolder() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        let first = try #require(try await engine.acquireLease(resource, as: ownerA).grant)

        let second = try await engine.acquireLease(resource, as: ownerB)

        #expect(second == .denied(reason: .held, holder: first))
        let denied = try engine.recorded(LeaseDenied.self)
        #expect(denied.count == 1)
        #expect(denied.first?.reason == "held")
        #expect(denied.first?.requesterInstance == "B")
        #expect(denied.first?.holderToken == first.token)
        #expect(try engine.recorded(LeaseAcquired.eventType).count == 1)
        #expect(try engine.lease(resource)?.owner == ownerA)
        await fixture.close()
    }

    @Test func sameOwnerReacquiringKeepsTheTokenAndExtendsTheExpiry() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        let first = try #require(try await engine.acquireLease(resource, as: ownerA).grant)
        fixture.clock.advance(.seconds(10))

        let again = try #require(try await engine.acquireLease(resource, as: ownerA).grant)

        #expect(again.token == first.token)
        #expect(again.expiresAt == fixture.now.advanced(by: .seconds(45)))
        #expect(again.expiresAt > first.expiresAt)
        #expect(try engine.recorded(LeaseAcquired.eventType).count == 1)
        #expect(try engine.lease(resource)?.expiresAt == again.expiresAt)
        await fixture.close()
    }

    /// A rolling deploy: both containers run with `WORKER_ID=wa-1` (original weak point §10.3).
    @Test func sameWorkerIDInAnotherInstanceNeitherSharesNorReleasesTheLease() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        let old = Owner(workerID: "wa-1", instance: "A")
        let new = Owner(workerID: "wa-1", instance: "B")
        let held = try #require(try await engine.acquireLease(resource, as: old).grant)

        let acquire = try await engine.acquireLease(resource, as: new)
        #expect(acquire == .denied(reason: .held, holder: held))

        let release = try await engine.releaseLease(resource, token: held.token, as: new)
        guard case .denied(let reason, _) = release else {
            Issue.record("the other instance released the lease: \(release)")
            await fixture.close()
            return
        }
        #expect(reason == .notOwner)
        #expect(try engine.recorded(LeaseReleased.eventType).isEmpty)
        let lease = try #require(try engine.lease(resource))
        #expect(lease.held && lease.owner == old && lease.token == held.token)

        let renew = try await engine.renewLease(resource, token: held.token, as: new)
        #expect(renew.grant == nil)
        #expect(try engine.recorded(LeaseRenewed.eventType).isEmpty)
        // Still held by the old instance: a third party is told so.
        #expect(try await engine.acquireLease(resource, as: ownerB) == .denied(reason: .held, holder: held))
        await fixture.close()
    }

    @Test func renewWithTheCurrentTokenExtends() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        let first = try #require(try await engine.acquireLease(resource, as: ownerA).grant)
        fixture.clock.advance(.seconds(20))

        let renewed = try await engine.renewLease(resource, token: first.token, as: ownerA)

        let grant = try #require(renewed.grant)
        #expect(grant.token == first.token)
        #expect(grant.expiresAt == fixture.now.advanced(by: .seconds(45)))
        let event = try #require(try engine.recorded(LeaseRenewed.self).first)
        #expect(event.token == first.token && event.expiresAt == grant.expiresAt)
        #expect(try engine.lease(resource)?.expiresAt == grant.expiresAt)
        await fixture.close()
    }

    @Test func renewWithAStaleTokenIsDenied() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        let old = try await engine.mustAcquire(resource, as: ownerA)
        _ = try await engine.releaseLease(resource, token: old, as: ownerA)
        let current = try #require(try await engine.acquireLease(resource, as: ownerA).grant)
        #expect(current.token > old)

        let renewed = try await engine.renewLease(resource, token: old, as: ownerA)

        #expect(renewed == .denied(reason: .staleToken, holder: current))
        #expect(try engine.recorded(LeaseDenied.self).last?.presentedToken == old)
        #expect(try engine.lease(resource)?.expiresAt == current.expiresAt)
        await fixture.close()
    }

    @Test func leaseIsLiveAtExactlyExpiresAtAndExpiredOneMicrosecondLater() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        let grant = try #require(try await engine.acquireLease(resource, as: ownerA).grant)

        fixture.advance(to: grant.expiresAt)
        #expect(try engine.lease(resource)?.isLive(at: fixture.now) == true)
        #expect(try await engine.acquireLease(resource, as: ownerB) == .denied(reason: .held, holder: grant))
        #expect(try engine.recorded(LeaseExpired.eventType).isEmpty)

        fixture.clock.advance(.microseconds(1))
        let renewed = try await engine.renewLease(resource, token: grant.token, as: ownerA)

        #expect(renewed == .denied(reason: .expired, holder: nil))
        let expired = try engine.recorded(LeaseExpired.self)
        #expect(expired.count == 1)
        #expect(expired.first?.token == grant.token && expired.first?.expiredAt == grant.expiresAt)
        #expect(expired.first?.ownerInstance == "A")
        #expect(try engine.lease(resource)?.held == false)
        #expect(try engine.recorded(LeaseRenewed.eventType).isEmpty)
        await fixture.close()
    }

    @Test(arguments: [false, true])
    func acquireAfterExpiryGetsAGreaterTokenAndRecordsTheExpiryFirst(bySameOwner: Bool) async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        let next = bySameOwner ? ownerA : ownerB
        let first = try #require(try await engine.acquireLease(resource, as: ownerA).grant)
        fixture.advance(to: first.expiresAt.advanced(by: .microseconds(1)))

        let second = try #require(try await engine.acquireLease(resource, as: next).grant)

        #expect(second.token > first.token)
        #expect(second.owner == next)
        let expired = try engine.recorded(LeaseExpired.eventType)
        let acquired = try engine.recorded(LeaseAcquired.eventType)
        #expect(expired.count == 1 && acquired.count == 2)
        let expirySeq = try #require(expired.first?.seq)
        let grantSeq = try #require(acquired.last?.seq)
        #expect(expirySeq < grantSeq)
        #expect(grantSeq == second.token)
        #expect(try expired.first?.decode(LeaseExpired.self).token == first.token)
        // The lapsed owner's token is now stale.
        #expect(try await engine.renewLease(resource, token: first.token, as: ownerA).grant == nil)
        #expect(try engine.lease(resource)?.owner == next)
        #expect(try engine.lease(resource)?.token == second.token)
        await fixture.close()
    }

    @Test func releaseFreesTheLeaseForTheNextAcquirerWithAGreaterToken() async throws {
        let fixture = try DeciderFixture()
        let engine = fixture.engine
        let first = try await engine.mustAcquire(resource, as: ownerA)

        let released = try await engine.releaseLease(resource, token: first, as: ownerA)

        #expect(released.grant?.token == first)
        #expect(try engine.recorded(LeaseReleased.self).first?.token == first)
        #expect(try engine.lease(resource)?.held == false)
        let next = try await engine.mustAcquire(resource, as: ownerB)
        #expect(next > first)
        // Releasing again under the old token does not free the new tenure.
        #expect(try await engine.releaseLease(resource, token: first, as: ownerA).grant == nil)
        #expect(try engine.lease(resource)?.held == true)
        #expect(try engine.lease(resource)?.token == next)
        await fixture.close()
    }

    @Test(arguments: [
        (45_000, 15_000, true),
        (45_000, 22_499, true),
        (45_000, 22_500, false),
        (45_000, 30_000, false),
        (30_000, 15_000, false),
        (10_000, 4_000, true),
        (45_000, 45_000, false),
        (45_000, 60_000, false),
    ])
    func leaseTimingRequiresHeartbeatBelowHalfTheTTL(ttlMilliseconds: Int64, heartbeatMilliseconds: Int64, valid: Bool)
    {
        let ttl = Duration.milliseconds(ttlMilliseconds)
        let heartbeat = Duration.milliseconds(heartbeatMilliseconds)
        if valid {
            let timing = try? LeaseTiming(ttl: ttl, heartbeat: heartbeat)
            #expect(timing?.ttl == ttl)
            #expect(timing?.heartbeat == heartbeat)
        } else {
            #expect(throws: ProjectionError.self) { try LeaseTiming(ttl: ttl, heartbeat: heartbeat) }
        }
    }

    @Test func defaultLeaseTimingIs45SecondsWith15SecondHeartbeats() throws {
        let timing = try LeaseTiming()
        #expect(timing.ttl == .seconds(45))
        #expect(timing.heartbeat == .seconds(15))
        #expect(try LeaseTiming(ttl: .seconds(45), heartbeat: .seconds(15)) == timing)
        #expect(EngineSettings.defaults().lease == timing)
    }
}
