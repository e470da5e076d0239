import EventLog
import Foundation

/// Encodes event payloads as JSON straight into bytes, without Foundation's intermediate tree.
///
/// The output is ordinary JSON any reader decodes (`JSONDecoder`, `jq`): object keys in the order the type's
/// `Codable` conformance encodes them (declaration order for synthesized conformances), `nil` optionals
/// omitted, `[String: String]` with sorted keys, `Data` as base64, integers exact, and no whitespace. The same
/// value always encodes to the same bytes. Event encoding runs inside the write transaction, on the writer
/// thread, so its cost bounds how many decisions a group commit can make.
enum PayloadJSON {
    static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        if let direct = value as? any DirectJSONPayload {
            let encoder = PayloadJSONEncoder()
            var object = JSONObjectWriter(encoder)
            direct.writeJSON(&object)
            object.end()
            return encoder.bytes
        }
        return try encodeWithCodable(value)
    }

    /// The `Codable` path alone (what direct payloads must match).
    static func encodeWithCodable<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = PayloadJSONEncoder()
        try encoder.encodeValue(value)
        return encoder.bytes
    }
}

final class PayloadJSONEncoder: Encoder {
    enum Kind { case keyed, unkeyed, single }
    struct Frame {
        var kind: Kind
        var count = 0
    }

    var bytes: [UInt8] = []
    var stack: [Frame] = []
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init() { bytes.reserveCapacity(256) }

    func string(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { utf8 in
            var start = 0
            for (index, byte) in utf8.enumerated() where byte < 0x20 || byte == 0x22 || byte == 0x5C {
                bytes += utf8[start..<index]
                switch byte {
                case 0x22: bytes += [0x5C, 0x22]
                case 0x5C: bytes += [0x5C, 0x5C]
                case 0x0A: bytes += [0x5C, UInt8(ascii: "n")]
                case 0x0D: bytes += [0x5C, UInt8(ascii: "r")]
                case 0x09: bytes += [0x5C, UInt8(ascii: "t")]
                default:
                    let hex = Array("0123456789abcdef".utf8)
                    bytes += [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
                }
                start = index + 1
            }
            bytes += utf8[start...]
        }
        bytes.append(UInt8(ascii: "\""))
    }

    func number<I: FixedWidthInteger>(_ value: I) {
        // Digits written backwards into a small buffer: no intermediate String.
        var magnitude = UInt64(truncatingIfNeeded: value.magnitude)
        if I.isSigned && value < 0 { bytes.append(UInt8(ascii: "-")) }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: enough for 20 digits
        withUnsafeMutableBytes(of: &digits) { buffer in
            var index = buffer.count
            repeat {
                index -= 1
                buffer[index] = UInt8(truncatingIfNeeded: magnitude % 10) + UInt8(ascii: "0")
                magnitude /= 10
            } while magnitude > 0
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[index...]))
        }
    }

    /// A `[String: String]`, keys sorted.
    func stringDictionary(_ value: [String: String]) {
        bytes.append(UInt8(ascii: "{"))
        for (index, key) in value.keys.sorted().enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            string(key)
            bytes.append(UInt8(ascii: ":"))
            string(value[key]!)
        }
        bytes.append(UInt8(ascii: "}"))
    }

    /// A member name: coding keys are plain identifiers, written without escaping.
    func name(_ name: String) {
        var text = name
        let plain = text.withUTF8 { utf8 in
            guard utf8.allSatisfy({ $0 >= 0x20 && $0 != 0x22 && $0 != 0x5C }) else { return false }
            bytes.append(UInt8(ascii: "\""))
            bytes.append(contentsOf: utf8)
            bytes.append(UInt8(ascii: "\""))
            return true
        }
        if !plain { string(name) }
    }

    func boolean(_ value: Bool) { bytes += Array((value ? "true" : "false").utf8) }

    func double(_ value: Double) throws {
        guard value.isFinite else {
            throw EncodingError.invalidValue(value, .init(codingPath: [], debugDescription: "non-finite number"))
        }
        if value == value.rounded(), abs(value) < 1e15 {
            bytes += Array(String(Int64(value)).utf8)
        } else {
            bytes += Array("\(value)".utf8)
        }
    }

    func encodeValue<T: Encodable>(_ value: T) throws {
        // Type identity checks, not casts: an `as` pattern per case is a runtime cast each time it fails.
        if T.self == String.self { return string(unsafeBitCast(value, to: String.self)) }
        if T.self == LogTimestamp.self { return number(unsafeBitCast(value, to: LogTimestamp.self).microseconds) }
        if T.self == UInt64.self { return number(unsafeBitCast(value, to: UInt64.self)) }
        if T.self == Int.self { return number(unsafeBitCast(value, to: Int.self)) }
        if T.self == Int64.self { return number(unsafeBitCast(value, to: Int64.self)) }
        if T.self == Bool.self { return boolean(unsafeBitCast(value, to: Bool.self)) }
        switch value {
        case let v as Int32: number(v)
        case let v as UInt32: number(v)
        case let v as UInt16: number(v)
        case let v as UInt8: number(v)
        case let v as Double: try double(v)
        case let v as Data: string(v.base64EncodedString())
        case let v as [String: String]: stringDictionary(v)
        default:
            let level = stack.count
            try value.encode(to: self)
            if stack.count == level { bytes += Array("null".utf8) }  // encoded nothing at all
            while stack.count > level { close() }
        }
    }

    private func close() {
        switch stack.removeLast().kind {
        case .keyed: bytes.append(UInt8(ascii: "}"))
        case .unkeyed: bytes.append(UInt8(ascii: "]"))
        case .single: break
        }
    }

    func open(_ kind: Kind) -> Int {
        stack.append(Frame(kind: kind))
        switch kind {
        case .keyed: bytes.append(UInt8(ascii: "{"))
        case .unkeyed: bytes.append(UInt8(ascii: "["))
        case .single: break
        }
        return stack.count - 1
    }

    /// Writes the separator before the next member of frame `index`.
    func member(_ index: Int) {
        if stack[index].count > 0 { bytes.append(UInt8(ascii: ",")) }
        stack[index].count += 1
    }

    func key(_ index: Int, _ name: String) {
        member(index)
        self.name(name)
        bytes.append(UInt8(ascii: ":"))
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        KeyedEncodingContainer(Keyed<Key>(encoder: self, frame: open(.keyed)))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer { Unkeyed(encoder: self, frame: open(.unkeyed)) }

    func singleValueContainer() -> any SingleValueEncodingContainer { Single(encoder: self, frame: open(.single)) }

    struct Keyed<Key: CodingKey>: KeyedEncodingContainerProtocol {
        let encoder: PayloadJSONEncoder
        let frame: Int
        var codingPath: [any CodingKey] { [] }

        mutating func encodeNil(forKey key: Key) throws {
            encoder.key(frame, key.stringValue)
            encoder.bytes += Array("null".utf8)
        }
        mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
            encoder.key(frame, key.stringValue)
            try encoder.encodeValue(value)
        }
        mutating func encode(_ value: String, forKey key: Key) throws {
            encoder.key(frame, key.stringValue)
            encoder.string(value)
        }
        mutating func encode(_ value: Int, forKey key: Key) throws {
            encoder.key(frame, key.stringValue)
            encoder.number(value)
        }
        mutating func encode(_ value: UInt64, forKey key: Key) throws {
            encoder.key(frame, key.stringValue)
            encoder.number(value)
        }
        mutating func encode(_ value: Int64, forKey key: Key) throws {
            encoder.key(frame, key.stringValue)
            encoder.number(value)
        }
        mutating func encode(_ value: Bool, forKey key: Key) throws {
            encoder.key(frame, key.stringValue)
            encoder.boolean(value)
        }
        mutating func encodeIfPresent(_ value: String?, forKey key: Key) throws {
            guard let value else { return }
            try encode(value, forKey: key)
        }
        mutating func encodeIfPresent(_ value: Int?, forKey key: Key) throws {
            guard let value else { return }
            try encode(value, forKey: key)
        }
        mutating func encodeIfPresent(_ value: UInt64?, forKey key: Key) throws {
            guard let value else { return }
            try encode(value, forKey: key)
        }
        mutating func encodeIfPresent<T: Encodable>(_ value: T?, forKey key: Key) throws {
            guard let value else { return }
            try encode(value, forKey: key)
        }
        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key)
            -> KeyedEncodingContainer<NestedKey>
        {
            encoder.key(frame, key.stringValue)
            return encoder.container(keyedBy: keyType)
        }
        mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
            encoder.key(frame, key.stringValue)
            return encoder.unkeyedContainer()
        }
        mutating func superEncoder() -> any Encoder { encoder }
        mutating func superEncoder(forKey key: Key) -> any Encoder { encoder }
    }

    struct Unkeyed: UnkeyedEncodingContainer {
        let encoder: PayloadJSONEncoder
        let frame: Int
        var codingPath: [any CodingKey] { [] }
        var count: Int { encoder.stack.indices.contains(frame) ? encoder.stack[frame].count : 0 }

        mutating func encodeNil() throws {
            encoder.member(frame)
            encoder.bytes += Array("null".utf8)
        }
        mutating func encode<T: Encodable>(_ value: T) throws {
            encoder.member(frame)
            try encoder.encodeValue(value)
        }
        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type)
            -> KeyedEncodingContainer<NestedKey>
        {
            encoder.member(frame)
            return encoder.container(keyedBy: keyType)
        }
        mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
            encoder.member(frame)
            return encoder.unkeyedContainer()
        }
        mutating func superEncoder() -> any Encoder { encoder }
    }

    struct Single: SingleValueEncodingContainer {
        let encoder: PayloadJSONEncoder
        let frame: Int
        var codingPath: [any CodingKey] { [] }
        mutating func encodeNil() throws { encoder.bytes += Array("null".utf8) }
        mutating func encode<T: Encodable>(_ value: T) throws { try encoder.encodeValue(value) }
    }
}
