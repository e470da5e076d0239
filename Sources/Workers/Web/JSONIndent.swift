import Foundation

/// Tool arguments for reading: the JSON text re-indented (two spaces, `": "`), keys and numbers exactly as the model
/// wrote them; the text as given when it is not JSON. The page's script runs the same algorithm (`indentJSON` in
/// `markdown.js`), so an approval card reads the same streamed and reloaded; `MarkdownParityTests` compares them.
enum JSONIndent {
    static func indent(_ text: String) -> String {
        guard (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])) != nil else {
            return text
        }
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        var depth = 0
        var i = 0
        func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D }
        func newline() {
            out.append(0x0A)
            out.append(contentsOf: repeatElement(0x20, count: 2 * depth))
        }
        while i < bytes.count {
            let c = bytes[i]
            switch c {
            case UInt8(ascii: "\""):
                var j = i + 1
                while j < bytes.count && bytes[j] != UInt8(ascii: "\"") { j += bytes[j] == UInt8(ascii: "\\") ? 2 : 1 }
                out.append(contentsOf: bytes[i...min(j, bytes.count - 1)])
                i = j + 1
                continue
            case _ where isSpace(c):
                i += 1
                continue
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                let close = c == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
                var next = i + 1
                while next < bytes.count && isSpace(bytes[next]) { next += 1 }
                if next < bytes.count && bytes[next] == close {
                    out.append(c)
                    out.append(close)
                    i = next + 1
                    continue
                }
                out.append(c)
                depth += 1
                newline()
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                newline()
                out.append(c)
            case UInt8(ascii: ","):
                out.append(c)
                newline()
            case UInt8(ascii: ":"):
                out.append(contentsOf: [UInt8(ascii: ":"), 0x20])
            default:
                out.append(c)
            }
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}
