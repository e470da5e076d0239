import Assistant
import EventLog
import Foundation
import Logging
import Projections
import ServiceLifecycle
import SwitchboardEvents
import Synchronization
import SwitchboardJSON

/// The turn host of one job claim: records the turn's events fenced by the claim token
/// (`Switchboard.recordTurn`), asks for and awaits approvals, and stops the turn the moment a write is refused.
///
/// Deltas are coalesced: while one `assistant.delta` write is in flight, the next deltas accumulate and go out as
/// one record (indexes count records, from 0 for each claim). Every other write waits for the deltas before it,
/// so the log keeps the turn's order. After a refused write nothing more is written and every call throws
/// ``WorkerError/Code/lost``.
final class JobTurnHost: TurnHost {
    let engine: Switchboard
    let claim: JobClaim
    let conversation: ConversationState
    /// `reply:<jobID>`.
    let messageID: String
    let approvalTTL: Duration
    /// The seqs of the turn's history messages, oldest first (a summary's `throughSeq`).
    let historySeqs: [UInt64]
    let logger: Logger

    private struct State {
        var pending = ""
        var nextIndex = 0
        var writing = false
        var failure: (any Error)?
        var idle: [CheckedContinuation<Void, Never>] = []
        /// Log call ids by the turn's (round, index).
        var callIDs: [String: String] = [:]
    }

    private let state = Mutex(State())
    /// Rung when a delta starts a drain; ``writeDeltas()`` answers it.
    private let deltaBell = Wakeup()

    init(
        engine: Switchboard, claim: JobClaim, conversation: ConversationState, approvalTTL: Duration,
        historySeqs: [UInt64], logger: Logger
    ) {
        self.engine = engine
        self.claim = claim
        self.conversation = conversation
        self.messageID = CoreService.replyKey(jobID: claim.job.jobID)
        self.approvalTTL = approvalTTL
        self.historySeqs = historySeqs
        self.logger = logger
    }

    var jobID: String { claim.job.jobID }

    /// Whether replies to this conversation are channel deliveries (WhatsApp, Telegram) rather than the log
    /// record itself (web).
    var deliversToChannel: Bool { Channel(stored: conversation.channel)?.deliversReplies ?? false }

    // MARK: TurnHost

    func delta(_ text: String) async throws {
        let start = try state.withLock { state throws(any Error) -> Bool in
            if let failure = state.failure { throw failure }
            state.pending += text
            guard !state.writing else { return false }
            state.writing = true
            return true
        }
        if start { deltaBell.signal() }
    }

    func toolCall(_ call: TurnToolCall) async throws -> ToolCallDecision {
        let callID = Self.callID(jobID: jobID, token: claim.token, round: call.round, index: call.index)
        state.withLock { $0.callIDs["\(call.round)|\(call.index)"] = callID }
        let input =
            JSONValue(parsing: call.request.arguments)?.jsonText
            ?? JSONValue.string(call.request.arguments).jsonText
        var events: [SwitchboardEvent] = [
            .toolCall(
                ToolCall(
                    callID: callID, jobID: jobID, jobToken: claim.token, conversationID: conversation.conversationID,
                    toolName: call.request.name, inputJSON: input, risk: call.risk == .read ? "low" : "medium"))
        ]
        var expiresAt: LogTimestamp?
        if call.needsApproval {
            let expiry = try engine.logNow().advanced(by: approvalTTL)
            expiresAt = expiry
            events.append(
                .toolApproval(
                    ToolApproval(
                        callID: callID, jobID: jobID, conversationID: conversation.conversationID,
                        decision: "requested", expiresAt: expiry)))
        }
        let lastSeq = try await record(events)
        let metadata: Logger.Metadata = [
            "job.id": "\(jobID)", "tool.call_id": "\(callID)", "tool.name": "\(call.request.name)",
        ]
        guard let expiresAt else { return .run }
        logger.info("[agent] Waiting for approval of \(call.request.name) (call \(callID))", metadata: metadata)
        if deliversToChannel {
            var request = NewDelivery(
                idempotencyKey: "approval:\(callID)", channel: conversation.channel, accountID: conversation.accountID,
                recipient: conversation.contactID, conversationID: conversation.conversationID,
                text: Self.approvalText(call, code: Self.code(callID), ttl: approvalTTL))
            request.kind = "tool_approval_request"
            request.jobID = jobID
            request.jobToken = claim.token
            _ = try await engine.enqueueDelivery(request)
        }
        let status = try await awaitAnswer(callID, expiresAt: expiresAt, after: lastSeq)
        logger.info("[agent] Approval of call \(callID): \(status.rawValue)", metadata: metadata)
        switch status {
        case .approved: return .run
        case .rejected: return .refused(Self.rejected)
        default: return .refused(Self.expired)
        }
    }

    func toolResult(_ call: TurnToolCall, _ outcome: ToolOutcome) async throws {
        let callID =
            state.withLock { $0.callIDs["\(call.round)|\(call.index)"] }
            ?? Self.callID(jobID: jobID, token: claim.token, round: call.round, index: call.index)
        let result = ToolResult(
            callID: callID, jobID: jobID, jobToken: claim.token,
            outputJSON: outcome.error == nil ? JSONValue.string(outcome.content).jsonText : nil,
            error: outcome.error?.message)
        try await record([.toolResult(result)])
    }

    func summarized(_ summary: TurnSummary) async throws {
        guard summary.coveredMessages > 0, summary.coveredMessages <= historySeqs.count else { return }
        try await record([
            .conversationSummarized(
                ConversationSummarized(
                    conversationID: conversation.conversationID, jobID: jobID, jobToken: claim.token,
                    summary: summary.text, throughSeq: historySeqs[summary.coveredMessages - 1]))
        ])
    }

    // MARK: The end of the turn

    /// Records the final message (after the deltas before it).
    func finish(_ result: TurnResult) async throws {
        try await record([
            .assistantMessage(
                AssistantMessage(
                    messageID: messageID, conversationID: conversation.conversationID, jobID: jobID,
                    jobToken: claim.token, text: result.text, modelUsed: result.modelUsed, final: true,
                    finishReason: result.finishReason == .stop || result.finishReason == .toolCalls
                        ? nil : result.finishReason.rawValue))
        ])
    }

    /// Waits until the deltas written so far are in the log; throws when a write was refused.
    func flush() async throws {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                guard state.writing else { return true }
                state.idle.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
        if let failure = state.withLock({ $0.failure }) { throw failure }
    }

    // MARK: Writing

    /// Appends `events` after the pending deltas; returns the last seq.
    @discardableResult
    private func record(_ events: [SwitchboardEvent]) async throws -> UInt64 {
        try await flush()
        do {
            return try await write(events)
        } catch {
            state.withLock { $0.failure = $0.failure ?? error }
            throw error
        }
    }

    private func write(_ events: [SwitchboardEvent]) async throws -> UInt64 {
        switch try await engine.recordTurn(jobID: jobID, token: claim.token, events) {
        case .accepted(let lastSeq):
            return lastSeq
        case .rejected(let refusal):
            logger.warning(
                "turn.write.refused",
                metadata: [
                    "job.id": "\(jobID)", "job.token": "\(claim.token)", "turn.refusal": "\(refusal.rawValue)",
                ])
            throw WorkerError(.lost, "the turn's write was refused (\(refusal.rawValue))")
        }
    }

    /// Writes the pending deltas, one record per write, until none are left (or a write fails).
    /// Runs `body` (the turn) with the delta writer beside it: deltas are written as they come, coalesced while a
    /// write is in flight; when `body` ends, whatever it streamed is written (or has failed) before this returns.
    func withDeltaWriter<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await self.writeDeltas() }
            defer { group.cancelAll() }
            let value: T
            do {
                value = try await body()
            } catch {
                try? await flush()
                throw error
            }
            try? await flush()  // a write's failure is the turn's to report, through the next record
            return value
        }
    }

    /// Drains the pending deltas each time ``delta(_:)`` rings, until cancelled.
    private func writeDeltas() async {
        while !Task.isCancelled {
            await deltaBell.wait()
            await drain()
        }
    }

    private func drain() async {
        while true {
            let next = state.withLock { state -> (text: String, index: Int)? in
                guard state.failure == nil, !state.pending.isEmpty else { return nil }
                let text = state.pending
                state.pending = ""
                state.nextIndex += 1
                return (text, state.nextIndex - 1)
            }
            if let next {
                do {
                    _ = try await write([
                        .assistantDelta(
                            AssistantDelta(
                                messageID: messageID, conversationID: conversation.conversationID, jobID: jobID,
                                jobToken: claim.token, index: next.index, text: next.text))
                    ])
                } catch {
                    state.withLock { $0.failure = $0.failure ?? error }
                }
                continue
            }
            // Nothing pending: stop writing (atomically with the check, so a delta arriving now starts a drain).
            let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>]? in
                guard state.pending.isEmpty || state.failure != nil else { return nil }
                state.pending = ""
                state.writing = false
                defer { state.idle = [] }
                return state.idle
            }
            guard let waiters else { continue }
            for waiter in waiters { waiter.resume() }
            return
        }
    }

    // MARK: Approvals

    /// Waits for the user's answer to `callID` on the log tail after `seq`, or for its expiry by the log clock
    /// (then records it with `expireApprovals`); returns the call's status.
    private func awaitAnswer(_ callID: String, expiresAt: LogTimestamp, after seq: UInt64) async throws
        -> ToolCallStatus
    {
        let engine = engine
        let logger = logger
        while true {
            if let status = try engine.toolCall(callID)?.status, status != .awaitingApproval, status != .called {
                return status
            }
            do {
                // A graceful shutdown does not wait minutes for a user: the attempt is given up (and retried).
                try await cancelWhenGracefulShutdown {
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            for try await record in engine.log.tail(from: seq + 1)
                            where record.type == ToolApproval.eventType {
                                if case .toolApproval(let approval)? = record.followedEvent(logger),
                                    approval.callID == callID, approval.decision != "requested"
                                {
                                    return
                                }
                            }
                        }
                        group.addTask {
                            try await Task.sleep(until: expiresAt.localInstant, clock: .continuous)
                            _ = try await engine.expireApprovals()
                        }
                        try await group.next()
                        group.cancelAll()
                    }
                }
            } catch is CancellationError where Task.isShuttingDownGracefully {
                // Decided below (an answer may have come in just now).
            }
            if let status = try engine.toolCall(callID)?.status, status != .awaitingApproval, status != .called {
                return status
            }
            if Task.isShuttingDownGracefully {
                throw WorkerError(.shutdown, "the agent stopped while call \(callID) waited for its approval")
            }
            // The log clock had not reached the expiry yet (another writer's clock behind ours): look again soon.
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    static let rejected = "rejected by the user"
    static let expired = "approval expired"

    /// A call id unique to this claim's call: 32 lowercase hex digits.
    static func callID(jobID: String, token: UInt64, round: Int, index: Int) -> String {
        stableRequestID(for: "\(jobID)|\(token)|\(round)|\(index)").replacingOccurrences(of: "-", with: "")
    }

    /// The code a chat user answers with: the call id's first 6 characters.
    static func code(_ callID: String) -> String { String(callID.prefix(6)) }

    static func approvalText(_ call: TurnToolCall, code: String, ttl: Duration) -> String {
        let arguments = call.request.arguments.trimmingCharacters(in: .whitespacesAndNewlines)
        let shown = arguments.count > 200 ? String(arguments.prefix(200)) + "…" : arguments
        let minutes = max(1, Int(ttl.components.seconds / 60))
        return "🔐 I'd like to use the tool '\(call.request.name)' (\(shown)). "
            + "Reply YES \(code) to approve or NO \(code) to reject (expires in \(minutes) min)."
    }
}
