import EventLog
import Foundation
import SwitchboardEvents

/// What happens to a message that arrives while the conversation's reply is queued or running (`QUEUE_MODE`).
public enum QueueMode: String, Sendable, Equatable, CaseIterable {
    /// It waits, and the next turn answers every message that waited (one reply to three quick lines).
    case collect
    /// Each message gets its own turn, one after another.
    case followup
    /// The running turn is cancelled and restarted with the new message, when it has not called a tool yet (a
    /// channel's reply is sent only when the turn ends, so nothing of it went out); otherwise as `collect`.
    case steer
    /// The running turn is cancelled whatever it did, and the next turn answers the newest message.
    case interrupt
}

/// How a channel's conversations take messages (`QUEUE_MODE`, `QUEUE_CAP`, `INBOUND_DEBOUNCE_MS`).
public struct ConversationRules: Sendable, Equatable {
    public var queueMode: QueueMode
    /// The most messages one collected turn answers; the next one starts another turn.
    public var queueCap: Int
    /// A text message starts its turn this long after it arrived, and each text message within the window
    /// restarts it: a burst becomes one turn. `.zero` disables. Media and commands are never delayed.
    public var debounce: Duration

    public init(queueMode: QueueMode = .collect, queueCap: Int = 20, debounce: Duration = .zero) {
        self.queueMode = queueMode
        self.queueCap = max(1, queueCap)
        self.debounce = debounce
    }
}

/// How a message is answered, as ``ReplyPlanner/plan(rules:isText:active:now:)`` decided it.
public enum ReplyPlan: Sendable, Equatable {
    /// A new reply job answers it, claimable at `runAt` (`nil`: at once).
    case newJob(runAt: LogTimestamp?)
    /// The pending reply job answers it too (`job.retriggered`), not claimed before `notBefore` (`nil`: as it was).
    case collect(jobID: String, notBefore: LogTimestamp?, reason: String, collected: Int)
    /// The running reply job is cancelled (`job.cancelled` with `reason`) and a new one answers it.
    case replace(jobID: String, reason: String)
}

/// The reply planner: a pure function of the conversation's rules, its pending and running reply jobs and the
/// log time. The inbound decisions (web and channels) call it for every message that starts a reply.
public enum ReplyPlanner {
    /// Reply jobs (not scheduled tasks or sub-agents).
    static func isReply(_ job: JobState) -> Bool {
        job.kind == JobKind.reply.rawValue || job.kind == JobKind.regenerate.rawValue
    }

    /// How many messages a pending job answers.
    static func collected(_ job: JobState) -> Int { Int(job.payload["collected"] ?? "") ?? 1 }

    /// Plans the answer to a message that starts a reply.
    /// - Parameters:
    ///   - isText: a text message (media and commands are never delayed by the debounce).
    ///   - active: the conversation's pending and running jobs.
    public static func plan(rules: ConversationRules, isText: Bool, active: [JobState], now: LogTimestamp)
        -> ReplyPlan
    {
        let window = isText && rules.debounce > .zero ? now.advanced(by: rules.debounce) : nil
        let replies = active.filter(isReply)
        let pending = replies.filter { $0.status == .pending && $0.attempt == 0 }.max { $0.enqueueSeq < $1.enqueueSeq }
        let running = replies.first { $0.status == .running }
        if let pending, collected(pending) < rules.queueCap {
            // Within its debounce window, a message joins it whatever the mode: a burst is one turn.
            if isText, pending.notBefore > now {
                return .collect(
                    jobID: pending.jobID, notBefore: window, reason: "debounced", collected: collected(pending) + 1)
            }
            switch rules.queueMode {
            case .collect, .steer, .interrupt:
                return .collect(
                    jobID: pending.jobID, notBefore: window, reason: "collected", collected: collected(pending) + 1)
            case .followup:
                return .newJob(runAt: window)
            }
        }
        if let running, pending == nil {
            switch rules.queueMode {
            case .steer where running.payload["tools"] == nil:
                return .replace(jobID: running.jobID, reason: "steered")
            case .interrupt:
                return .replace(jobID: running.jobID, reason: "interrupted")
            case .collect, .followup, .steer:
                break
            }
        }
        return .newJob(runAt: window)
    }
}
