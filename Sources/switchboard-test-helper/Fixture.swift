import EventLog
import Foundation
import Logging
import Projections
import SwitchboardEvents

/// `fixture --dir D`: writes a small log through this build's engine whose queues hold every claim-order shape —
/// a busy conversation with jobs waiting, a running parent with a pending child, jobs in backoff and scheduled,
/// a dead job, a recipient with messages behind its in-flight head, a retried delivery, an uncertain one and a
/// sent one. Kept in the helper so that the next projection format can be tested against a log the build
/// before it wrote (`Tests/ProjectionsTests/Fixtures`).
func fixture(_ options: Options) async throws {
    var settings = EngineSettings(lease: try LeaseTiming(ttl: .seconds(45), heartbeat: .seconds(15)))
    settings.deliveries.rateLimits = [:]
    final class Clock: @unchecked Sendable {  // written before each command, read by the writer
        var now = LogTimestamp(microseconds: 1_800_000_000_000_000)
    }
    let clock = Clock()
    var configuration = EventLogConfiguration(
        directory: options["dir"]!, writer: WriterIdentity(role: "all", workerID: "fixture-1"))
    configuration.wallClock = { clock.now }
    let engine = try Switchboard(
        configuration, settings: settings,
        logger: Logger(label: "fixture", factory: { _ in SwiftLogNoOpLogHandler() }))
    func job(_ key: String, _ conversation: String, priority: Int = 0, parent: String? = nil) -> NewJob {
        var job = NewJob(jobID: "job-\(key)", idempotencyKey: key, conversationID: conversation)
        job.priority = priority
        job.parentJobID = parent
        return job
    }

    // A busy conversation with three jobs waiting behind its running one.
    for index in 0..<4 { _ = try await engine.enqueueJob(job("busy-\(index)", "busy")) }
    guard let busy = try await engine.claimJob(), busy.job.conversationID == "busy" else {
        throw FixtureError("the busy conversation's job was not claimed")
    }
    // A running parent with a pending child and a later job of its conversation.
    _ = try await engine.enqueueJob(job("parent", "tree", priority: 1))
    guard let parent = try await engine.claimJob(), parent.job.jobID == "job-parent" else {
        throw FixtureError("the parent was not claimed")
    }
    _ = try await engine.enqueueJob(job("done", "done"))
    guard let done = try await engine.claimJob(), done.job.jobID == "job-done" else {
        throw FixtureError("the job to complete was not claimed")
    }
    _ = try await engine.completeJob(done.job.jobID, token: done.token, result: "ok")
    _ = try await engine.enqueueJob(job("later", "tree"))
    _ = try await engine.enqueueJob(job("child", "tree", parent: "job-parent"))
    // A job in backoff, a scheduled one, a dead one.
    _ = try await engine.enqueueJob(job("retry", "retry", priority: 2))
    if let retry = try await engine.claimJob() {
        _ = try await engine.failJob(
            retry.job.jobID, token: retry.token, reason: "provider_error", message: "503", retryable: true)
    }
    var scheduled = job("scheduled", "scheduled")
    scheduled.runAt = clock.now.advanced(by: .seconds(3600))
    _ = try await engine.enqueueJob(scheduled)
    var doomed = job("dead", "dead", priority: 3)
    doomed.maxAttempts = 1
    _ = try await engine.enqueueJob(doomed)
    if let dead = try await engine.claimJob() {
        _ = try await engine.failJob(
            dead.job.jobID, token: dead.token, reason: "bad_input", message: "no", retryable: false)
    }

    // Deliveries: one recipient with two behind its in-flight head; one retried; one uncertain; one sent.
    guard let lease = try await engine.acquireLease("whatsapp/default").grant else {
        throw FixtureError("no lease")
    }
    func delivery(_ key: String, to recipient: String) -> NewDelivery {
        NewDelivery(
            idempotencyKey: key, channel: "whatsapp", accountID: "default", recipient: recipient,
            conversationID: "whatsapp:default:\(recipient)", text: "reply \(key)")
    }
    for (key, recipient) in [
        ("queued-0", "+1"), ("queued-1", "+1"), ("queued-2", "+1"), ("retried", "+2"), ("uncertain", "+3"),
        ("sent", "+4"), ("waiting", "+5"),
    ] {
        _ = try await engine.enqueueDelivery(delivery(key, to: recipient))
    }
    for _ in 0..<4 {
        guard
            case .claimed(let claim) = try await engine.claimDelivery(
                channel: "whatsapp", accountID: "default", leaseToken: lease.token)
        else { throw FixtureError("a delivery was not claimed") }
        _ = try await engine.attemptDelivery(claim.delivery.deliveryID, token: claim.token, leaseToken: lease.token)
        switch claim.delivery.idempotencyKey {
        case "retried":
            _ = try await engine.deliveryFailed(
                claim.delivery.deliveryID, token: claim.token, permanent: false, retryAfter: nil, errorCode: "131056",
                message: "pair rate limit")
        case "uncertain":
            _ = try await engine.deliveryUncertain(claim.delivery.deliveryID, token: claim.token, reason: "timeout")
        case "sent":
            _ = try await engine.deliverySent(
                claim.delivery.deliveryID, token: claim.token, providerMessageID: "wamid.1")
        default:
            break  // queued-0 stays in flight: its recipient's next two wait behind it
        }
    }
    say("done \(try engine.log.lastSeq()) running \(busy.job.jobID) \(parent.job.jobID)")
    await engine.close()
}

struct FixtureError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
