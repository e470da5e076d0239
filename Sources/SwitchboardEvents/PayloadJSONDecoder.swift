import EventLog
import Foundation

/// Decodes event payloads straight from their bytes: a small JSON scanner under a `Decoder`, reading object
/// members by name on demand. It accepts any JSON (whitespace, escapes, any key order); anything it does not
/// handle — numbers with fractions or exponents read as integers, `\u` escapes of surrogate pairs — makes
/// it throw, and the caller falls back to Foundation's decoder, so it can only be faster, never less correct.
enum PayloadJSONDecoding {
    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try bytes.withUnsafeBufferPointer { buffer in
            if let direct = try decodeDirectly(type, from: buffer) { return direct }
            let decoder = FastJSONDecoder(buffer, start: 0)
            return try decoder.decodeValue(type)
        }
    }
}

struct FastJSONError: Error {}

/// A view of one JSON value inside the buffer.
final class FastJSONDecoder: Decoder {
    let bytes: UnsafeBufferPointer<UInt8>
    let start: Int
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(_ bytes: UnsafeBufferPointer<UInt8>, start: Int) {
        self.bytes = bytes
        self.start = start
    }

    // MARK: Scanning

    func skipSpace(_ i: Int) -> Int {
        var i = i
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
        return i
    }

    /// The index just past the value starting at `i` (after whitespace).
    func skipValue(_ i: Int) throws -> Int {
        var i = skipSpace(i)
        guard i < bytes.count else { throw FastJSONError() }
        switch bytes[i] {
        case UInt8(ascii: "\""):
            return try endOfString(i)
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            while i < bytes.count {
                switch bytes[i] {
                case UInt8(ascii: "\""): i = try endOfString(i); continue
                case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 { return i + 1 }
                default: break
                }
                i += 1
            }
            throw FastJSONError()
        default:
            while i < bytes.count,
                ![UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x0A, 0x0D, 0x09].contains(bytes[i])
            {
                i += 1
            }
            return i
        }
    }

    /// The index just past the closing quote of the string opening at `i`.
    func endOfString(_ i: Int) throws -> Int {
        var i = i + 1
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "\\") { i += 2; continue }
            if bytes[i] == UInt8(ascii: "\"") { return i + 1 }
            i += 1
        }
        throw FastJSONError()
    }

    func string(at i: Int) throws -> String {
        let i = skipSpace(i)
        guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw FastJSONError() }
        let end = try endOfString(i)
        let body = UnsafeBufferPointer(rebasing: bytes[(i + 1)..<(end - 1)])
        if !body.contains(UInt8(ascii: "\\")) { return String(decoding: body, as: UTF8.self) }
        var out: [UInt8] = []
        out.reserveCapacity(body.count)
        var j = 0
        while j < body.count {
            let c = body[j]
            guard c == UInt8(ascii: "\\") else {
                out.append(c)
                j += 1
                continue
            }
            guard j + 1 < body.count else { throw FastJSONError() }
            switch body[j + 1] {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "u"):
                guard j + 5 < body.count,
                    let code = UInt32(
                        String(decoding: UnsafeBufferPointer(rebasing: body[(j + 2)..<(j + 6)]), as: UTF8.self),
                        radix: 16),
                    let scalar = Unicode.Scalar(code)  // surrogate pairs: not handled, fall back
                else { throw FastJSONError() }
                out += Array(String(Character(scalar)).utf8)
                j += 6
                continue
            default: throw FastJSONError()
            }
            j += 2
        }
        return String(decoding: out, as: UTF8.self)
    }

    func token(at i: Int) throws -> UnsafeBufferPointer<UInt8> {
        let i = skipSpace(i)
        return UnsafeBufferPointer(rebasing: bytes[i..<(try skipValue(i))])
    }

    func integer<I: FixedWidthInteger>(_ type: I.Type, at i: Int) throws -> I {
        let text = try token(at: i)
        guard !text.isEmpty else { throw FastJSONError() }
        var index = 0
        let negative = text[0] == UInt8(ascii: "-")
        if negative { index = 1 }
        guard index < text.count else { throw FastJSONError() }
        var value: I = 0
        while index < text.count {
            let digit = text[index]
            guard digit >= 48, digit <= 57 else { throw FastJSONError() }  // fractions and exponents: fall back
            let (times, o1) = value.multipliedReportingOverflow(by: 10)
            let (next, o2) =
                negative
                ? times.subtractingReportingOverflow(I(digit - 48)) : times.addingReportingOverflow(I(digit - 48))
            guard !o1, !o2 else { throw FastJSONError() }
            value = next
            index += 1
        }
        return value
    }

    func isNull(at i: Int) -> Bool {
        let i = skipSpace(i)
        return i + 4 <= bytes.count && bytes[i] == UInt8(ascii: "n") && bytes[i + 1] == UInt8(ascii: "u")
    }

    // MARK: Values

    func decodeValue<T: Decodable>(_ type: T.Type, at i: Int? = nil) throws -> T {
        let i = i ?? start
        if T.self == String.self { return try string(at: i) as! T }
        if T.self == Int.self { return try integer(Int.self, at: i) as! T }
        if T.self == Int64.self { return try integer(Int64.self, at: i) as! T }
        if T.self == UInt64.self { return try integer(UInt64.self, at: i) as! T }
        if T.self == Int32.self { return try integer(Int32.self, at: i) as! T }
        if T.self == UInt32.self { return try integer(UInt32.self, at: i) as! T }
        if T.self == UInt16.self { return try integer(UInt16.self, at: i) as! T }
        if T.self == UInt8.self { return try integer(UInt8.self, at: i) as! T }
        if T.self == Bool.self {
            let text = try token(at: i)
            if text.elementsEqual("true".utf8) { return true as! T }
            if text.elementsEqual("false".utf8) { return false as! T }
            throw FastJSONError()
        }
        if T.self == LogTimestamp.self { return LogTimestamp(microseconds: try integer(Int64.self, at: i)) as! T }
        if T.self == Data.self {
            guard let data = Data(base64Encoded: try string(at: i)) else { throw FastJSONError() }
            return data as! T
        }
        if T.self == Double.self || T.self == Float.self { throw FastJSONError() }
        return try T(from: FastJSONDecoder(bytes, start: i))
    }

    /// The members of the object at `start`: key bytes and value start index.
    func members() throws -> [(key: UnsafeBufferPointer<UInt8>, value: Int)] {
        var i = skipSpace(start)
        guard i < bytes.count, bytes[i] == UInt8(ascii: "{") else { throw FastJSONError() }
        i = skipSpace(i + 1)
        var out: [(key: UnsafeBufferPointer<UInt8>, value: Int)] = []
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") { return out }
        while true {
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw FastJSONError() }
            let keyEnd = try endOfString(i)
            let key = UnsafeBufferPointer(rebasing: bytes[(i + 1)..<(keyEnd - 1)])
            guard !key.contains(UInt8(ascii: "\\")) else { throw FastJSONError() }  // escaped keys: fall back
            i = skipSpace(keyEnd)
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw FastJSONError() }
            out.append((key, i + 1))
            i = skipSpace(try skipValue(i + 1))
            guard i < bytes.count else { throw FastJSONError() }
            if bytes[i] == UInt8(ascii: "}") { return out }
            guard bytes[i] == UInt8(ascii: ",") else { throw FastJSONError() }
            i = skipSpace(i + 1)
        }
    }

    func elements() throws -> [Int] {
        var i = skipSpace(start)
        guard i < bytes.count, bytes[i] == UInt8(ascii: "[") else { throw FastJSONError() }
        i = skipSpace(i + 1)
        var out: [Int] = []
        if i < bytes.count, bytes[i] == UInt8(ascii: "]") { return out }
        while true {
            out.append(i)
            i = skipSpace(try skipValue(i))
            guard i < bytes.count else { throw FastJSONError() }
            if bytes[i] == UInt8(ascii: "]") { return out }
            guard bytes[i] == UInt8(ascii: ",") else { throw FastJSONError() }
            i = skipSpace(i + 1)
        }
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(Keyed<Key>(decoder: self, members: try members()))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer { Unkeyed(decoder: self, items: try elements()) }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { Single(decoder: self) }

    struct Keyed<Key: CodingKey>: KeyedDecodingContainerProtocol {
        let decoder: FastJSONDecoder
        let members: [(key: UnsafeBufferPointer<UInt8>, value: Int)]
        var codingPath: [any CodingKey] { [] }
        var allKeys: [Key] { members.compactMap { Key(stringValue: String(decoding: $0.key, as: UTF8.self)) } }

        func find(_ key: Key) -> Int? {
            var name = key.stringValue
            return name.withUTF8 { utf8 in members.first { $0.key.elementsEqual(utf8) }?.value }
        }

        func contains(_ key: Key) -> Bool { find(key) != nil }
        func decodeNil(forKey key: Key) throws -> Bool { find(key).map { decoder.isNull(at: $0) } ?? true }
        func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
            guard let at = find(key), !decoder.isNull(at: at) else { throw FastJSONError() }
            return try decoder.decodeValue(type, at: at)
        }
        func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
            guard let at = find(key), !decoder.isNull(at: at) else { return nil }
            return try decoder.decodeValue(type, at: at)
        }
        func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
            -> KeyedDecodingContainer<NestedKey>
        {
            guard let at = find(key) else { throw FastJSONError() }
            return try FastJSONDecoder(decoder.bytes, start: at).container(keyedBy: type)
        }
        func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
            guard let at = find(key) else { throw FastJSONError() }
            return try FastJSONDecoder(decoder.bytes, start: at).unkeyedContainer()
        }
        func superDecoder() throws -> any Decoder { throw FastJSONError() }
        func superDecoder(forKey key: Key) throws -> any Decoder { throw FastJSONError() }
    }

    struct Unkeyed: UnkeyedDecodingContainer {
        let decoder: FastJSONDecoder
        let items: [Int]
        var codingPath: [any CodingKey] { [] }
        var count: Int? { items.count }
        var currentIndex = 0
        var isAtEnd: Bool { currentIndex >= items.count }

        mutating func decodeNil() throws -> Bool {
            guard !isAtEnd else { throw FastJSONError() }
            if decoder.isNull(at: items[currentIndex]) {
                currentIndex += 1
                return true
            }
            return false
        }
        mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
            guard !isAtEnd else { throw FastJSONError() }
            defer { currentIndex += 1 }
            return try decoder.decodeValue(type, at: items[currentIndex])
        }
        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws
            -> KeyedDecodingContainer<NestedKey>
        {
            guard !isAtEnd else { throw FastJSONError() }
            defer { currentIndex += 1 }
            return try FastJSONDecoder(decoder.bytes, start: items[currentIndex]).container(keyedBy: type)
        }
        mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
            guard !isAtEnd else { throw FastJSONError() }
            defer { currentIndex += 1 }
            return try FastJSONDecoder(decoder.bytes, start: items[currentIndex]).unkeyedContainer()
        }
        mutating func superDecoder() throws -> any Decoder { throw FastJSONError() }
    }

    struct Single: SingleValueDecodingContainer {
        let decoder: FastJSONDecoder
        var codingPath: [any CodingKey] { [] }
        func decodeNil() -> Bool { decoder.isNull(at: decoder.start) }
        func decode<T: Decodable>(_ type: T.Type) throws -> T { try decoder.decodeValue(type) }
    }
}

/// The direct payload decoder alone, without the Foundation fallback (for differential tests, with `@testable`).
enum DirectPayloadDecoder {
    static func decode<E: EventPayload>(_ type: E.Type, _ bytes: [UInt8]) throws -> E {
        try PayloadJSONDecoding.decode(type, from: bytes)
    }
}
