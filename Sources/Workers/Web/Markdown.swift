import Foundation

/// A small, safe Markdown renderer for model output: every character of the input is HTML-escaped before any
/// markup is added, so HTML in the text is shown as text, never interpreted. Supports paragraphs (line breaks
/// kept), `-`/`*`/`+` and numbered lists, `#` headings, `>` quotes, fenced and inline code, `**strong**`,
/// `*emphasis*`/`_emphasis_`, `[links](https://…)` and bare `https://` links (http, https and mailto only;
/// `rel="noopener noreferrer"`). The chat's script renders the same subset the same way (`chat.js`).
enum Markdown {
    static func render(_ text: String) -> String {
        var out = ""
        var paragraph: [Substring] = []
        var list: (ordered: Bool, items: [Substring])?
        var quote: [Substring] = []
        var fence: (info: String, lines: [Substring])?

        func flushParagraph() {
            guard !paragraph.isEmpty else { return }
            out += "<p>" + paragraph.map { inline($0) }.joined(separator: "<br>") + "</p>"
            paragraph = []
        }
        func flushList() {
            guard let current = list else { return }
            let tag = current.ordered ? "ol" : "ul"
            out += "<\(tag)>" + current.items.map { "<li>" + inline($0) + "</li>" }.joined() + "</\(tag)>"
            list = nil
        }
        func flushQuote() {
            guard !quote.isEmpty else { return }
            out += "<blockquote>" + render(quote.joined(separator: "\n")) + "</blockquote>"
            quote = []
        }
        func flushAll() {
            flushParagraph()
            flushList()
            flushQuote()
        }

        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.drop { $0 == " " }
            if var open = fence {
                if trimmed.hasPrefix("```") {
                    let language = open.info.isEmpty ? "" : " class=\"language-\(HTML.escape(open.info))\""
                    out += "<pre><code\(language)>" + HTML.escape(open.lines.joined(separator: "\n")) + "</code></pre>"
                    fence = nil
                } else {
                    open.lines.append(line)
                    fence = open
                }
                continue
            }
            if trimmed.hasPrefix("```") {
                flushAll()
                let info = trimmed.dropFirst(3).trimmingCharacters(in: .whitespaces)
                fence = (String(info.prefix { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "+" }), [])
                continue
            }
            if trimmed.isEmpty {
                flushAll()
                continue
            }
            if trimmed.hasPrefix(">") {
                flushParagraph()
                flushList()
                quote.append(trimmed.dropFirst().drop { $0 == " " })
                continue
            }
            flushQuote()
            if let item = listItem(trimmed) {
                flushParagraph()
                if let current = list, current.ordered != item.ordered { flushList() }
                if list == nil { list = (item.ordered, []) }
                list?.items.append(item.text)
                continue
            }
            if let heading = headingLevel(trimmed) {
                flushAll()
                let level = min(6, heading + 2)  // h3…h6: headings inside a message stay below the page's
                out += "<h\(level)>" + inline(trimmed.dropFirst(heading).drop { $0 == " " }) + "</h\(level)>"
                continue
            }
            if list != nil, line.hasPrefix("  ") {
                // A continuation line of the last list item.
                if let last = list?.items.popLast() {
                    list?.items.append(Substring(String(last) + " " + String(trimmed)))
                }
                continue
            }
            flushList()
            paragraph.append(line)
        }
        if let open = fence {
            // An unclosed fence (a reply still streaming) shows as code so far.
            out += "<pre><code>" + HTML.escape(open.lines.joined(separator: "\n")) + "</code></pre>"
        }
        flushAll()
        return out
    }

    private static func listItem(_ line: Substring) -> (ordered: Bool, text: Substring)? {
        if let first = line.first, first == "-" || first == "*" || first == "+", line.dropFirst().first == " " {
            return (false, line.dropFirst(2))
        }
        let digits = line.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, digits.count <= 9 else { return nil }
        let rest = line.dropFirst(digits.count)
        guard let mark = rest.first, mark == "." || mark == ")", rest.dropFirst().first == " " else { return nil }
        return (true, rest.dropFirst(2))
    }

    private static func headingLevel(_ line: Substring) -> Int? {
        let hashes = line.prefix { $0 == "#" }.count
        guard (1...6).contains(hashes), line.dropFirst(hashes).first == " " else { return nil }
        return hashes
    }

    /// Inline markup of one line: code spans, links, strong, emphasis, bare links; everything else escaped.
    static func inline(_ text: Substring) -> String {
        let chars = Array(text)
        var out = ""
        var i = 0
        func find(_ marker: [Character], from start: Int) -> Int? {
            guard start < chars.count else { return nil }
            var j = start
            while j + marker.count <= chars.count {
                if Array(chars[j..<(j + marker.count)]) == marker { return j }
                j += 1
            }
            return nil
        }
        while i < chars.count {
            let c = chars[i]
            if c == "`", let end = find(["`"], from: i + 1), end > i + 1 {
                out += "<code>" + HTML.escape(String(chars[(i + 1)..<end])) + "</code>"
                i = end + 1
                continue
            }
            if c == "[", let close = find(["]", "("], from: i + 1), let end = find([")"], from: close + 2) {
                let label = String(chars[(i + 1)..<close])
                let url = String(chars[(close + 2)..<end]).trimmingCharacters(in: .whitespaces)
                if isSafeURL(url), !label.isEmpty {
                    out += link(url, label: inline(Substring(label)))
                    i = end + 1
                    continue
                }
            }
            // `__` is strong only between word boundaries (CommonMark): `window.__x__y` stays literal.
            if c == "*" || c == "_", i + 1 < chars.count, chars[i + 1] == c,
                c == "*" || i == 0 || !(chars[i - 1].isLetter || chars[i - 1].isNumber),
                let end = find([c, c], from: i + 2), end > i + 2,
                c == "*" || end + 2 >= chars.count || !(chars[end + 2].isLetter || chars[end + 2].isNumber)
            {
                out += "<strong>" + inline(Substring(String(chars[(i + 2)..<end]))) + "</strong>"
                i = end + 2
                continue
            }
            // A run of underscores that is not strong stays literal as a whole (it is never half emphasis).
            if c == "_", i + 1 < chars.count, chars[i + 1] == "_" {
                var end = i
                while end < chars.count, chars[end] == "_" { end += 1 }
                out += String(chars[i..<end])
                i = end
                continue
            }
            if c == "*" || c == "_", i + 1 < chars.count, chars[i + 1] != " ", chars[i + 1] != c,
                c == "*" || i == 0 || !(chars[i - 1].isLetter || chars[i - 1].isNumber),
                let end = find([c], from: i + 1), chars[end - 1] != " ",
                c == "*" || end + 1 >= chars.count || !(chars[end + 1].isLetter || chars[end + 1].isNumber)
            {
                out += "<em>" + inline(Substring(String(chars[(i + 1)..<end]))) + "</em>"
                i = end + 1
                continue
            }
            if c == "h", i == 0 || !(chars[i - 1].isLetter || chars[i - 1].isNumber) {
                let rest = String(chars[i..<min(chars.count, i + 8)])
                if rest.hasPrefix("https://") || rest.hasPrefix("http://") {
                    var end = i
                    while end < chars.count, !chars[end].isWhitespace, chars[end] != "<", chars[end] != ">" {
                        end += 1
                    }
                    while end > i, ".,;:!?)\"'".contains(chars[end - 1]) { end -= 1 }
                    let url = String(chars[i..<end])
                    if url.count > 8 {
                        out += link(url, label: HTML.escape(url))
                        i = end
                        continue
                    }
                }
            }
            out += HTML.escape(String(c))
            i += 1
        }
        return out
    }

    static func isSafeURL(_ url: String) -> Bool {
        let lower = url.lowercased()
        guard lower.hasPrefix("https://") || lower.hasPrefix("http://") || lower.hasPrefix("mailto:") else {
            return false
        }
        return !url.contains(where: { $0.isWhitespace || $0 == "\"" || $0 == "<" || $0 == ">" })
    }

    private static func link(_ url: String, label: String) -> String {
        "<a href=\"\(HTML.escape(url))\" rel=\"noopener noreferrer\" target=\"_blank\">\(label)</a>"
    }
}
