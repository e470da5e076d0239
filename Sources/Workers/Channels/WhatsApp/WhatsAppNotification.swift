import EventLog
import Foundation
import Projections
import SwitchboardEvents

/// A WhatsApp Cloud API webhook notification (developers.facebook.com …/whatsapp/webhooks): `object`, then
/// `entry[].changes[]` whose `value` carries `messages` or `statuses` for one business phone number.
///
/// Read per item (``init(json:)``): the envelope — `object`, `entry`, `changes`, `field`, `value`, `metadata`,
/// `messages`, `statuses` — must be JSON of the right shape, or the notification is ``Unreadable`` (400); each
/// message and each status is then judged on its own and is either ``Item/valid(_:)`` or
/// ``Item/malformed(_:)``, so one bad item never costs the others of the batch. Only `changes` with
/// `field` = `messages` are read; the values of other fields are not Switchboard's and are left unread.
public struct WhatsAppNotification: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var id: String?
        public var changes: [Change]
    }

    public struct Change: Sendable, Equatable {
        public var field: String?
        /// The change's value; read only when ``field`` is `messages` (`nil` otherwise).
        public var value: Value?
    }

    public struct Value: Sendable, Equatable {
        public var metadata: Metadata?
        public var messages: [Item<Message>]
        public var statuses: [Item<Status>]
        /// The notification's error reports (an element that does not read as one is skipped).
        public var errors: [Failure]
    }

    public struct Metadata: Sendable, Equatable {
        public var display_phone_number: String?
        public var phone_number_id: String?
    }

    /// A message or status: readable, or malformed (recorded as `inbound.ignored` `malformed`).
    public enum Item<Content: Sendable & Equatable>: Sendable, Equatable {
        case valid(Content)
        case malformed(Malformed)
    }

    /// What can be said of an item that does not read: the fields that are usable, and why it is malformed.
    public struct Malformed: Sendable, Equatable {
        /// The item's `id` (the `wamid`), when it is a clean string of 1…``WhatsAppNotification/maxIDBytes`` bytes.
        public var id: String?
        /// The sender (`from`), under the same condition.
        public var from: String?
        /// The message `type`, when it is a clean short string.
        public var type: String?
        /// The status value, when it is a clean short string (known or not).
        public var status: String?
        /// Why: the field and the problem (`text.body: invalid text …`, `id: missing`, `timestamp: …`), never
        /// the value of a field.
        public var problem: String
        /// ``LenientJSON/Value/fingerprint`` of the item: its id in the log when it has no usable `id`, so a
        /// retry of the same notification is recognised.
        public var fingerprint: String
    }

    public struct Message: Decodable, Sendable, Equatable {
        public struct Text: Decodable, Sendable, Equatable { public var body: String? }
        public struct Button: Decodable, Sendable, Equatable {
            public var payload: String?
            public var text: String?
        }
        public struct Reply: Decodable, Sendable, Equatable {
            public var id: String?
            public var title: String?
        }
        public struct Interactive: Decodable, Sendable, Equatable {
            public var type: String?
            public var button_reply: Reply?
            public var list_reply: Reply?
        }
        public struct Media: Decodable, Sendable, Equatable {
            public var id: String?
            public var mime_type: String?
            public var caption: String?
        }
        public struct Context: Decodable, Sendable, Equatable {
            public var from: String?
            public var id: String?
        }

        public var from: String
        public var id: String
        public var timestamp: Timestamp?
        public var type: String?
        public var text: Text?
        public var button: Button?
        public var interactive: Interactive?
        public var image: Media?
        public var audio: Media?
        public var voice: Media?
        public var video: Media?
        public var document: Media?
        public var sticker: Media?
        public var context: Context?
    }

    /// The status values Meta documents (…/webhooks/reference/messages/status), stored as their raw values in
    /// `delivery.status`. Any other value makes its status malformed.
    public enum StatusValue: String, Sendable, Equatable, CaseIterable {
        case sent, delivered, read, failed
    }

    public struct Status: Sendable, Equatable {
        public var id: String
        public var status: StatusValue
        public var timestamp: Timestamp?
        public var recipient_id: String?
        public var errors: [Failure]
    }

    /// A status as written, before its value is checked.
    struct RawStatus: Decodable {
        var id: String
        var status: String
        var timestamp: Timestamp?
        var recipient_id: String?
        var errors: [Failure]?
    }

    /// An error report; each field is read if it has the right type and left `nil` otherwise.
    public struct Failure: Decodable, Sendable, Equatable {
        public var code: Int?
        public var title: String?
        public var message: String?

        enum CodingKeys: String, CodingKey { case code, title, message }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            code = try? container.decodeIfPresent(Int.self, forKey: .code)
            title = try? container.decodeIfPresent(String.self, forKey: .title)
            message = try? container.decodeIfPresent(String.self, forKey: .message)
        }
    }

    /// A provider time in Unix seconds: a string of decimal digits (Meta's form) or a JSON integer, from 0 to
    /// 253402300799 (9999-12-31T23:59:59Z). Anything else (`1e308`, `-1`, `soon`) fails to decode, which makes
    /// its item malformed: a nonsense time is evidence of a broken item, not a time to guess.
    public struct Timestamp: Decodable, Sendable, Equatable {
        public static let latest: Int64 = 253_402_300_799
        public var seconds: Int64

        public init?(seconds: Int64) {
            guard (0...Self.latest).contains(seconds) else { return nil }
            self.seconds = seconds
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            var seconds: Int64?
            if let text = try? container.decode(String.self) {
                if (1...12).contains(text.utf8.count), text.utf8.allSatisfy({ (0x30...0x39).contains($0) }) {
                    seconds = Int64(text)
                }
            } else {
                seconds = try? container.decode(Int64.self)
            }
            guard let seconds, let timestamp = Self(seconds: seconds) else {
                throw DecodingError.dataCorruptedError(
                    in: container, debugDescription: "not a sane number of seconds")
            }
            self = timestamp
        }
    }

    /// The body is not a notification: not JSON, or its envelope has the wrong shape.
    public struct Unreadable: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// Ids (`id`, `from`) longer than this are refused: real ones are far shorter, and the log's keys are
    /// bounded (LMDB's 511 bytes).
    public static let maxIDBytes = 200

    public var object: String?
    public var entry: [Entry]

    /// Reads a notification from the raw body (see ``LenientJSON`` for why Foundation's parser is not used).
    public init(json bytes: [UInt8]) throws(Unreadable) {
        let root: LenientJSON.Value
        do {
            root = try LenientJSON.parse(bytes)
        } catch {
            throw Unreadable(description: "not JSON: \(error)")
        }
        guard case .object = root else { throw Unreadable(description: "not a JSON object") }
        object = try Self.envelopeString(root["object"], "object")
        entry = []
        for (index, rawEntry) in try Self.envelopeArray(root["entry"], "entry").enumerated() {
            let path = "entry[\(index)]"
            try Self.envelopeObject(rawEntry, path)
            var changes: [Change] = []
            for (index, rawChange) in try Self.envelopeArray(rawEntry["changes"], path + ".changes").enumerated() {
                let path = path + ".changes[\(index)]"
                try Self.envelopeObject(rawChange, path)
                let field = try Self.envelopeString(rawChange["field"], path + ".field")
                var change = Change(field: field, value: nil)
                if field == "messages", let rawValue = rawChange["value"], !rawValue.isNull {
                    change.value = try Self.value(rawValue, path + ".value")
                }
                changes.append(change)
            }
            entry.append(Entry(id: rawEntry["id"]?.string, changes: changes))
        }
    }

    static func value(_ raw: LenientJSON.Value, _ path: String) throws(Unreadable) -> Value {
        try envelopeObject(raw, path)
        var metadata: Metadata?
        if let rawMetadata = raw["metadata"], !rawMetadata.isNull {
            try envelopeObject(rawMetadata, path + ".metadata")
            metadata = Metadata(
                display_phone_number: rawMetadata["display_phone_number"]?.string,
                phone_number_id: try envelopeString(rawMetadata["phone_number_id"], path + ".metadata.phone_number_id"))
        }
        return Value(
            metadata: metadata,
            messages: try envelopeArray(raw["messages"], path + ".messages").map(Self.message),
            statuses: try envelopeArray(raw["statuses"], path + ".statuses").map(Self.status),
            errors: try envelopeArray(raw["errors"], path + ".errors").compactMap {
                try? JSONDecoder().decode(Failure.self, from: Data($0.json))
            })
    }

    /// One message, judged on its own.
    static func message(_ raw: LenientJSON.Value) -> Item<Message> {
        let message: Message
        do {
            message = try decode(Message.self, raw)
        } catch {
            return .malformed(Malformed(raw, problem: error.description))
        }
        guard (1...maxIDBytes).contains(message.id.utf8.count) else {
            return .malformed(Malformed(raw, problem: "id: empty or too long"))
        }
        guard (1...maxIDBytes).contains(message.from.utf8.count) else {
            return .malformed(Malformed(raw, problem: "from: empty or too long"))
        }
        return .valid(message)
    }

    /// One status, judged on its own: its value must be one of ``StatusValue``.
    static func status(_ raw: LenientJSON.Value) -> Item<Status> {
        let status: RawStatus
        do {
            status = try decode(RawStatus.self, raw)
        } catch {
            return .malformed(Malformed(raw, problem: error.description))
        }
        guard (1...maxIDBytes).contains(status.id.utf8.count) else {
            return .malformed(Malformed(raw, problem: "id: empty or too long"))
        }
        guard let value = StatusValue(rawValue: status.status) else {
            // The value is named when it is a short plain word (Meta's are), so the record says what came.
            let plain = LenientJSON.Value.isPlainName(status.status)
            return .malformed(Malformed(raw, problem: "status: unknown value" + (plain ? " \"\(status.status)\"" : "")))
        }
        return .valid(
            Status(
                id: status.id, status: value, timestamp: status.timestamp, recipient_id: status.recipient_id,
                errors: status.errors ?? []))
    }

    /// Decodes a clean item with `JSONDecoder`; a repaired string anywhere in it, or a field of the wrong type,
    /// is the reason it is malformed.
    static func decode<T: Decodable>(_ type: T.Type, _ raw: LenientJSON.Value) throws(Unreadable) -> T {
        if let damage = raw.damage {
            throw Unreadable(
                description: (damage.isEmpty ? "(item)" : damage) + ": invalid text (lone surrogate or invalid UTF-8)")
        }
        guard case .object = raw else { throw Unreadable(description: "(item): not an object") }
        do {
            return try JSONDecoder().decode(T.self, from: Data(raw.json))
        } catch let error as DecodingError {
            throw Unreadable(description: error.shortDescription)
        } catch {
            throw Unreadable(description: "(item): unreadable")
        }
    }

    /// An envelope string: absent or `null` is `nil`; anything but a clean string makes the body unreadable.
    static func envelopeString(_ raw: LenientJSON.Value?, _ path: String) throws(Unreadable) -> String? {
        guard let raw, !raw.isNull else { return nil }
        guard let text = raw.string else { throw Unreadable(description: "\(path): not a string") }
        return text
    }

    /// An envelope array: absent or `null` is empty; anything but an array makes the body unreadable.
    static func envelopeArray(_ raw: LenientJSON.Value?, _ path: String) throws(Unreadable) -> [LenientJSON.Value] {
        guard let raw, !raw.isNull else { return [] }
        guard let elements = raw.elements else { throw Unreadable(description: "\(path): not an array") }
        return elements
    }

    static func envelopeObject(_ raw: LenientJSON.Value, _ path: String) throws(Unreadable) {
        guard case .object = raw else { throw Unreadable(description: "\(path): not an object") }
    }
}

extension WhatsAppNotification.Malformed {
    /// The usable fields of `raw` (clean strings of sane length) and why it is malformed.
    init(_ raw: LenientJSON.Value, problem: String) {
        func clean(_ key: String, maxBytes: Int) -> String? {
            guard let text = raw[key]?.string, (1...maxBytes).contains(text.utf8.count) else { return nil }
            return text
        }
        self.init(
            id: clean("id", maxBytes: WhatsAppNotification.maxIDBytes),
            from: clean("from", maxBytes: WhatsAppNotification.maxIDBytes), type: clean("type", maxBytes: 32),
            status: clean("status", maxBytes: 32), problem: problem, fingerprint: raw.fingerprint)
    }
}
