import EventLog
import Foundation
import Projections

/// The shapes of backlog the `claim-backlog` scenario puts in front of a claim.
enum BacklogShape: String, CaseIterable {
    /// One recipient with N deliveries waiting behind a rate limit (its last send was just now); every claim
    /// takes a message to another recipient.
    case blockedRecipient = "blocked-recipient"
    /// N ready jobs in one conversation whose job is running; every claim takes a job of another conversation.
    case busyConversation = "busy-conversation"
    /// N jobs waiting for their retry time (a backoff of an hour, at a higher priority than the fresh jobs, so
    /// they come first in claim order); every claim takes a fresh job.
    case backoff = "backoff"
    /// N jobs running under unexpired claims: every claim first looks for expired claims to settle.
    case runningClaims = "running-claims"
}

extension Runner {
    /// `claim-backlog`: the time a claim holds the writer — its decider and the projector's updates, measured
    /// inside the write transaction — with 100 to 100 000 items waiting that the claim must not take.
    func claimBacklog() async throws {
        for shape in BacklogShape.allCases {
            var p50ByBacklog: [Int: Double] = [:]
            for backlog in backlogSizes {
                let samples = try await claimCosts(shape, backlog: backlog)
                let p50 = percentile(samples, 0.5)
                p50ByBacklog[backlog] = p50
                try report([
                    "scenario": Scenario.claimBacklog.rawValue, "shape": shape.rawValue, "backlog": backlog,
                    "value": p50, "unit": "us", "p50_us": p50, "p99_us": percentile(samples, 0.99),
                    "samples": samples.count,
                    "note": "claim decider + projector inside the write transaction (no fsync), durable log",
                ])
            }
            if let small = p50ByBacklog[backlogSizes.first ?? 0], let large = p50ByBacklog[backlogSizes.last ?? 0] {
                try report([
                    "scenario": Scenario.claimBacklog.rawValue, "shape": shape.rawValue,
                    "value": round(large / max(small, 0.001)), "unit": "x",
                    "note": "claim p50 at the largest backlog ÷ at the smallest (target <= 2)",
                ])
            }
        }
    }

    private func claimCosts(_ shape: BacklogShape, backlog: Int) async throws -> [UInt64] {
        var settings = EngineSettings.defaults()
        settings.jobs.retry.baseDelay = .seconds(3600)
        settings.jobs.retry.maxDelay = .seconds(3600)
        settings.jobs.visibility = .seconds(3600)  // the running-claims shape's claims outlive its samples
        // The lease must outlive the largest backlog's samples (200 claims of tens of milliseconds each).
        settings.lease = try LeaseTiming(ttl: .seconds(24 * 3600), heartbeat: .seconds(3600))
        settings.deliveries.rateLimits["whatsapp"] = RateLimits(
            perRecipientInterval: .seconds(3600), perAccount: (256, .zero))
        let name = "backlog-\(shape.rawValue)-\(backlog)"
        var configuration = EventLogConfiguration(
            directory: scratch + "/" + name, writer: WriterIdentity(role: "bench", workerID: "bench-1"))
        configuration.initialMapSize = 4 << 30
        let engine = try Switchboard(configuration, settings: settings, logger: logger)
        defer { try? FileManager.default.removeItem(atPath: scratch + "/" + name) }
        let samples: [UInt64]
        switch shape {
        case .blockedRecipient: samples = try await blockedRecipient(engine, backlog: backlog)
        case .busyConversation: samples = try await busyConversation(engine, backlog: backlog)
        case .backoff: samples = try await backoff(engine, backlog: backlog)
        case .runningClaims: samples = try await runningClaims(engine, backlog: backlog)
        }
        await engine.close()
        return samples
    }

    /// Runs `body` in write transactions of up to 1 000 iterations each.
    private func batched(
        _ engine: Switchboard, _ count: Int, _ body: @escaping @Sendable (Int, inout WriteContext) throws -> Void
    ) async throws {
        var start = 0
        while start < count {
            let range = start..<min(count, start + 1000)
            _ = try await engine.log.transact { context in
                for index in range { try body(index, &context) }
            }
            start = range.upperBound
        }
    }

    private var claimSamples: Int { 200 }

    private func blockedRecipient(_ engine: Switchboard, backlog: Int) async throws -> [UInt64] {
        guard let lease = try await engine.acquireLease("whatsapp/default").grant else {
            throw BenchError("no lease")
        }
        let owner = engine.owner
        let settings = engine.settings.deliveries
        @Sendable func delivery(_ key: String, _ recipient: String) -> NewDelivery {
            NewDelivery(
                idempotencyKey: key, channel: "whatsapp", accountID: "default", recipient: recipient,
                conversationID: "whatsapp:default:\(recipient)", text: "a reply of typical length, about sixty chars")
        }
        // The blocked recipient's first message is sent (so the rate limit holds the rest back)...
        _ = try await engine.enqueueDelivery(delivery("blocked-0", "+1000"))
        guard
            case .claimed(let first) = try await engine.claimDelivery(
                channel: "whatsapp", accountID: "default", leaseToken: lease.token)
        else { throw BenchError("the first claim took nothing") }
        _ = try await engine.attemptDelivery(first.delivery.deliveryID, token: first.token, leaseToken: lease.token)
        _ = try await engine.deliverySent(first.delivery.deliveryID, token: first.token, providerMessageID: "m0")
        // ...and `backlog` more wait behind it.
        try await batched(engine, backlog) { index, context in
            _ = try DeliveryShell.enqueue(delivery("blocked-\(index + 1)", "+1000"), settings: settings, &context)
        }
        var samples: [UInt64] = []
        for sample in 0..<claimSamples {
            _ = try await engine.enqueueDelivery(delivery("fresh-\(sample)", "+2\(sample)"))
            let (result, nanoseconds) = try await engine.log.transact { context in
                let start = RawLMDBBaseline.monotonicNanoseconds()
                let result = try DeliveryShell.claim(
                    channel: "whatsapp", accountID: "default", owner: owner, leaseToken: lease.token,
                    settings: settings, &context)
                return (result, RawLMDBBaseline.monotonicNanoseconds() - start)
            }.value
            guard case .claimed(let claim) = result, claim.delivery.recipient != "+1000" else {
                throw BenchError("claim \(sample) did not take the fresh message: \(result)")
            }
            samples.append(nanoseconds)
            _ = try await engine.attemptDelivery(claim.delivery.deliveryID, token: claim.token, leaseToken: lease.token)
            _ = try await engine.deliverySent(claim.delivery.deliveryID, token: claim.token, providerMessageID: nil)
        }
        return samples
    }

    private func busyConversation(_ engine: Switchboard, backlog: Int) async throws -> [UInt64] {
        let settings = engine.settings.jobs
        try await batched(engine, backlog + 1) { index, context in
            _ = try JobShell.enqueue(
                NewJob(idempotencyKey: "busy-\(index)", conversationID: "busy"), settings: settings, &context)
        }
        guard let running = try await engine.claimJob(), running.job.conversationID == "busy" else {
            throw BenchError("the busy conversation's first job was not claimed")
        }
        return try await freshJobCycles(engine, avoiding: "busy")
    }

    private func backoff(_ engine: Switchboard, backlog: Int) async throws -> [UInt64] {
        let settings = engine.settings.jobs
        let owner = engine.owner
        try await batched(engine, backlog) { index, context in
            var job = NewJob(idempotencyKey: "retry-\(index)", conversationID: "retry-\(index)")
            job.priority = 1
            _ = try JobShell.enqueue(job, settings: settings, &context)
            guard let claim = try JobShell.claim(owner: owner, settings: settings, &context) else {
                throw BenchError("nothing to claim")
            }
            _ = try JobShell.fail(
                claim.job.jobID, token: claim.token, owner: owner, reason: "provider_error", message: "503",
                retryable: true, settings: settings, &context)
        }
        return try await freshJobCycles(engine, avoiding: "retry-")
    }

    private func runningClaims(_ engine: Switchboard, backlog: Int) async throws -> [UInt64] {
        let settings = engine.settings.jobs
        let owner = engine.owner
        try await batched(engine, backlog) { index, context in
            _ = try JobShell.enqueue(
                NewJob(idempotencyKey: "running-\(index)", conversationID: "running-\(index)"), settings: settings,
                &context)
            guard try JobShell.claim(owner: owner, settings: settings, &context) != nil else {
                throw BenchError("nothing to claim")
            }
        }
        return try await freshJobCycles(engine, avoiding: "running-")
    }

    /// Enqueue → claim (measured) → complete for fresh conversations; each claim must take the fresh job.
    private func freshJobCycles(_ engine: Switchboard, avoiding prefix: String) async throws -> [UInt64] {
        let settings = engine.settings.jobs
        let owner = engine.owner
        var samples: [UInt64] = []
        for sample in 0..<claimSamples {
            _ = try await engine.enqueueJob(
                NewJob(idempotencyKey: "fresh-\(sample)", conversationID: "fresh-\(sample)"))
            let (claim, nanoseconds) = try await engine.log.transact { context in
                let start = RawLMDBBaseline.monotonicNanoseconds()
                let claim = try JobShell.claim(owner: owner, settings: settings, &context)
                return (claim, RawLMDBBaseline.monotonicNanoseconds() - start)
            }.value
            guard let claim, !claim.job.conversationID.hasPrefix(prefix) else {
                throw BenchError("claim \(sample) did not take the fresh job: \(String(describing: claim?.job.jobID))")
            }
            samples.append(nanoseconds)
            _ = try await engine.completeJob(claim.job.jobID, token: claim.token)
        }
        return samples
    }
}

/// The backlog sizes of `claim-backlog`.
let backlogSizes = [100, 1_000, 10_000, 100_000]
