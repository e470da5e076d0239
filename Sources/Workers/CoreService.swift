import EventLog
import Foundation
import Logging
import Projections
import ServiceLifecycle
import SwitchboardEvents
import Synchronization

/// The assistant's answer to one message.
public protocol Responder: Sendable {
    /// A name recorded as the job's `modelUsed`.
    var model: String { get }
    func reply(to text: String, history: [HistoryMessage]) async throws -> String
}

/// The built-in responder when no model is configured: it says so honestly and echoes what it received, so
/// the whole pipeline (inbound → job → reply → delivery) runs on a fresh machine.
public struct OfflineResponder: Responder {
    public let model = "offline"
    public init() {}

    public func reply(to text: String, history: [HistoryMessage]) async throws -> String {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        let quoted = trimmed.count > 1_000 ? String(trimmed.prefix(1_000)) + "…" : trimmed
        if quoted.isEmpty {
            return "No language model is configured for this assistant yet, so I cannot answer. "
                + "I received your message, but it had no text I could read."
        }
        return "No language model is configured for this assistant yet, so I cannot answer. "
            + "I received your message: \"\(quoted)\""
    }
}

/// The core loop: claims reply jobs with bounded concurrency, heartbeats each claim while it runs, answers
/// with the ``Responder``, enqueues the reply delivery fenced by the job token, and completes or fails the job
/// with its token.
///
/// Wakes on `job.enqueued` (and the events that make a waiting job runnable) from the log tail and at the next
/// known due time; never polls. On graceful shutdown it stops claiming and finishes the jobs in flight.
public final class CoreService: Service, Sendable {
    let engine: Switchboard
    let concurrency: Int
    let responder: any Responder
    let logger: Logger
    let metrics: WorkerMetrics
    private let wakeup = Wakeup()
    private let stopping = Flag()
    private let running = Mutex(0)
    /// Log times at which a job may become claimable (retries, deferred jobs, other workers' claim deadlines).
    private let due = Mutex<[LogTimestamp]>([])

    public init(
        engine: Switchboard, concurrency: Int, responder: any Responder = OfflineResponder(),
        metrics: WorkerMetrics = WorkerMetrics(), logger: Logger
    ) {
        self.engine = engine
        self.concurrency = max(1, concurrency)
        self.responder = responder
        self.metrics = metrics
        self.logger = logger
    }

    public func run() async throws {
        logger.info("[agent] Starting agent loop — subscribing to pending jobs...")
        let start = try engine.log.lastSeq() + 1
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    try await self.follow(from: start)
                } catch {
                    self.logger.error("tail.failed", metadata: ["error": "\(error)"])
                }
            }
            await withGracefulShutdownHandler {
                await self.dispatch()
            } onGracefulShutdown: {
                self.stopping.set()
                self.wakeup.signal()
            }
            group.cancelAll()
        }
    }

    private func follow(from start: UInt64) async throws {
        let me = engine.owner.instance
        for try await record in engine.log.tail(from: start) {
            guard record.type.hasPrefix("job.") else { continue }
            guard let event = record.followedEvent(logger) else { continue }
            switch event {
            case .jobEnqueued(let enqueued):
                if let runAt = enqueued.runAt { addDue(runAt) }
            case .jobRetried(let retried):
                addDue(retried.notBefore)
            case .jobClaimed(let claimed) where claimed.ownerInstance != me:
                // Reclaimed by the next claim after its deadline, should that worker die.
                addDue(claimed.visibleUntil.advanced(by: .milliseconds(1)))
            case .jobCompleted, .jobFailed, .jobDead, .jobRequeued:
                break  // may free the conversation for a waiting job
            default:
                continue
            }
            wakeup.signal()
        }
    }

    private func addDue(_ time: LogTimestamp) { due.withLock { $0.append(time) } }

    /// The next due time still in the future (past ones are dropped: they are what woke us).
    private func nextDue() -> ContinuousClock.Instant? {
        let now = LogTimestamp.wallClock()
        return due.withLock { times in
            times.removeAll { $0 < now }
            return times.min()?.localInstant
        }
    }

    private func dispatch() async {
        // The log's doorbell watcher starts lazily with the first tail wait; a commit landing while it starts is
        // not announced. So the first idle wait after start is bounded, once.
        var startup = true
        await withDiscardingTaskGroup { group in
            // A cancelled task (not a graceful shutdown) also ends the loop: its waits would return at once.
            while !stopping.isSet && !Task.isCancelled {
                if running.withLock({ $0 }) >= concurrency {
                    await wakeup.wait()
                    continue
                }
                let claim: JobClaim?
                do {
                    claim = try await engine.claimJob()
                } catch {
                    logger.error("job.claim.failed", metadata: ["error": "\(error)"])
                    await wakeup.wait(until: .now + .seconds(1))
                    continue
                }
                guard let claim else {
                    let settle: ContinuousClock.Instant? = startup ? .now + .seconds(1) : nil
                    startup = false
                    await wakeup.wait(until: [nextDue(), settle].compactMap { $0 }.min())
                    continue
                }
                metrics.claimed("job")
                running.withLock { $0 += 1 }
                group.addTask {
                    await self.process(claim)
                    self.running.withLock { $0 -= 1 }
                    self.wakeup.signal()
                }
            }
        }
    }

    private func process(_ claim: JobClaim) async {
        let job = claim.job
        let metadata: Logger.Metadata = ["job.id": "\(job.jobID)", "job.token": "\(claim.token)"]
        logger.info("[agent] Processing job \(job.jobID) for conversation \(job.conversationID)", metadata: metadata)
        let lost = Flag()
        let outcome: Result<String, any Error> = await withTaskGroup(of: Result<String, any Error>?.self) { group in
            group.addTask { await self.heartbeat(claim, lost: lost) }
            group.addTask {
                do { return .success(try await self.respond(claim)) } catch { return .failure(error) }
            }
            var outcome: Result<String, any Error> = .failure(WorkerError(.lost, "the claim was lost"))
            for await result in group {
                if let result {
                    outcome = result
                    break
                }
                if lost.isSet { break }  // the heartbeat gave up: stop waiting for the answer
            }
            group.cancelAll()
            return outcome
        }
        if lost.isSet {
            metrics.job(outcome: "lost")
            logger.warning("[agent] Lease lost for job \(job.jobID) (heartbeat)", metadata: metadata)
            return
        }
        do {
            switch outcome {
            case .success(let deliveryID):
                let result = try await engine.completeJob(
                    job.jobID, token: claim.token, result: deliveryID, modelUsed: responder.model)
                guard case .accepted = result else {
                    metrics.job(outcome: "lost")
                    logger.warning("[agent] Lease lost for job \(job.jobID) (complete)", metadata: metadata)
                    return
                }
                metrics.job(outcome: "completed")
                logger.info("[agent] Completed job \(job.jobID) (model: \(responder.model))", metadata: metadata)
            case .failure(let error):
                let code = (error as? WorkerError)?.code
                let reason = code?.description ?? "error"
                // A missing conversation will not appear by retrying.
                let result = try await engine.failJob(
                    job.jobID, token: claim.token, reason: reason, message: String("\(error)".prefix(500)),
                    retryable: code != .notFound)
                metrics.job(outcome: "failed")
                if case .retried = result {
                    logger.warning("[agent] Retrying job \(job.jobID) (\(reason))", metadata: metadata)
                } else {
                    logger.error("[agent] Failed job \(job.jobID) (\(reason))", metadata: metadata)
                }
            }
        } catch {
            logger.error("job.outcome.not_recorded", metadata: metadata.merging(["error": "\(error)"]) { $1 })
        }
    }

    /// Extends the claim every third of its visibility until cancelled; returns `nil` (and sets `lost`) when a
    /// heartbeat is refused.
    private func heartbeat(_ claim: JobClaim, lost: Flag) async -> Result<String, any Error>? {
        let interval = engine.settings.jobs.visibility / 3
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: interval)
            } catch {
                return nil
            }
            do {
                let result = try await engine.heartbeatJob(claim.job.jobID, token: claim.token)
                if case .accepted = result { continue }
                lost.set()
                return nil
            } catch {
                logger.error("job.heartbeat.failed", metadata: ["job.id": "\(claim.job.jobID)", "error": "\(error)"])
            }
        }
        return nil
    }

    /// Answers the job's triggering message and enqueues the reply; returns the delivery id.
    private func respond(_ claim: JobClaim) async throws -> String {
        let job = claim.job
        guard let conversation = try engine.conversation(job.conversationID) else {
            throw WorkerError(.notFound, "conversation \(job.conversationID) does not exist")
        }
        var text = ""
        var externalID: String?
        if let enqueued = try engine.log.records(from: job.enqueueSeq, limit: 1).first,
            case .jobEnqueued(let event)? = try enqueued.event(), let seq = event.triggeringMessageSeq,
            let record = try engine.log.records(from: seq, limit: 1).first,
            case .messageReceived(let message)? = try record.event()
        {
            text = message.text
            externalID = message.externalID
        }
        let history = try engine.history(job.conversationID, limit: 20)
        let reply = try await responder.reply(to: text, history: history)
        var delivery = NewDelivery(
            idempotencyKey: "reply:\(job.jobID)", channel: conversation.channel, accountID: conversation.accountID,
            recipient: conversation.contactID, conversationID: job.conversationID, text: reply)
        delivery.jobID = job.jobID
        delivery.jobToken = claim.token
        delivery.replyToExternalID = externalID
        let enqueued = try await engine.enqueueDelivery(delivery)
        return enqueued.deliveryID
    }
}

/// An error of a worker.
public struct WorkerError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// Something the job needs does not exist.
        public static let notFound = Code("not_found")
        /// The claim or lease was lost.
        public static let lost = Code("lost")
        public var description: String { name }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "WorkerError(\(code)): \(message)" }
}
