import Assistant
import EventLog
import Foundation
import Logging
import Projections
import ServiceLifecycle
import SwitchboardEvents
import Synchronization

/// The core loop: claims reply jobs with bounded concurrency, heartbeats each claim while it runs (also while a
/// tool call waits for the user's approval), answers with an ``AssistantTurn`` whose events (`assistant.delta`,
/// `tool.call`, `tool.approval` requested, `tool.result`, `conversation.summarized`, the final
/// `assistant.message`) are recorded under the claim token, enqueues the reply delivery for WhatsApp and Telegram
/// conversations fenced by the job token (a web reply is its log record), and completes or fails the job with its
/// token. A refused turn write (a stale token, an expired claim) stops the attempt at once: it counts as lost.
///
/// Wakes on `job.enqueued` (and the events that make a waiting job runnable) from the log tail and at the next
/// known due time; never polls. On graceful shutdown it stops claiming and finishes the jobs in flight.
public final class CoreService: Service, Sendable {
    let engine: Switchboard
    let concurrency: Int
    let assistant: CoreAssistant
    let logger: Logger
    let metrics: WorkerMetrics
    private let wakeup = Wakeup()
    private let stopping = Flag()
    private let running = Mutex(0)
    /// Log times at which a job may become claimable (retries, deferred jobs, other workers' claim deadlines).
    private let due = Mutex<[LogTimestamp]>([])
    /// The jobs in flight here, each with the doorbell its `job.cancelled` rings (a Stop ends the turn at once,
    /// not at its next write).
    private let inFlight = Mutex<[String: Wakeup]>([:])

    public init(
        engine: Switchboard, concurrency: Int, assistant: CoreAssistant = .offline(),
        metrics: WorkerMetrics = WorkerMetrics(), logger: Logger
    ) {
        self.engine = engine
        self.concurrency = max(1, concurrency)
        self.assistant = assistant
        self.metrics = metrics
        self.logger = logger
    }

    public func run() async throws {
        logger.info("[agent] Starting agent loop — subscribing to pending jobs...")
        let start = try engine.log.lastSeq() + 1
        // Claims and retries decided before this process followed the log (another core died holding a job, a
        // retry waits for its backoff): their times are due times too, or nothing would wake us for them.
        for job in try engine.reader.jobs() {
            switch job.status {
            case .running: if let deadline = job.visibleUntil { addDue(deadline.advanced(by: .milliseconds(1))) }
            case .pending where job.notBefore.microseconds != .max: addDue(job.notBefore)
            case .pending, .completed, .dead, .cancelled: break
            }
        }
        await ServiceLoop(stopping: stopping, wakeup: wakeup, logger: logger).run(
            beside: [.init(name: "tail") { try await self.follow(from: start) }]
        ) {
            await self.dispatch()
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
            case .jobRetriggered(let retriggered):
                // A debounced reply waits longer: its new claim time is a due time too.
                if let notBefore = retriggered.notBefore { addDue(notBefore) }
            case .jobClaimed(let claimed) where claimed.ownerInstance != me:
                // Reclaimed by the next claim after its deadline, should that worker die.
                addDue(claimed.visibleUntil.advanced(by: .milliseconds(1)))
            case .jobCancelled(let cancelled):
                inFlight.withLock { $0[cancelled.jobID] }?.signal()  // its turn stops; the conversation is free
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

    /// What a finished reply left: its delivery (WhatsApp, Telegram) or message id (web), and the model.
    struct Reply: Sendable {
        var result: String
        var modelUsed: String
    }

    private func process(_ claim: JobClaim) async {
        let job = claim.job
        let metadata: Logger.Metadata = ["job.id": "\(job.jobID)", "job.token": "\(claim.token)"]
        logger.info("[agent] Processing job \(job.jobID) for conversation \(job.conversationID)", metadata: metadata)
        let lost = Flag()
        let stop = Wakeup()
        inFlight.withLock { $0[job.jobID] = stop }
        defer { _ = inFlight.withLock { $0.removeValue(forKey: job.jobID) } }
        let outcome: Result<Reply, any Error> = await withTaskGroup(of: Result<Reply, any Error>?.self) { group in
            group.addTask { await self.heartbeat(claim, lost: lost) }
            group.addTask {
                await stop.wait()
                return Task.isCancelled ? nil : .failure(WorkerError(.stopped, "the job was stopped"))
            }
            group.addTask {
                do { return .success(try await self.respond(claim)) } catch { return .failure(error) }
            }
            var outcome: Result<Reply, any Error> = .failure(WorkerError(.lost, "the claim was lost"))
            for await result in group {
                if let result {
                    outcome = result
                    break
                }
                if lost.isSet { break }  // the heartbeat gave up: stop the turn
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
            case .success(let reply):
                let result = try await engine.completeJob(
                    job.jobID, token: claim.token, result: reply.result, modelUsed: reply.modelUsed)
                guard case .accepted = result else {
                    metrics.job(outcome: "lost")
                    logger.warning("[agent] Lease lost for job \(job.jobID) (complete)", metadata: metadata)
                    return
                }
                metrics.job(outcome: "completed")
                logger.info("[agent] Completed job \(job.jobID) (model: \(reply.modelUsed))", metadata: metadata)
            case .failure(let error as WorkerError) where error.code == .stopped:
                metrics.job(outcome: "stopped")
                logger.info("[agent] Stopped job \(job.jobID)", metadata: metadata)
            case .failure(let error as WorkerError) where error.code == .lost:
                metrics.job(outcome: "lost")
                logger.warning("[agent] Lease lost for job \(job.jobID) (\(error.message))", metadata: metadata)
            case .failure(let error):
                let failure = Self.failure(error)
                let result = try await engine.failJob(
                    job.jobID, token: claim.token, reason: failure.reason, message: String("\(error)".prefix(500)),
                    retryable: failure.retryable)
                metrics.job(outcome: "failed")
                if case .retried = result {
                    logger.warning("[agent] Retrying job \(job.jobID) (\(failure.reason))", metadata: metadata)
                } else {
                    logger.error("[agent] Failed job \(job.jobID) (\(failure.reason))", metadata: metadata)
                }
            }
        } catch {
            logger.error("job.outcome.not_recorded", metadata: metadata.merging(["error": "\(error)"]) { $1 })
        }
    }

    /// The `job.failed` reason of a failure, and whether another attempt may pass: a provider failure by its
    /// classification; a missing conversation is permanent; anything else (the log, a bug) is tried again.
    static func failure(_ error: any Error) -> (reason: String, retryable: Bool) {
        if let error = error as? ChatProviderError {
            switch error.code {
            case .rateLimited: return ("rate_limit", true)
            case .timeout: return ("timeout", true)
            case .server: return ("server_error", true)
            case .network: return ("network", true)
            case .auth, .billing, .badRequest, .contextTooLong, .contentFilter, .malformedStream, .unknown:
                return ("permanent", false)
            }
        }
        if let error = error as? WorkerError, error.code == .notFound { return ("permanent", false) }
        if let error = error as? WorkerError, error.code == .shutdown { return ("shutdown", true) }
        return ("server_error", true)
    }

    /// Extends the claim every third of its visibility until cancelled; returns `nil` (and sets `lost`) when a
    /// heartbeat is refused.
    private func heartbeat(_ claim: JobClaim, lost: Flag) async -> Result<Reply, any Error>? {
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

    /// Answers the job's triggering message with a turn recorded under the claim token; enqueues the reply for
    /// WhatsApp and Telegram conversations.
    private func respond(_ claim: JobClaim) async throws -> Reply {
        let job = claim.job
        guard let conversation = try engine.conversation(job.conversationID) else {
            throw WorkerError(.notFound, "conversation \(job.conversationID) does not exist")
        }
        if job.kind == JobKind.scheduled.rawValue, let text = job.payload[Reminders.payloadKey] {
            return try await fireReminder(claim, text: text, conversation: conversation)
        }
        let trigger = try engine.replyTrigger(of: job)
        let (summary, history) = try Self.history(
            of: job, trigger: trigger?.seq, engine.history(job.conversationID, limit: Self.historyLimit),
            summary: engine.conversationSummary(job.conversationID), groupContext: assistant.groupContextMessages)
        let host = JobTurnHost(
            engine: engine, claim: claim, conversation: conversation, approvalTTL: assistant.approvalTTL,
            historySeqs: history.map(\.seq), logger: logger)
        let engine = engine
        let turn = AssistantTurn(
            provider: assistant.provider,
            tools: assistant.tools(logger: logger).adding(scheduleTool(job, conversation: conversation)),
            settings: assistant.turn,
            logger: logger, now: { (try? engine.logNow())?.date ?? Date() })
        let input = TurnInput(
            system: AssistantTurn.systemPrompt(channel: conversation.channel), summary: summary?.summary,
            history: history.map { $0.role == "assistant" ? .assistant($0.text) : .user(GroupContext.promptText($0)) },
            key: job.jobID,
            tier: Channel(stored: conversation.channel)?.modelTier ?? .standard)
        // Deltas still in flight are written (or refused) before the job's outcome, whichever way the turn ends.
        let result = try await host.withDeltaWriter { try await turn.run(input, host: host) }
        try await host.finish(result)
        if result.truncated {
            logger.info(
                "[agent] Reply of job \(job.jobID) truncated at the token limit", metadata: ["job.id": "\(job.jobID)"])
        }
        guard host.deliversToChannel else { return Reply(result: host.messageID, modelUsed: result.modelUsed) }
        var delivery = NewDelivery(
            idempotencyKey: host.messageID, channel: conversation.channel, accountID: conversation.accountID,
            recipient: conversation.contactID, conversationID: job.conversationID, text: result.text)
        delivery.jobID = job.jobID
        delivery.jobToken = claim.token
        delivery.sourceMessageID = host.messageID
        delivery.replyToExternalID = trigger?.externalID
        // One delivery per part that fits the channel (4096), split at paragraphs or sentences, all or none.
        let enqueued = try await engine.enqueueReply(delivery)
        return Reply(result: enqueued.deliveryID, modelUsed: result.modelUsed)
    }

    /// The most history messages a prompt is built from (the budget then decides what is sent).
    static let historyLimit = 500

    /// The messages a job's prompt is built from, and the summary it starts with: for a reply, the branch of the
    /// message it answers with the reply versions that were shown (``ConversationTree/history(answering:)``); for
    /// a job that answers no message, the whole conversation; of a group's unaddressed lines only the newest
    /// `groupContext` (``GroupContext``). A summary counts only when the message it ends at is part of that history
    /// (else it summarizes another branch).
    static func history(
        of job: JobState, trigger: UInt64?, _ messages: [HistoryMessage], summary: ConversationSummaryState?,
        groupContext: Int = GroupContext.defaultLimit
    ) -> (summary: ConversationSummaryState?, history: [HistoryMessage]) {
        var history = messages
        if let trigger {
            let branch = ConversationTree(messages).history(answering: trigger)
            // A trigger older than the messages read falls back to the conversation up to it.
            history = branch.isEmpty ? messages.filter { $0.seq <= trigger } : branch
        }
        guard let summary, history.contains(where: { $0.seq == summary.throughSeq }) else {
            return (nil, GroupContext.bounded(history, limit: groupContext))
        }
        return (summary, GroupContext.bounded(history.filter { $0.seq > summary.throughSeq }, limit: groupContext))
    }

    /// The id of a job's reply message, and the idempotency key of its delivery (`#<part>` appended when split).
    static func replyKey(jobID: String) -> String { replyKeyPrefix + jobID }
    private static let replyKeyPrefix = "reply:"

    /// The job a reply answers, from its delivery's idempotency key (`reply:<job>` or `reply:<job>#<part>`); `nil`
    /// for any other delivery.
    static func jobID(ofReplyKey key: String) -> String? {
        guard key.hasPrefix(replyKeyPrefix) else { return nil }
        return String(key.dropFirst(replyKeyPrefix.count).prefix { $0 != "#" })
    }
}

/// The workers' errors.
public enum WorkerErrors: ErrorDomain {
    public static let name = "WorkerError"
}

/// An error of a worker.
public typealias WorkerError = CodedError<WorkerErrors>

extension CodedError.Code where Domain == WorkerErrors {
    /// Something the job needs does not exist.
    public static let notFound = Self("not_found")
    /// The claim or lease was lost.
    public static let lost = Self("lost")
    /// The agent is stopping gracefully and gave the attempt up (a job waiting for a user's approval).
    public static let shutdown = Self("shutdown")
    /// A person stopped the job (`job.cancelled`): its turn ended and nothing more is written under its token.
    public static let stopped = Self("stopped")
}
