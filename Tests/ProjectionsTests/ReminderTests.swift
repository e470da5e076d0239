import EventLog
import Foundation
import Testing

@testable import Projections

/// `/remind` and `/reminders` (issue 25): when a reminder is due, read as people write it in the owner's zone, and
/// the commands' decisions.
@Suite("Reminders")
struct ReminderTests {
    /// 2026-12-06 10:30 UTC = 11:30 in Paris.
    static let now = LogTimestamp(microseconds: 1_796_553_000_000_000)
    static let paris = TimeZone(identifier: "Europe/Paris")!

    static func at(_ iso: String) -> LogTimestamp {
        let formatter = ISO8601DateFormatter()
        return LogTimestamp(microseconds: Int64(formatter.date(from: iso)!.timeIntervalSince1970 * 1_000_000))
    }

    @Test(arguments: [
        ("in 20m call back", "2026-12-06T10:50:00Z", "call back"),
        ("in 1h30m stretch", "2026-12-06T12:00:00Z", "stretch"),
        ("in 90 minutes tea", "2026-12-06T12:00:00Z", "tea"),
        ("in 2 hours leave", "2026-12-06T12:30:00Z", "leave"),
        ("in 10s ping", "2026-12-06T10:30:10Z", "ping"),
        ("at 17:00 go home", "2026-12-06T16:00:00Z", "go home"),
        ("at 9:15 standup", "2026-12-07T08:15:00Z", "standup"),
        ("tomorrow 9:00 report", "2026-12-07T08:00:00Z", "report"),
        ("tomorrow at 7:30 run", "2026-12-07T06:30:00Z", "run"),
    ])
    func whenIsReadInTheOwnersZone(_ words: String, _ due: String, _ text: String) throws {
        let parsed = try #require(ReminderTime.parse(words, now: Self.now, timeZone: Self.paris))
        #expect(parsed.due == Self.at(due))
        #expect(parsed.text == text)
    }

    @Test(arguments: [
        "", "in", "in 20m", "at 25:00 x", "at 9:7 x", "in 0m x", "next week x", "tomorrow x y", "in -5m x",
    ])
    func otherWordsAreNotATime(_ words: String) {
        #expect(ReminderTime.parse(words, now: Self.now, timeZone: Self.paris) == nil)
    }

    @Test func remindSchedulesAndRemindersListsAndCancels() throws {
        var message = InboundMessage(
            channel: "telegram", accountID: "a", externalID: "1:5", contactID: "42", text: "/remind at 17:00 go home")
        message.conversationID = "c"
        let state = InboundReplyState(rules: ConversationRules(), active: [], timeZone: Self.paris)
        let set = InboundReply.decide(message, conversationID: "c", messageSeq: 5, state: state, now: Self.now)
        #expect(set.command == .remind && !set.newJob)
        #expect(set.reminder == ReminderTime(due: Self.at("2026-12-06T16:00:00Z"), text: "go home"))
        #expect(set.answer == "I will remind you at 17:00 today (Europe/Paris): go home")
        let job = Reminders.job(try #require(set.reminder), message: message, conversationID: "c", messageSeq: 5)
        #expect(job.kind == "scheduled" && job.runAt == Self.at("2026-12-06T16:00:00Z"))
        #expect(job.payload["reminder"] == "go home")

        // /reminders lists the pending ones soonest first; cancel takes the n-th.
        func pending(_ id: String, _ due: String, _ text: String) -> JobState {
            JobState(
                jobID: id, idempotencyKey: id, conversationID: "c", kind: "scheduled", priority: 0, parentJobID: nil,
                rootJobID: id, maxAttempts: 3, payload: ["reminder": text], enqueueSeq: 1, status: .pending, attempt: 0,
                notBefore: Self.at(due), token: 0, claimedBy: nil, visibleUntil: nil, lastReason: nil,
                lastMessage: nil, result: nil, triggeringMessageSeq: nil, replyToExternalID: nil)
        }
        let active = [pending("b", "2026-12-07T08:00:00Z", "report"), pending("a", "2026-12-06T16:00:00Z", "go home")]
        message.text = "/reminders"
        let listed = InboundReply.decide(
            message, conversationID: "c", messageSeq: 6,
            state: InboundReplyState(rules: ConversationRules(), active: active, timeZone: Self.paris), now: Self.now)
        #expect(
            listed.answer == "1. at 17:00 today (Europe/Paris): go home\n2. at 09:00 tomorrow (Europe/Paris): report")
        message.text = "/reminders cancel 2"
        let cancelled = InboundReply.decide(
            message, conversationID: "c", messageSeq: 7,
            state: InboundReplyState(rules: ConversationRules(), active: active, timeZone: Self.paris), now: Self.now)
        #expect(cancelled.answer == "Cancelled: report")
        #expect(cancelled.events.map(\.eventType) == ["job.cancelled", "command.handled"])
        // A time it cannot read: it says how to write one, nothing is set.
        message.text = "/remind sometime soon"
        let unread = InboundReply.decide(message, conversationID: "c", messageSeq: 8, state: state, now: Self.now)
        #expect(unread.reminder == nil && unread.answer == Reminders.usage)
    }
}
