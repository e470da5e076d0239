import Foundation
import SwitchboardJSON

/// The linked device's sidecar protocol (docs/channels.md, "The protocol between the agent and the sidecar"): JSON
/// lines, commands on the sidecar's stdin and events on its stdout. Auth values are Baileys' `BufferJSON` and are
/// kept as opaque JSON (``JSONValue``): the agent stores them and gives them back, never reads them.
public enum SidecarProtocol {
    /// The longest line either side accepts.
    public static let maxLineBytes = 4 << 20

    /// Encodes `command` as one line (with its `\n`).
    public static func line(_ command: SidecarCommand) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var bytes = (try? encoder.encode(command)).map { [UInt8]($0) } ?? Array(#"{"type":"stop"}"#.utf8)
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }

    /// Decodes one line into an event; `nil` for an event type this build does not know (ignored, logged).
    public static func event(_ line: some Collection<UInt8>) throws(SidecarProtocolError) -> SidecarEvent? {
        do {
            return try JSONDecoder().decode(SidecarEvent.self, from: Data(line)).known
        } catch {
            throw SidecarProtocolError(message: "\(error)".prefix(200).description)
        }
    }
}

/// A line that is not a well-formed event.
public struct SidecarProtocolError: Error, Sendable, Equatable {
    public var message: String
}

/// The linked device's auth state: Baileys' `creds` and its Signal keys (`{<key type>: {<id>: value}}`).
public struct LinkedAuthState: Sendable, Equatable, Codable {
    public var creds: JSONValue
    public var keys: [String: [String: JSONValue]]

    public init(creds: JSONValue, keys: [String: [String: JSONValue]] = [:]) {
        self.creds = creds
        self.keys = keys
    }
}

/// A command to the sidecar.
public enum SidecarCommand: Sendable, Equatable, Encodable {
    case start(account: String, auth: LinkedAuthState?, browser: [String], staleAfterMs: Int, waWebSocketUrl: String?)
    /// The tenure is good for this long: without a new one in time the sidecar closes its socket by itself.
    case lease(validForMs: Int)
    case connect
    case pair(phone: String)
    case send(id: String, jid: String, text: String, quoted: String?)
    case presence(jid: String, state: String)
    case read(jid: String, ids: [String])
    case authCommitted(batch: Int)
    case authRefused(batch: Int, reason: String)
    case stop
    case logout

    private enum Keys: String, CodingKey {
        case type, account, auth, browser, staleAfterMs, waWebSocketUrl, phone, id, jid, text, quoted, state, ids
        case batch, reason, validForMs
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        switch self {
        case .start(let account, let auth, let browser, let staleAfterMs, let url):
            try c.encode("start", forKey: .type)
            try c.encode(account, forKey: .account)
            if let auth { try c.encode(auth, forKey: .auth) } else { try c.encodeNil(forKey: .auth) }
            try c.encode(browser, forKey: .browser)
            try c.encode(staleAfterMs, forKey: .staleAfterMs)
            try c.encodeIfPresent(url, forKey: .waWebSocketUrl)
        case .lease(let validFor):
            try c.encode("lease", forKey: .type)
            try c.encode(validFor, forKey: .validForMs)
        case .connect:
            try c.encode("connect", forKey: .type)
        case .pair(let phone):
            try c.encode("pair", forKey: .type)
            try c.encode(phone, forKey: .phone)
        case .send(let id, let jid, let text, let quoted):
            try c.encode("send", forKey: .type)
            try c.encode(id, forKey: .id)
            try c.encode(jid, forKey: .jid)
            try c.encode(text, forKey: .text)
            try c.encodeIfPresent(quoted, forKey: .quoted)
        case .presence(let jid, let state):
            try c.encode("presence", forKey: .type)
            try c.encode(jid, forKey: .jid)
            try c.encode(state, forKey: .state)
        case .read(let jid, let ids):
            try c.encode("read", forKey: .type)
            try c.encode(jid, forKey: .jid)
            try c.encode(ids, forKey: .ids)
        case .authCommitted(let batch):
            try c.encode("auth_committed", forKey: .type)
            try c.encode(batch, forKey: .batch)
        case .authRefused(let batch, let reason):
            try c.encode("auth_refused", forKey: .type)
            try c.encode(batch, forKey: .batch)
            try c.encode(reason, forKey: .reason)
        case .stop:
            try c.encode("stop", forKey: .type)
        case .logout:
            try c.encode("logout", forKey: .type)
        }
    }
}

/// One inbound (or own) message as the sidecar reports it.
public struct SidecarMessage: Sendable, Equatable, Codable {
    /// `notify` (live) or `append` (caught up after a reconnect, or sent from another device).
    public var upsert: String
    public var id: String
    /// The chat's jid: `<digits>@s.whatsapp.net`, `<id>@g.us`, `<n>@lid`.
    public var chat: String
    /// The sender's jid (the participant in a group, else the chat).
    public var sender: String?
    public var fromMe: Bool
    public var pushName: String?
    /// Seconds since 1970.
    public var timestamp: Int64?
    public var text: String?
    /// `text`, `extended`, `caption`, `reply` or `other`.
    public var kind: String
    public var quotedID: String?
    /// The jids a group message @-mentions.
    public var mentions: [String]?
    /// Who wrote the quoted message (a group's participant).
    public var quotedSender: String?

    public init(
        upsert: String = "notify", id: String, chat: String, sender: String? = nil, fromMe: Bool = false,
        pushName: String? = nil, timestamp: Int64? = nil, text: String?, kind: String = "text", quotedID: String? = nil,
        mentions: [String]? = nil, quotedSender: String? = nil
    ) {
        self.mentions = mentions
        self.quotedSender = quotedSender
        self.upsert = upsert
        self.id = id
        self.chat = chat
        self.sender = sender
        self.fromMe = fromMe
        self.pushName = pushName
        self.timestamp = timestamp
        self.text = text
        self.kind = kind
        self.quotedID = quotedID
    }
}

/// One auth write of the socket: the whole creds when they changed, and a batch of key writes (`nil` deletes).
public struct SidecarAuthBatch: Sendable, Equatable, Codable {
    public var batch: Int
    public var creds: JSONValue?
    public var keys: [String: [String: JSONValue]]?

    public init(batch: Int, creds: JSONValue? = nil, keys: [String: [String: JSONValue]]? = nil) {
        self.batch = batch
        self.creds = creds
        self.keys = keys
    }
}

/// An event from the sidecar.
public enum SidecarEvent: Sendable, Equatable, Codable {
    case ready(version: String?)
    case qr(String, expiresInMs: Int?)
    case pairingCode(String)
    case connected(jid: String, name: String?)
    case disconnected(code: Int, reason: String, message: String?)
    case auth(SidecarAuthBatch)
    case message(SidecarMessage)
    case receipt(id: String, chat: String, status: Int)
    case sent(id: String, messageID: String?)
    case sendFailed(id: String, uncertain: Bool, reason: String)
    case stale(sinceMs: Int)
    /// A type this build does not know.
    case unknown(String)

    var known: SidecarEvent? {
        if case .unknown = self { return nil }
        return self
    }

    private enum Keys: String, CodingKey {
        case type, version, qr, expiresInMs, code, jid, name, reason, message, batch, creds, keys, id, chat, status
        case messageID, uncertain, sinceMs
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        let type = try c.decode(String.self, forKey: .type)
        switch type {
        case "ready": self = .ready(version: try c.decodeIfPresent(String.self, forKey: .version))
        case "qr":
            self = .qr(
                try c.decode(String.self, forKey: .qr),
                expiresInMs: try c.decodeIfPresent(Int.self, forKey: .expiresInMs))
        case "pairing_code": self = .pairingCode(try c.decode(String.self, forKey: .code))
        case "connected":
            self = .connected(
                jid: try c.decode(String.self, forKey: .jid), name: try c.decodeIfPresent(String.self, forKey: .name))
        case "disconnected":
            self = .disconnected(
                code: try c.decodeIfPresent(Int.self, forKey: .code) ?? 0,
                reason: try c.decodeIfPresent(String.self, forKey: .reason) ?? "unknown",
                message: try c.decodeIfPresent(String.self, forKey: .message))
        case "auth": self = .auth(try SidecarAuthBatch(from: decoder))
        case "message": self = .message(try SidecarMessage(from: decoder))
        case "receipt":
            self = .receipt(
                id: try c.decode(String.self, forKey: .id), chat: try c.decode(String.self, forKey: .chat),
                status: try c.decode(Int.self, forKey: .status))
        case "sent":
            self = .sent(
                id: try c.decode(String.self, forKey: .id),
                messageID: try c.decodeIfPresent(String.self, forKey: .messageID))
        case "send_failed":
            self = .sendFailed(
                id: try c.decode(String.self, forKey: .id),
                uncertain: try c.decodeIfPresent(Bool.self, forKey: .uncertain) ?? true,
                reason: try c.decodeIfPresent(String.self, forKey: .reason) ?? "unknown")
        case "stale": self = .stale(sinceMs: try c.decodeIfPresent(Int.self, forKey: .sinceMs) ?? 0)
        default: self = .unknown(type)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        switch self {
        case .ready(let version):
            try c.encode("ready", forKey: .type)
            try c.encodeIfPresent(version, forKey: .version)
        case .qr(let qr, let expires):
            try c.encode("qr", forKey: .type)
            try c.encode(qr, forKey: .qr)
            try c.encodeIfPresent(expires, forKey: .expiresInMs)
        case .pairingCode(let code):
            try c.encode("pairing_code", forKey: .type)
            try c.encode(code, forKey: .code)
        case .connected(let jid, let name):
            try c.encode("connected", forKey: .type)
            try c.encode(jid, forKey: .jid)
            try c.encodeIfPresent(name, forKey: .name)
        case .disconnected(let code, let reason, let message):
            try c.encode("disconnected", forKey: .type)
            try c.encode(code, forKey: .code)
            try c.encode(reason, forKey: .reason)
            try c.encodeIfPresent(message, forKey: .message)
        case .auth(let batch):
            try c.encode("auth", forKey: .type)
            try batch.encode(to: encoder)
        case .message(let message):
            try c.encode("message", forKey: .type)
            try message.encode(to: encoder)
        case .receipt(let id, let chat, let status):
            try c.encode("receipt", forKey: .type)
            try c.encode(id, forKey: .id)
            try c.encode(chat, forKey: .chat)
            try c.encode(status, forKey: .status)
        case .sent(let id, let messageID):
            try c.encode("sent", forKey: .type)
            try c.encode(id, forKey: .id)
            try c.encodeIfPresent(messageID, forKey: .messageID)
        case .sendFailed(let id, let uncertain, let reason):
            try c.encode("send_failed", forKey: .type)
            try c.encode(id, forKey: .id)
            try c.encode(uncertain, forKey: .uncertain)
            try c.encode(reason, forKey: .reason)
        case .stale(let since):
            try c.encode("stale", forKey: .type)
            try c.encode(since, forKey: .sinceMs)
        case .unknown(let type):
            try c.encode(type, forKey: .type)
        }
    }
}
