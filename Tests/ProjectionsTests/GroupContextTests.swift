import EventLog
import Projections
import Testing

/// What a group reply is built from: the addressed lines and the replies always, the newest `limit` unaddressed
/// lines only, each group line with its writer.
@Suite("Group context")
struct GroupContextTests {
    static func line(_ seq: UInt64, _ text: String, addressed: Bool = false, sender: String? = "Ann") -> HistoryMessage
    {
        HistoryMessage(
            role: "user", text: text, seq: seq, time: LogTimestamp(microseconds: Int64(seq)), sender: sender,
            unanswered: addressed ? nil : "not_addressed")
    }

    static let history: [HistoryMessage] = [
        line(1, "a"), line(2, "b"), line(3, "@bot one?", addressed: true),
        HistoryMessage(role: "assistant", text: "one.", seq: 4, time: LogTimestamp(microseconds: 4)),
        line(5, "c"), line(6, "d"), line(7, "@bot two?", addressed: true),
    ]

    @Test(arguments: [
        (0, [3, 4, 7]), (1, [3, 4, 6, 7]), (2, [3, 4, 5, 6, 7]), (3, [2, 3, 4, 5, 6, 7]), (20, [1, 2, 3, 4, 5, 6, 7]),
    ])
    func theNewestUnaddressedLinesAreKept(limit: Int, seqs: [UInt64]) {
        #expect(GroupContext.bounded(Self.history, limit: limit).map(\.seq) == seqs)
    }

    @Test func aGroupLineNamesItsWriterAndADirectMessageDoesNot() {
        #expect(GroupContext.promptText(Self.line(1, "hi")) == "Ann: hi")
        #expect(GroupContext.promptText(Self.line(1, "hi", sender: nil)) == "hi")
        #expect(GroupContext.promptText(Self.history[3]) == "one.")
    }
}
