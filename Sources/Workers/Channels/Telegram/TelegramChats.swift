import Foundation
import Logging
import Synchronization

/// Group chats that became supergroups (`migrate_to_chat_id`): the conversation keeps the chat's first id, sends
/// go to its newest id. Kept in the account's session (`chat-migrated:<old>` = `<new>`), so every process and
/// every restart agrees.
public final class TelegramChats: Sendable {
    private let moves = Mutex<[Int64: Int64]>([:])
    /// Where migrations are written; `nil` in tests and tools that only read.
    let session: ChannelSession?
    static let prefix = "chat-migrated:"

    public init(session: ChannelSession? = nil) {
        self.session = session
        if let session { load(session.entries()) }
    }

    /// Loads the migrations among session `entries`.
    public func load(_ entries: [String: Data]) {
        var loaded: [Int64: Int64] = [:]
        for (key, value) in entries where key.hasPrefix(Self.prefix) {
            if let old = Int64(key.dropFirst(Self.prefix.count)),
                let new = Int64(String(decoding: value, as: UTF8.self))
            {
                loaded[old] = new
            }
        }
        moves.withLock { $0.merge(loaded) { $1 } }
    }

    /// The id the chat had first (`chat` itself when it never migrated).
    public func original(of chat: Int64) -> Int64 {
        moves.withLock { moves in
            var id = chat
            for _ in 0..<8 {
                guard let old = moves.first(where: { $0.value == id })?.key else { break }
                id = old
            }
            return id
        }
    }

    /// The id to send to now (`chat` itself when it never migrated).
    public func current(of chat: Int64) -> Int64 {
        moves.withLock { moves in
            var id = chat
            for _ in 0..<8 {
                guard let new = moves[id] else { break }
                id = new
            }
            return id
        }
    }

    /// Remembers that `old` is now `new` (in memory at once; in the session when this process holds the lease).
    public func migrated(from old: Int64, to new: Int64) async {
        let changed = moves.withLock { moves -> Bool in
            guard moves[old] != new else { return false }
            moves[old] = new
            return true
        }
        guard changed, let session else { return }
        await session.write(["\(Self.prefix)\(old)": Data(String(new).utf8)])
    }
}
