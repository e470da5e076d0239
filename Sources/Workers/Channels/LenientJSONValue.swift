import Crypto
import Foundation

// Reading a parsed ``LenientJSON/Value``: members, damage, re-serialization for `JSONDecoder`.

extension LenientJSON.Value {
    /// The value of the last member named `key` (undamaged keys only), when this is an object.
    subscript(key: String) -> LenientJSON.Value? {
        guard case .object(let members) = self else { return nil }
        return members.last { !$0.key.damaged && $0.key.value == key }?.value
    }

    /// The text of an undamaged string.
    var string: String? {
        guard case .string(let text) = self, !text.damaged else { return nil }
        return text.value
    }

    /// The elements, when this is an array.
    var elements: [LenientJSON.Value]? {
        guard case .array(let elements) = self else { return nil }
        return elements
    }

    var isNull: Bool { self == .null }

    /// Where the first repaired string (or key) inside this value is, as a path like `text.body` or `errors[0]`
    /// (`""` for this value itself); `nil` when nothing was repaired. A key that is not a short plain name is shown
    /// as `(key)`, so the path never carries content of the body.
    var damage: String? {
        switch self {
        case .string(let text): return text.damaged ? "" : nil
        case .array(let elements):
            for (offset, element) in elements.enumerated() {
                if let inner = element.damage {
                    return "[\(offset)]" + (inner.isEmpty || inner.hasPrefix("[") ? inner : "." + inner)
                }
            }
            return nil
        case .object(let members):
            for member in members {
                let name = !member.key.damaged && Self.isPlainName(member.key.value) ? member.key.value : "(key)"
                if member.key.damaged { return name }
                if let inner = member.value.damage {
                    return name + (inner.isEmpty || inner.hasPrefix("[") ? inner : "." + inner)
                }
            }
            return nil
        case .number, .bool, .null: return nil
        }
    }

    /// 1 to 32 of `A-Z a-z 0-9 _`: a field name that may appear in a record.
    static func isPlainName(_ name: String) -> Bool {
        (1...32).contains(name.utf8.count)
            && name.utf8.allSatisfy {
                (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) || $0 == 0x5F
            }
    }

    /// Compact JSON of this value (members in document order, of duplicate keys the last), for `JSONDecoder`.
    var json: [UInt8] {
        var out: [UInt8] = []
        write(to: &out)
        return out
    }

    /// A short, stable digest of this value: the first 16 bytes of the SHA-256 of ``json``, in hex. The same
    /// item (a provider's retry) always has the same fingerprint.
    var fingerprint: String {
        SHA256.hash(data: json).prefix(16).map { String(format: "%02x", $0) }.joined()
    }

    private func write(to out: inout [UInt8]) {
        switch self {
        case .object(let members):
            // Only the last of duplicate keys, the one the subscript reads, so `JSONDecoder` sees the same item.
            var last: [String: Int] = [:]
            for (offset, member) in members.enumerated() { last[member.key.value] = offset }
            out.append(UInt8(ascii: "{"))
            var first = true
            for (offset, member) in members.enumerated() where last[member.key.value] == offset {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                Self.write(member.key.value, to: &out)
                out.append(UInt8(ascii: ":"))
                member.value.write(to: &out)
            }
            out.append(UInt8(ascii: "}"))
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            for (offset, element) in elements.enumerated() {
                if offset > 0 { out.append(UInt8(ascii: ",")) }
                element.write(to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .string(let text): Self.write(text.value, to: &out)
        case .number(let literal): out.append(contentsOf: Array(literal.utf8))
        case .bool(let flag): out.append(contentsOf: Array((flag ? "true" : "false").utf8))
        case .null: out.append(contentsOf: Array("null".utf8))
        }
    }

    private static func write(_ string: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), byte])
            case 0x00..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

extension DecodingError {
    /// A short description for a malformed record: the field's path and what was wrong, never the value.
    var shortDescription: String {
        func path(_ codingPath: [any CodingKey], _ last: (any CodingKey)? = nil) -> String {
            let keys = codingPath + (last.map { [$0] } ?? [])
            var text = ""
            for key in keys {
                if let index = key.intValue {
                    text += "[\(index)]"
                } else {
                    text += (text.isEmpty ? "" : ".") + key.stringValue
                }
            }
            return text.isEmpty ? "(item)" : text
        }
        switch self {
        case .typeMismatch(let type, let context): return "\(path(context.codingPath)): not a \(type)"
        case .valueNotFound(let type, let context): return "\(path(context.codingPath)): null, not a \(type)"
        case .keyNotFound(let key, let context): return "\(path(context.codingPath, key)): missing"
        case .dataCorrupted(let context):
            // Foundation's own descriptions may quote the value (an unbounded number literal): only short ones,
            // such as this module's, are kept.
            let why = context.debugDescription.utf8.count <= 40 ? context.debugDescription : "unreadable"
            return "\(path(context.codingPath)): \(why)"
        @unknown default: return "unreadable"
        }
    }
}
