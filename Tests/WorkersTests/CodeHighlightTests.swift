import Foundation
import Testing

@testable import Workers

/// The chat's syntax highlighting (`Assets/highlight.js`, run by Node as served): the HTML it makes is the code,
/// every character escaped as the page's Markdown escapes it, with nothing added but `<span class="tok-…">` around
/// tokens — so no input can make markup, and the code's text (what Copy copies) is the code as written.
@Suite("Code highlighting (the page's highlight.js)", .timeLimit(.minutes(2)))
struct CodeHighlightTests {
    /// Every language the script knows (one name each), one it does not, and none.
    static let languages = [
        "swift", "js", "ts", "python", "json", "sh", "go", "rust", "c", "cpp", "java", "kotlin", "csharp", "sql",
        "html", "xml", "css", "yaml", "diff", "brainfuck", "",
    ]
    static let tokenClasses: Set<String> = [
        "kw", "str", "com", "num", "type", "fn", "lit", "punct", "attr", "meta", "add", "del",
    ]

    /// Unclosed strings and comments (a reply still streaming), markup, entities, Unicode, line ends, long lines.
    static let corpus: [String] = [
        "", "\n", "let s = \"unclosed", "x = 'unclosed\nnext line", "/* unclosed comment", "\"\"\"\nunclosed triple",
        "`template ${x}", "r#\"raw", "#\"swift raw", "</script><script>alert(1)</script>",
        #"<img src=x onerror="window.__xss=1">"#, "&amp; &lt;b&gt; &#39; &quot; &", "\"quotes\" & 'apostrophes'",
        "emoji 🎉 👩‍👩‍👧 in a \"string 🎉\" and // comment 🎉", "e\u{301} é ünïcödé", "crlf\r\nline\r\n\"str\r\n",
        "lone\rcarriage", "tab\tand\u{0}nul", String(repeating: "a+\"b\" ", count: 3000),
        String(repeating: "x", count: 20000), "<!-- <b> --> <a href='x'>&nbsp;</a> <![CDATA[ <x> ]]>",
        "$HOME ${X:-\"<b>\"} # not </span>", "'a 'b' '\\'' 'c", "#include <stdio.h>\n#[derive(Debug)]",
        "@@ -1 +1 @@\n-<old>\n+<new>\n", "key: \"value\" # <c>\n- item: 'x'", "SELECT '<' || \"x\" -- <y>",
        "a { color: #fff; } /* <c> */ .x:hover::before { content: \"<\" }", "0x1F 1e-3 .5 1_000 3.14f",
        "<span class=\"tok-kw\">fake</span>", "\\", "\"\\", "'\\", "`\\",
    ]

    @Test func theTextIsTheCodeEscapedAndOnlySpansAreAdded() async throws {
        let outputs = try await Self.highlight(Self.corpus, Self.languages)
        for (code, byLanguage) in zip(Self.corpus, outputs) {
            for (language, html) in zip(Self.languages, byLanguage) {
                let text = Self.stripSpans(html)
                #expect(text.tags.allSatisfy(Self.tokenClasses.contains), "\(language): \(text.tags)")
                #expect(text.balanced, "\(language), input \(code.debugDescription): \(html.debugDescription)")
                // Escaped exactly as the Markdown escapes (no `<`, `>`, quote left but the spans' own), and back.
                let escaped = HTML.escape(code)
                #expect(
                    text.html.utf8.elementsEqual(escaped.utf8),
                    "\(language): \(text.html.debugDescription) is not \(escaped.debugDescription)")
                #expect(!text.html.contains { "<>\"'".contains($0) }, "\(language): \(text.html.debugDescription)")
                #expect(Self.unescape(text.html).unicodeScalars.elementsEqual(code.unicodeScalars))
            }
            // A language the script does not know: escaped, nothing else.
            #expect(byLanguage[Self.languages.count - 2] == HTML.escape(code))
            #expect(byLanguage[Self.languages.count - 1] == HTML.escape(code))
        }
    }

    @Test func tokensGetTheirClasses() async throws {
        let cases: [(language: String, code: String, expected: [(String, String)])] = [
            (
                "swift", "let a = \"a\" // x\n@MainActor func f() -> Int { nil }",
                [
                    ("kw", "let"), ("str", "\"a\""), ("com", "// x"), ("meta", "@MainActor"), ("kw", "func"),
                    ("fn", "f"), ("type", "Int"), ("lit", "nil"),
                ]
            ),
            ("swift", "let s = \"\"\"\nline \"q\"\n\"\"\" + 1", [("str", "\"\"\"\nline \"q\"\n\"\"\""), ("num", "1")]),
            ("swift", "let s = \"open", [("str", "\"open")]),
            (
                "javascript", "const t = `a ${b}\nc`; /* c */ f(0x1f)",
                [("kw", "const"), ("str", "`a ${b}\nc`"), ("com", "/* c */"), ("fn", "f"), ("num", "0x1f")]
            ),
            (
                "py", "def f():\n    \"\"\"doc\"\"\"  # c\n    return f'x', None",
                [("kw", "def"), ("str", "\"\"\"doc\"\"\""), ("com", "# c"), ("str", "f'x'"), ("lit", "None")]
            ),
            (
                "json", #"{"k": [1.5e3, true, "v"]}"#,
                [("attr", "\"k\""), ("num", "1.5e3"), ("lit", "true"), ("str", "\"v\"")]
            ),
            (
                "bash", "export A=\"$HOME\" # c\necho ${B:-x} it's",
                [("kw", "export"), ("str", "\"$HOME\""), ("com", "# c"), ("fn", "echo"), ("type", "${B:-x}")]
            ),
            ("go", "func main() { s := `raw` }", [("kw", "func"), ("fn", "main"), ("str", "`raw`")]),
            (
                "rust", "fn f<'a>(x: &'a str) { println!(\"{}\", 'c'); }",
                [("type", "'a"), ("fn", "println"), ("str", "'c'")]
            ),
            (
                "c", "#include <stdio.h>\nint main(void) { return 0; }",
                [("meta", "#include <stdio.h>"), ("type", "int")]
            ),
            (
                "sql", "select id from t where n = 'x' -- c",
                [("kw", "select"), ("kw", "from"), ("str", "'x'"), ("com", "-- c")]
            ),
            (
                "html", "<a href=\"x\">&amp;</a><!-- c -->",
                [("kw", "a"), ("attr", "href"), ("str", "\"x\""), ("lit", "&amp;"), ("com", "<!-- c -->")]
            ),
            ("css", ".x { color: #fff; }", [("type", ".x"), ("attr", "color"), ("num", "#fff")]),
            ("yaml", "name: CI # c\non: [push]", [("attr", "name"), ("com", "# c"), ("attr", "on")]),
            ("diff", "@@ -1 +1 @@\n-old\n+new\n same", [("meta", "@@ -1 +1 @@"), ("del", "-old"), ("add", "+new")]),
        ]
        let outputs = try await Self.run(
            "inputs.slice(1).map(c => { const [l, t] = JSON.parse(c); return SBHighlight.highlight(t, l); })",
            try cases.map { String(decoding: try JSONEncoder().encode([$0.language, $0.code]), as: UTF8.self) })
        for (test, html) in zip(cases, outputs) {
            let tokens = Self.tokens(html)
            for (cls, text) in test.expected {
                #expect(tokens.contains { $0 == (cls, text) }, "\(test.language): \(text) as tok-\(cls) in \(tokens)")
            }
        }
        // Words that are not keywords stay plain; an unknown language has no spans at all.
        let plain = try await Self.highlight(["letter = lets"], ["swift", "nope"])
        #expect(Self.tokens(plain[0][0]).allSatisfy { $0.0 == "punct" })
        #expect(!plain[0][1].contains("<span"))
    }

    @Test func theLabelNamesTheLanguage() async throws {
        let infos = ["swift", "js", "javascript", "sh", "bash", "shell", "zsh", "py", "python", "SQL", "mystery", ""]
        let labels = try await Self.run("inputs.slice(1).map(SBHighlight.languageLabel)", infos)
        #expect(
            labels == [
                "Swift", "JavaScript", "JavaScript", "Shell", "Shell", "Shell", "Shell", "Python", "Python", "SQL",
                "mystery", "Code",
            ])
    }

    /// 200 KB blocks, of code and of the inputs a backtracking tokenizer would choke on, finish and stay exact (checked
    /// in Node, by the Markdown's own `esc`: the outputs are megabytes).
    @Test func largeBlocksFinishAndStayExact() async throws {
        let sample = Self.corpus.joined(separator: "\n")
        let size = 200_000
        let large = [
            String(String(repeating: sample + "\n", count: size / sample.utf16.count + 1).prefix(size)),
            String(repeating: "\"", count: size), String(repeating: "/*", count: size / 2),
            String(repeating: "<a ", count: size / 3), String(repeating: "${", count: size / 2),
            String(repeating: "'a", count: size / 2), String(repeating: "a = 1; ", count: size / 7),
        ]
        let languages = ["swift", "js", "python", "sh", "rust", "c", "sql", "html", "css", "yaml", "diff"]
        let names = String(decoding: try JSONEncoder().encode(languages), as: UTF8.self)
        let checks = try await Self.run(
            """
            inputs.slice(2).flatMap(t => JSON.parse(inputs[1]).map(l => {
                const html = SBHighlight.highlight(t, l);
                const text = html.replace(/<span class="tok-[a-z]+">|<\\/span>/g, '');
                return text === ChatMarkdown.esc(t) ? 'exact' : l + ': not the escaped code: ' + text.slice(0, 80);
            }))
            """, [names] + large)
        #expect(checks == Array(repeating: "exact", count: large.count * languages.count), "\(checks)")
    }

    // MARK: - Running the script

    /// Runs `expression` in Node with `highlight.js` loaded (the Markdown tests' runner; `inputs[0]` is the script,
    /// the rest are `inputs`).
    static func run(_ expression: String, _ inputs: [String]) async throws -> [String] {
        let script = String(decoding: PackageResources.highlight_js, as: UTF8.self)
        return try await MarkdownParityTests.run(
            "(require('vm').runInThisContext(inputs[0]), \(expression))", [script] + inputs)
    }

    /// Each of `codes` highlighted as each of `languages`.
    static func highlight(_ codes: [String], _ languages: [String]) async throws -> [[String]] {
        let names = String(decoding: try JSONEncoder().encode(languages), as: UTF8.self)
        let flat = try await run(
            "inputs.slice(2).flatMap(t => JSON.parse(inputs[1]).map(l => SBHighlight.highlight(t, l)))",
            [names] + codes)
        #expect(flat.count == codes.count * languages.count)
        return stride(from: 0, to: flat.count, by: languages.count).map { Array(flat[$0..<$0 + languages.count]) }
    }

    // MARK: - Reading the HTML

    static let spanTag = try! NSRegularExpression(pattern: #"<span class="tok-([a-z]+)">|</span>"#)

    /// The HTML without its span tags, the classes they named, and whether they open and close in turn (the script
    /// never nests them). Any other tag stays in the text, where the comparison with the escaped code finds it.
    static func stripSpans(_ html: String) -> (html: String, tags: [String], balanced: Bool) {
        let range = NSRange(html.startIndex..., in: html)
        var tags: [String] = []
        var open = false
        var balanced = true
        for match in spanTag.matches(in: html, range: range) {
            if let name = Range(match.range(at: 1), in: html) {
                tags.append(String(html[name]))
                balanced = balanced && !open
                open = true
            } else {
                balanced = balanced && open
                open = false
            }
        }
        let text = spanTag.stringByReplacingMatches(in: html, range: range, withTemplate: "")
        return (text, tags, balanced && !open)
    }

    /// The spans as (class, text) pairs, their text unescaped.
    static func tokens(_ html: String) -> [(String, String)] {
        let pattern = try! NSRegularExpression(pattern: #"<span class="tok-([a-z]+)">([^<]*)</span>"#)
        return pattern.matches(in: html, range: NSRange(html.startIndex..., in: html)).compactMap { match in
            guard let cls = Range(match.range(at: 1), in: html), let text = Range(match.range(at: 2), in: html)
            else { return nil }
            return (String(html[cls]), unescape(String(html[text])))
        }
    }

    /// The five entities of `HTML.escape` back to their characters (`&amp;` last).
    static func unescape(_ html: String) -> String {
        html.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&#39;", with: "'")
            .replacingOccurrences(of: "&amp;", with: "&")
    }
}
