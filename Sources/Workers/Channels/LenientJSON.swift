import Crypto
import Foundation

/// A JSON reader that is strict about structure and lenient inside string literals, so that one provider item
/// with bad text cannot make a whole batch unreadable.
///
/// Foundation's parsers (`JSONDecoder`, `JSONSerialization`) reject the **whole document** when any string in it
/// holds a lone UTF-16 surrogate escape (`"\ud800"`), invalid UTF-8 bytes, a raw control character or an unknown
/// escape. A WhatsApp notification batches several messages, so one such message would make all of them
/// unreadable (a 400, which Meta retries for days and then drops). Repairing the raw bytes before Foundation sees
/// them cannot say *which* item was damaged, so this reader parses the document itself:
///
/// - the structure (objects, arrays, numbers, literals, nesting up to ``maxDepth``) must be RFC 8259 JSON, or
///   ``parse(_:)`` throws — the caller answers 400 as before;
/// - inside a string literal, whose end is never ambiguous (the first unescaped `"`), every problem is repaired to
///   U+FFFD and the string is marked ``Text/damaged``: a lone or reversed surrogate escape, a short `\u` escape, an
///   unknown escape, a raw control character, invalid UTF-8.
///
/// The caller then judges each item on its own (``Value/damage``): a damaged item is recorded as malformed, the
/// others are decoded normally (``Value/json`` re-serializes a clean item for `JSONDecoder`). Nothing here traps:
/// every index is bounds-checked and recursion is capped by ``maxDepth``.
struct LenientJSON {
    /// A string as read: its text (repaired) and whether it needed repairs.
    struct Text: Sendable, Equatable {
        var value: String
        var damaged: Bool
    }

    /// One member of an object, in document order (duplicate keys are kept; lookups and ``Value/json`` take the
    /// last).
    struct Member: Sendable, Equatable {
        var key: Text
        var value: Value
    }

    /// A JSON value. Numbers keep their literal text (validated against the JSON grammar).
    indirect enum Value: Sendable, Equatable {
        case object([Member])
        case array([Value])
        case string(Text)
        case number(String)
        case bool(Bool)
        case null
    }

    /// The document is not JSON (structure, not string content): where and why.
    struct SyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
        var offset: Int
        var message: String

        var description: String { "\(message) at byte \(offset)" }
    }

    /// Deeper nesting is refused (a WhatsApp notification is 8 levels deep).
    static let maxDepth = 64

    private let bytes: [UInt8]
    private var index = 0

    private init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Reads one JSON document (a leading UTF-8 byte order mark and surrounding whitespace are allowed).
    static func parse(_ bytes: [UInt8]) throws(SyntaxError) -> Value {
        var reader = LenientJSON(bytes)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { reader.index = 3 }
        reader.skipWhitespace()
        let value = try reader.value(depth: 0)
        reader.skipWhitespace()
        guard reader.index == bytes.count else { throw reader.error("unexpected data after the document") }
        return value
    }

    // MARK: Reading

    private func error(_ message: String) -> SyntaxError { SyntaxError(offset: index, message: message) }

    private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func skipWhitespace() {
        while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { index += 1 }
    }

    private mutating func value(depth: Int) throws(SyntaxError) -> Value {
        guard depth < Self.maxDepth else { throw error("nested deeper than \(Self.maxDepth) levels") }
        guard let byte = current else { throw error("unexpected end of the document") }
        switch byte {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw error("unexpected character")
        }
    }

    private mutating func object(depth: Int) throws(SyntaxError) -> Value {
        index += 1
        var members: [Member] = []
        skipWhitespace()
        if current == UInt8(ascii: "}") {
            index += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else { throw error("expected a key") }
            let key = try string()
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { throw error("expected ':'") }
            index += 1
            skipWhitespace()
            members.append(Member(key: key, value: try value(depth: depth + 1)))
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "}"):
                index += 1
                return .object(members)
            default: throw error("expected ',' or '}'")
            }
        }
    }

    private mutating func array(depth: Int) throws(SyntaxError) -> Value {
        index += 1
        var elements: [Value] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") {
            index += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try value(depth: depth + 1))
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "]"):
                index += 1
                return .array(elements)
            default: throw error("expected ',' or ']'")
            }
        }
    }

    private mutating func literal(_ word: String, _ value: Value) throws(SyntaxError) -> Value {
        let expected = Array(word.utf8)
        guard index + expected.count <= bytes.count, Array(bytes[index..<index + expected.count]) == expected else {
            throw error("unexpected character")
        }
        index += expected.count
        return value
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, kept as text.
    private mutating func number() throws(SyntaxError) -> Value {
        let start = index
        func digits(_ reader: inout LenientJSON) -> Int {
            let first = reader.index
            while let byte = reader.current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) {
                reader.index += 1
            }
            return reader.index - first
        }
        if current == UInt8(ascii: "-") { index += 1 }
        if current == UInt8(ascii: "0") {
            index += 1
        } else if digits(&self) == 0 {
            throw error("bad number")
        }
        if current == UInt8(ascii: ".") {
            index += 1
            guard digits(&self) > 0 else { throw error("bad number") }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            index += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
            guard digits(&self) > 0 else { throw error("bad number") }
        }
        return .number(String(decoding: bytes[start..<index], as: UTF8.self))
    }

    /// A string literal (at its opening quote). Only a missing closing quote is an error; everything else wrong
    /// inside is repaired to U+FFFD and marks the text damaged.
    private mutating func string() throws(SyntaxError) -> Text {
        let start = index
        index += 1
        var out: [UInt8] = []
        var damaged = false
        func replacement() {
            out.append(contentsOf: [0xEF, 0xBF, 0xBD])
            damaged = true
        }
        while true {
            guard let byte = current else {
                index = start
                throw error("unterminated string")
            }
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                // Invalid UTF-8 (raw bytes, or a broken escape that left a fragment) is repaired here.
                if let valid = String(validating: out, as: UTF8.self) { return Text(value: valid, damaged: damaged) }
                return Text(value: String(decoding: out, as: UTF8.self), damaged: true)
            case UInt8(ascii: "\\"):
                guard let escaped = current else { continue }
                index += 1
                switch escaped {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escaped)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    guard let unit = hexUnit(at: index) else {
                        replacement()
                        continue
                    }
                    index += 4
                    var scalar: Unicode.Scalar?
                    switch unit {
                    case 0xD800...0xDBFF:
                        // A high surrogate counts only with a low one right after it.
                        if index + 6 <= bytes.count, bytes[index] == UInt8(ascii: "\\"),
                            bytes[index + 1] == UInt8(ascii: "u"), let low = hexUnit(at: index + 2),
                            (0xDC00...0xDFFF).contains(low)
                        {
                            index += 6
                            scalar = Unicode.Scalar(0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(low) - 0xDC00))
                        }
                    case 0xDC00...0xDFFF: scalar = nil
                    default: scalar = Unicode.Scalar(UInt32(unit))
                    }
                    if let scalar {
                        out.append(contentsOf: Array(String(Character(scalar)).utf8))
                    } else {
                        replacement()
                    }
                default: replacement()
                }
            case 0x00..<0x20: replacement()
            default: out.append(byte)
            }
        }
    }

    /// The UTF-16 unit of the four hex digits at `position`, if there are four.
    private func hexUnit(at position: Int) -> UInt16? {
        guard position + 4 <= bytes.count else { return nil }
        var unit: UInt16 = 0
        for byte in bytes[position..<position + 4] {
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            unit = unit << 4 | UInt16(digit)
        }
        return unit
    }
}
