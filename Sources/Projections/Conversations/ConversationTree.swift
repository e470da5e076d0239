/// A conversation's messages as a tree: each user message follows a parent user message (`parentSeq`, `0` for
/// none) and was written beside one version of its parent's reply (`afterJobID`); each reply answers one user
/// message (`triggerSeq`), and several replies to one message are its versions (Regenerate). An edited message
/// is a sibling of the one it edits (same parent): a branch.
///
/// A linear chat (every channel conversation) is the tree where each message's parent is the previous user
/// message and each message has one reply; its history is exactly the messages in seq order.
public struct ConversationTree: Sendable {
    private var users: [UInt64: HistoryMessage] = [:]
    private var replies: [UInt64: [HistoryMessage]] = [:]
    /// Assistant messages that answer no message (a scheduled task's): in the history of every later message.
    private var unanchored: [HistoryMessage] = []

    /// The tree of `messages` (a conversation's history, any order).
    public init(_ messages: [HistoryMessage]) {
        for message in messages.sorted(by: { $0.seq < $1.seq }) {
            if message.role == "user" {
                users[message.seq] = message
            } else if let trigger = message.triggerSeq {
                replies[trigger, default: []].append(message)
            } else {
                unanchored.append(message)
            }
        }
    }

    /// The user messages from the first to `seq`, following parents (oldest first).
    public func path(to seq: UInt64) -> [HistoryMessage] {
        var path: [HistoryMessage] = []
        var next = seq
        while let node = users[next] {
            path.append(node)
            // A parent is always older; anything else is a damaged record, and the walk stops there.
            guard node.parentSeq != 0, node.parentSeq < node.seq else { break }
            next = node.parentSeq
        }
        return path.reversed()
    }

    /// The messages a reply to user message `triggerSeq` is built from, oldest first, ending with it: the user
    /// messages on its path, and for each of them before it the reply version shown when the next one was written
    /// (the one it names, else the newest written before `triggerSeq`). Its own earlier replies (versions being
    /// regenerated) are not part of it, nor any message of another branch.
    ///
    /// Commands are not conversation: a `/new` on the path starts the history after it (whatever the next message
    /// named as its parent), and the other commands' messages are left out.
    public func history(answering triggerSeq: UInt64) -> [HistoryMessage] {
        var path = path(to: triggerSeq)
        var start: UInt64 = 0
        if let reset = path.lastIndex(where: { TypedCommand($0.text)?.command == .new }) {
            start = path[reset].seq
            path.removeFirst(reset + 1)
        }
        guard !path.isEmpty else { return [] }
        var out: [HistoryMessage] = path
        for (index, user) in path.dropLast().enumerated() {
            let versions = (replies[user.seq] ?? []).filter { $0.seq < triggerSeq }
            let child = path[index + 1]
            let shown =
                child.afterJobID.flatMap { id in versions.last { $0.jobID == id } } ?? versions.last
            if let shown { out.append(shown) }
        }
        out += unanchored.filter { $0.seq < triggerSeq && $0.seq > start }
        return out.filter { $0.role != "user" || TypedCommand($0.text) == nil || $0.seq == triggerSeq }
            .sorted { $0.seq < $1.seq }
    }

    /// The replies to user message `seq`, oldest first (its versions).
    public func versions(of seq: UInt64) -> [HistoryMessage] { replies[seq] ?? [] }

    /// The user messages that follow `seq` (`0`: the first messages of the conversation), oldest first: more than
    /// one means an edit branched there.
    public func children(of seq: UInt64) -> [HistoryMessage] {
        users.values.filter { $0.parentSeq == seq }.sorted { $0.seq < $1.seq }
    }
}
