import EventLog
import Foundation
@testable import Projections
import SwitchboardEvents
import Testing

/// Messages that arrive while a reply is queued or running (issue 25): the planner's decision for every queue mode,
/// the debounce and the cap, table driven; the commands' parsing and effects.
@Suite("Reply planner")
struct ReplyPlannerTests {
    static let now = LogTimestamp(microseconds: 1_800_000_000_000_000)

    static func job(
        _ id: String, _ status: JobStatus, notBefore: LogTimestamp = now, collected: Int = 1, tools: Bool = false
    )
        -> JobState
    {
        var payload: [String: String] = collected > 1 ? ["collected": "\(collected)"] : [:]
        if tools { payload["tools"] = "1" }
        return JobState(
            jobID: id, idempotencyKey: "k-\(id)", conversationID: "c", kind: "reply", priority: 0, parentJobID: nil,
            rootJobID: id, maxAttempts: 3, payload: payload, enqueueSeq: 1, status: status,
            attempt: status == .running ? 1 : 0, notBefore: notBefore, token: status == .running ? 5 : 0,
            claimedBy: nil, visibleUntil: nil, lastReason: nil, lastMessage: nil, result: nil,
            triggeringMessageSeq: 1, replyToExternalID: nil)
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var mode: QueueMode
        var debounce: Duration = .zero
        var cap = 20
        var isText = true
        var active: [JobState]
        var plan: ReplyPlan
        var testDescription: String { name }
    }

    static let later = now.advanced(by: .milliseconds(1_500))
    static let cases: [Case] = [
        Case(name: "nothing runs: a new job at once", mode: .collect, active: [], plan: .newJob(runAt: nil)),
        Case(
            name: "nothing runs, debounced: a new job after the window", mode: .collect, debounce: .milliseconds(1_500),
            active: [], plan: .newJob(runAt: later)),
        Case(
            name: "media is never delayed", mode: .collect, debounce: .milliseconds(1_500), isText: false, active: [],
            plan: .newJob(runAt: nil)),
        Case(
            name: "collect: a pending reply answers it too", mode: .collect, active: [job("p", .pending)],
            plan: .collect(jobID: "p", notBefore: nil, reason: "collected", collected: 2)),
        Case(
            name: "collect: a running reply, nothing waits: the next turn", mode: .collect,
            active: [job("r", .running)], plan: .newJob(runAt: nil)),
        Case(
            name: "collect: running and waiting: it waits too", mode: .collect,
            active: [job("r", .running), job("p", .pending, collected: 2)],
            plan: .collect(jobID: "p", notBefore: nil, reason: "collected", collected: 3)),
        Case(
            name: "collect: the cap reached: another turn", mode: .collect, cap: 3,
            active: [job("r", .running), job("p", .pending, collected: 3)], plan: .newJob(runAt: nil)),
        Case(
            name: "within the debounce window: joined, the window restarts", mode: .followup,
            debounce: .milliseconds(1_500),
            active: [job("p", .pending, notBefore: now.advanced(by: .milliseconds(900)))],
            plan: .collect(jobID: "p", notBefore: later, reason: "debounced", collected: 2)),
        Case(
            name: "followup: a pending reply, its own turn", mode: .followup, active: [job("p", .pending)],
            plan: .newJob(runAt: nil)),
        Case(
            name: "steer: the running reply restarts with it", mode: .steer, active: [job("r", .running)],
            plan: .replace(jobID: "r", reason: "steered")),
        Case(
            name: "steer: a reply that called a tool is not restarted", mode: .steer,
            active: [job("r", .running, tools: true)], plan: .newJob(runAt: nil)),
        Case(
            name: "interrupt: the running reply is cancelled whatever it did", mode: .interrupt,
            active: [job("r", .running, tools: true)], plan: .replace(jobID: "r", reason: "interrupted")),
        Case(
            name: "interrupt: a pending reply takes it", mode: .interrupt,
            active: [job("r", .running), job("p", .pending)],
            plan: .collect(jobID: "p", notBefore: nil, reason: "collected", collected: 2)),
    ]

    @Test(arguments: cases)
    func thePlannerDecides(_ c: Case) {
        let rules = ConversationRules(queueMode: c.mode, queueCap: c.cap, debounce: c.debounce)
        #expect(ReplyPlanner.plan(rules: rules, isText: c.isText, active: c.active, now: Self.now) == c.plan)
    }

    @Test(arguments: [
        ("/stop", ChatCommand.stop), ("/STOP", .stop), ("/stop@SwitchboardBot", .stop), ("  /new ", .new),
        ("/status", .status), ("/help", .help), ("/remind in 5m tea", .remind), ("/reminders cancel 1", .reminders),
    ])
    func commandsAreRecognized(_ text: String, _ command: ChatCommand) {
        #expect(TypedCommand(text)?.command == command)
    }

    @Test(arguments: ["/stopp", "/stop now please", "stop", "/", "/start", "a /stop", "/remindme"])
    func otherTextIsNotACommand(_ text: String) {
        #expect(TypedCommand(text) == nil)
    }

    @Test func stopKeepsTheStreamedTextAndAnswersAtOnce() {
        var message = InboundMessage(
            channel: "telegram", accountID: "a", externalID: "1:9", contactID: "42", text: "/stop")
        message.conversationID = "c"
        let state = InboundReplyState(
            rules: ConversationRules(), active: [Self.job("r", .running), Self.job("p", .pending)],
            streamed: ["r": "Once upon"])
        let decision = InboundReply.decide(message, conversationID: "c", messageSeq: 9, state: state, now: Self.now)
        #expect(decision.command == .stop && !decision.newJob && decision.answer == "Stopped.")
        #expect(
            decision.events.map(\.eventType) == [
                "assistant.message", "job.cancelled", "job.cancelled", "command.handled",
            ])
        guard case .assistantMessage(let kept) = decision.events[0] else { return }
        #expect(kept.text == "Once upon" && kept.finishReason == "stopped" && kept.jobID == "r")
        // Nothing running: said so, nothing cancelled.
        let idle = InboundReply.decide(
            message, conversationID: "c", messageSeq: 9,
            state: InboundReplyState(rules: ConversationRules(), active: []),
            now: Self.now)
        #expect(idle.answer == "Nothing is running." && idle.events.map(\.eventType) == ["command.handled"])
    }
}
