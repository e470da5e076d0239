import Foundation
import SwitchboardJSON

/// What the agent does after the linked device's socket closed, by Baileys' `DisconnectReason` code (a pure
/// function: docs/channels.md, "Disconnects").
public enum LinkedDevicePolicy {
    public enum Action: Sendable, Equatable {
        /// Open a new socket at once (515 after pairing: the server asks for a restart).
        case reconnectNow
        /// Open a new socket after a backoff with jitter.
        case reconnect(after: Duration)
        /// The device was unlinked (401 logged out, 411 multi-device mismatch): clear the session, pause, alert.
        case unlinked
        /// Another client took the number (440): stop, never fight back, alert.
        case replaced
        /// WhatsApp refused the account (403): pause, alert; the session is kept.
        case refused
    }

    /// A channel health reason for `code`, as `channel.disconnected` records it.
    public static func reason(code: Int, name: String) -> String {
        switch code {
        case 401: "logged_out"
        case 403: "forbidden"
        case 411: "multidevice_mismatch"
        case 440: "connection_replaced"
        case 515: "restart_required"
        case 408: "timed_out"
        case 428: "connection_closed"
        case 500: "bad_session"
        case 503: "unavailable"
        default: name == "stale" ? "stale" : "socket_closed"
        }
    }

    /// The action after a close with `code`; `failures` counts the closes since the socket was last open (1 for
    /// the first); `jitter` is in 0..<1 (the caller draws it).
    public static func afterClose(code: Int, failures: Int, jitter: Double) -> Action {
        switch code {
        case 515: return failures <= 3 ? .reconnectNow : .reconnect(after: backoff(failures - 3, jitter: jitter))
        case 401, 411: return .unlinked
        case 440: return .replaced
        case 403: return .refused
        default: return .reconnect(after: backoff(failures, jitter: jitter))
        }
    }

    /// 1 s doubling to 60 s, plus up to a quarter of it as jitter.
    public static func backoff(_ failures: Int, jitter: Double) -> Duration {
        let base = min(60.0, pow(2.0, Double(max(0, min(failures - 1, 6)))))
        return .milliseconds(Int((base * (1 + 0.25 * max(0, min(jitter, 1)))) * 1000))
    }
}

/// How the linked device's auth state is kept in the session store (namespace `whatsapp/<account>`): one entry
/// for the creds, one per Signal key, so each Baileys batch writes only what changed, in one transaction.
public enum LinkedSessionLayout {
    /// Baileys' creds (BufferJSON text).
    public static let creds = "web.creds"
    /// The prefix of key entries: `web.key.<type>.<id>`.
    public static let keyPrefix = "web.key."
    /// The linked number's jid, from the last `connected`.
    public static let linkedJID = "web.jid"
    /// The QR to scan while linking, with its expiry (JSON), for /settings in any process; removed once linked.
    public static let linkQR = "web.link.qr"

    /// Whether the store holds a linked session.
    public static func isLinked(_ entries: [String: Data]) -> Bool { entries[creds] != nil }

    /// The auth state stored in `entries`, or `nil` when there is none (or it does not read).
    public static func authState(_ entries: [String: Data]) -> LinkedAuthState? {
        guard let data = entries[creds], let creds = JSONValue(json: Array(data)) else { return nil }
        var keys: [String: [String: JSONValue]] = [:]
        for (entry, value) in entries where entry.hasPrefix(keyPrefix) {
            let rest = entry.dropFirst(keyPrefix.count)
            guard let dot = rest.firstIndex(of: "."), let json = JSONValue(json: Array(value)) else { continue }
            keys[String(rest[..<dot]), default: [:]][String(rest[rest.index(after: dot)...])] = json
        }
        return LinkedAuthState(creds: creds, keys: keys)
    }

    /// The session changes of one auth batch: `nil` for a key the batch deletes.
    public static func changes(_ batch: SidecarAuthBatch) -> [String: Data?] {
        var changes: [String: Data?] = [:]
        if let creds = batch.creds { changes[Self.creds] = Data(creds.jsonText.utf8) }
        for (type, values) in batch.keys ?? [:] {
            for (id, value) in values {
                let entry = keyPrefix + type + "." + id
                if case .null = value {
                    changes[entry] = .some(nil)
                } else {
                    changes[entry] = Data(value.jsonText.utf8)
                }
            }
        }
        return changes
    }

    /// The changes that forget the link (every `web.*` entry).
    public static func unlink(_ entries: [String: Data]) -> [String: Data?] {
        var changes: [String: Data?] = [:]
        for entry in entries.keys where entry.hasPrefix("web.") { changes[entry] = .some(nil) }
        return changes
    }
}
