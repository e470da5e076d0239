/// Which of a thread's messages the page shows, and the pagers between versions and branches. `thread.js`'s
/// `ChatTree.layout` computes the same from the same inputs (compared by `ThreadLayoutParityTests`).
///
/// The page shows one branch: by default the one of the conversation's newest message or reply (what a reload
/// shows after a Regenerate or an edit); the script can show another one when the owner pages to it. On that
/// branch each user message shows one reply version: the one the next message was written beside (`afterJobID`),
/// else the newest. Hidden messages stay in the page (`hidden`), so paging needs no request.
struct ThreadLayout: Equatable {
    struct UserNode: Equatable {
        var id: String
        var seq: UInt64
        var parentSeq: UInt64
        var afterJobID: String?
    }

    struct ReplyNode: Equatable {
        var id: String
        /// `0` when it answers no message.
        var triggerSeq: UInt64
        var enqueueSeq: UInt64
    }

    /// "‹ index/count ›", from 1.
    struct Pager: Equatable {
        var index: Int
        var count: Int
    }

    /// Where the shown branch ends: a user message (by seq) or a reply (by job id).
    enum Focus: Equatable {
        case user(UInt64)
        case reply(String)
    }

    var hiddenUsers: Set<String> = []
    var hiddenReplies: Set<String> = []
    var userPagers: [String: Pager] = [:]
    var replyPagers: [String: Pager] = [:]
    /// The last reply shown (Regenerate is offered on it).
    var lastReply: String?

    init(users: [UserNode], replies: [ReplyNode], focus: Focus? = nil) {
        var bySeq: [UInt64: UserNode] = [:]
        for user in users { bySeq[user.seq] = user }
        var versions: [UInt64: [ReplyNode]] = [:]
        for reply in replies.sorted(by: { $0.enqueueSeq < $1.enqueueSeq }) where bySeq[reply.triggerSeq] != nil {
            versions[reply.triggerSeq, default: []].append(reply)
        }
        var chosen: [UInt64: String] = [:]
        var end: UInt64?
        switch focus {
        case .user(let seq)?: end = seq
        case .reply(let id)?:
            if let reply = replies.first(where: { $0.id == id }), bySeq[reply.triggerSeq] != nil {
                end = reply.triggerSeq
                chosen[reply.triggerSeq] = id
            }
        case nil: break
        }
        if end == nil {
            let newestUser = users.max { $0.seq < $1.seq }
            let newestReply = versions.values.joined().max { $0.enqueueSeq < $1.enqueueSeq }
            if let reply = newestReply, reply.enqueueSeq > (newestUser?.seq ?? 0) {
                end = reply.triggerSeq
                chosen[reply.triggerSeq] = reply.id
            } else {
                end = newestUser?.seq
            }
        }
        var path: [UserNode] = []
        var next = end
        while let seq = next, let node = bySeq[seq] {
            path.append(node)
            next = node.parentSeq != 0 && node.parentSeq < node.seq ? node.parentSeq : nil
        }
        path.reverse()
        for (index, user) in path.enumerated() where chosen[user.seq] == nil {
            let list = versions[user.seq] ?? []
            let named = index + 1 < path.count ? path[index + 1].afterJobID : nil
            chosen[user.seq] = list.first { $0.id == named }?.id ?? list.last?.id
        }
        let shownUsers = Set(path.map(\.id))
        let shownReplies = Set(chosen.values)
        hiddenUsers = Set(users.map(\.id)).subtracting(shownUsers)
        hiddenReplies = Set(
            replies.filter { bySeq[$0.triggerSeq] != nil && !shownReplies.contains($0.id) }.map(\.id))
        for user in path {
            let siblings = users.filter { $0.parentSeq == user.parentSeq && $0.afterJobID == user.afterJobID }
                .sorted { $0.seq < $1.seq }
            if siblings.count > 1, let index = siblings.firstIndex(where: { $0.id == user.id }) {
                userPagers[user.id] = Pager(index: index + 1, count: siblings.count)
            }
            let list = versions[user.seq] ?? []
            if list.count > 1, let id = chosen[user.seq], let index = list.firstIndex(where: { $0.id == id }) {
                replyPagers[id] = Pager(index: index + 1, count: list.count)
            }
        }
        lastReply = path.last.flatMap { chosen[$0.seq] }
    }
}

extension ThreadFold {
    /// The default layout of the fold (the newest branch).
    var layout: ThreadLayout {
        ThreadLayout(
            users: userList.map {
                ThreadLayout.UserNode(id: $0.clientID, seq: $0.seq, parentSeq: $0.parentSeq, afterJobID: $0.afterJobID)
            },
            replies: replyList.map {
                ThreadLayout.ReplyNode(id: $0.jobID, triggerSeq: $0.triggerSeq ?? 0, enqueueSeq: $0.enqueueSeq)
            })
    }

    /// A pager's markup (the script writes the same): empty below two.
    static func pagerHTML(_ pager: ThreadLayout.Pager?, noun: String) -> String {
        guard let pager, pager.count > 1 else { return "<span class=\"pager\"></span>" }
        let first = pager.index <= 1 ? " disabled" : ""
        let last = pager.index >= pager.count ? " disabled" : ""
        return "<span class=\"pager\"><button type=\"button\" data-action=\"page\" data-step=\"-1\" "
            + "aria-label=\"Previous \(noun)\"\(first)>‹</button><span class=\"pos\">\(pager.index)/\(pager.count)"
            + "</span><button type=\"button\" data-action=\"page\" data-step=\"1\" aria-label=\"Next \(noun)\"\(last)>"
            + "›</button></span>"
    }
}
