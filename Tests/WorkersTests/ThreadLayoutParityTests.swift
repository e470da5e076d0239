import Foundation
import Testing

@testable import Workers

/// The page's layout of versions and branches exists twice: ``ThreadLayout`` (the server-rendered page) and
/// `tree.js`'s `ChatTree.layout` (the live page). They must agree on every tree, or a reload would show another
/// branch than the page did: both run here on the same trees, made by a seeded generator of sends, edits, replies
/// and regenerations.
@Suite("Thread layout parity")
struct ThreadLayoutParityTests {
    struct Case: Codable {
        var users: [User]
        var replies: [Reply]
        /// `nil`, `{"user": seq}` or `{"reply": id}`.
        var focus: [String: String]?
    }

    struct User: Codable {
        var id: String
        var seq: UInt64
        var parentSeq: UInt64
        var afterJobID: String?
    }

    struct Reply: Codable {
        var id: String
        var triggerSeq: UInt64
        var enqueueSeq: UInt64
    }

    /// A deterministic generator (SplitMix64).
    struct Seeded {
        var state: UInt64
        mutating func next(_ bound: Int) -> Int {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Int((z ^ (z >> 31)) % UInt64(max(1, bound)))
        }
    }

    /// A conversation grown by random steps: a message after the newest or after any earlier one (an edit's
    /// sibling), beside a random version of its parent's replies; a reply or another version of one.
    static func grow(seed: UInt64, steps: Int) -> (users: [User], replies: [Reply]) {
        var random = Seeded(state: seed)
        var users: [User] = []
        var replies: [Reply] = []
        var seq: UInt64 = 0
        for _ in 0..<steps {
            seq += 1
            if users.isEmpty || random.next(3) == 0 {
                let parent: User? = users.isEmpty || random.next(4) == 0 ? nil : users[random.next(users.count)]
                let versions = replies.filter { $0.triggerSeq == parent?.seq }
                let after = versions.isEmpty || random.next(3) == 0 ? nil : versions[random.next(versions.count)].id
                users.append(User(id: "u\(seq)", seq: seq, parentSeq: parent?.seq ?? 0, afterJobID: after))
            } else {
                let trigger = users[random.next(users.count)]
                replies.append(Reply(id: "j\(seq)", triggerSeq: trigger.seq, enqueueSeq: seq))
            }
        }
        return (users, replies)
    }

    static var cases: [Case] {
        var cases: [Case] = [Case(users: [], replies: [], focus: nil)]
        for seed in UInt64(1)...60 {
            let (users, replies) = grow(seed: seed, steps: 4 + Int(seed % 17))
            cases.append(Case(users: users, replies: replies, focus: nil))
            if !users.isEmpty {
                let user = users[Int(seed) % users.count]
                cases.append(Case(users: users, replies: replies, focus: ["user": "\(user.seq)"]))
            }
            if let reply = replies.first {
                cases.append(Case(users: users, replies: replies, focus: ["reply": reply.id]))
            }
        }
        // A reply that answers no message (a scheduled task's) is always shown.
        cases.append(
            Case(
                users: [User(id: "a", seq: 1, parentSeq: 0)],
                replies: [Reply(id: "s", triggerSeq: 0, enqueueSeq: 2), Reply(id: "r", triggerSeq: 1, enqueueSeq: 3)],
                focus: nil))
        return cases
    }

    /// The layout as one comparable line.
    static func line(
        hiddenUsers: [String], hiddenReplies: [String], userPagers: [String: String], replyPagers: [String: String],
        lastReply: String?
    ) -> String {
        let pagers = { (p: [String: String]) in p.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" } }
        return "hidden users \(hiddenUsers.sorted()) replies \(hiddenReplies.sorted()) pagers \(pagers(userPagers)) "
            + "\(pagers(replyPagers)) last \(lastReply ?? "-")"
    }

    static func swiftLayout(_ c: Case) -> String {
        let focus: ThreadLayout.Focus? =
            c.focus?["user"].flatMap { UInt64($0) }.map { .user($0) } ?? c.focus?["reply"].map { .reply($0) }
        let layout = ThreadLayout(
            users: c.users.map { .init(id: $0.id, seq: $0.seq, parentSeq: $0.parentSeq, afterJobID: $0.afterJobID) },
            replies: c.replies.map { .init(id: $0.id, triggerSeq: $0.triggerSeq, enqueueSeq: $0.enqueueSeq) },
            focus: focus)
        return line(
            hiddenUsers: Array(layout.hiddenUsers), hiddenReplies: Array(layout.hiddenReplies),
            userPagers: layout.userPagers.mapValues { "\($0.index)/\($0.count)" },
            replyPagers: layout.replyPagers.mapValues { "\($0.index)/\($0.count)" }, lastReply: layout.lastReply)
    }

    @Test func theScriptLaysOutEveryTreeAsTheServerDoes() async throws {
        let cases = Self.cases
        let encoded = try cases.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
        let tree = String(decoding: PackageResources.tree_js, as: UTF8.self)
        // The same line, made by the script.
        let expression = """
            (require('vm').runInThisContext(inputs[0]), inputs.slice(1).map(function (text) {
              var c = JSON.parse(text);
              var focus = c.focus ? (c.focus.user ? { user: Number(c.focus.user) } : { reply: c.focus.reply }) : null;
              c.users.forEach(function (u) { if (u.afterJobID === undefined) { u.afterJobID = null; } });
              var l = ChatTree.layout(c.users, c.replies, focus);
              var pagers = function (p) { return Object.keys(p).sort().map(function (k) {
                return '"' + k + '=' + p[k].index + '/' + p[k].count + '"'; }); };
              var list = function (o) { return Object.keys(o).sort().map(function (k) { return '"' + k + '"'; }); };
              return 'hidden users [' + list(l.hiddenUsers).join(', ') + '] replies [' + list(l.hiddenReplies).join(', ') +
                '] pagers [' + pagers(l.userPagers).join(', ') + '] [' + pagers(l.replyPagers).join(', ') + '] last ' +
                (l.lastReply === null ? '-' : l.lastReply);
            }))
            """
        let script = try await MarkdownParityTests.run(expression, [tree] + encoded)
        #expect(script.count == cases.count)
        var differing = 0
        for (c, page) in zip(cases, script) where page != Self.swiftLayout(c) {
            differing += 1
            if differing <= 3 {
                Issue.record(
                    "case \(String(decoding: try JSONEncoder().encode(c), as: UTF8.self)):\n  script \(page)\n  server \(Self.swiftLayout(c))"
                )
            }
        }
        #expect(differing == 0)
        // The generator makes trees worth comparing: versions, branches and hidden messages.
        #expect(script.contains { $0.contains("/") && !$0.contains("replies []") })
    }

    @Test func theNewestBranchIsShownAndItsVersionsPaged() {
        let users = [
            ThreadLayout.UserNode(id: "a", seq: 1, parentSeq: 0),
            ThreadLayout.UserNode(id: "b", seq: 4, parentSeq: 1, afterJobID: "j1"),
            ThreadLayout.UserNode(id: "b2", seq: 6, parentSeq: 1, afterJobID: "j1"),
        ]
        let replies = [
            ThreadLayout.ReplyNode(id: "j1", triggerSeq: 1, enqueueSeq: 2),
            ThreadLayout.ReplyNode(id: "j2", triggerSeq: 1, enqueueSeq: 3),
            ThreadLayout.ReplyNode(id: "j4", triggerSeq: 4, enqueueSeq: 5),
        ]
        let layout = ThreadLayout(users: users, replies: replies)
        // b2 (an edit of b, the newest) is shown beside version 1 of a's reply, the one it was written beside.
        #expect(layout.hiddenUsers == ["b"])
        #expect(layout.hiddenReplies == ["j2", "j4"])
        #expect(layout.userPagers["b2"] == .init(index: 2, count: 2))
        #expect(layout.replyPagers["j1"] == .init(index: 1, count: 2))
        #expect(layout.lastReply == nil)
        // Paged to version 2: nothing was written beside it.
        let paged = ThreadLayout(users: users, replies: replies, focus: .reply("j2"))
        #expect(paged.hiddenUsers == ["b", "b2"])
        #expect(paged.lastReply == "j2")
    }
}
