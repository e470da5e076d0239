import Foundation
import TestSupport
import Testing

@testable import Workers

/// The page's Markdown (`Assets/markdown.js`, run by Node exactly as served) renders every input the way
/// `Markdown.swift` does: the two copies of one algorithm cannot drift apart unnoticed.
@Suite("Markdown parity (Swift and the page's script)")
struct MarkdownParityTests {
    static let corpus: [String] = [
        "a *b* _c_ **d**", "window.__x=1 and window.__x=2", "snake_case_name and __bold__", "1. one\n2. two",
        "- a\n- b\n\n* c", "line one\nline two\n\nnext", "see https://example.org/x.", "[x](data:text/html,hi)",
        "[x](https://example.org/a?b=1&c=<2>)", "[**bold link**](http://example.org)", "```\nopen",
        "```swift\nlet x = 1 < 2\n```\nafter", "> quoted <x>", "> a\n> b\n\nc", "# Title\n## Sub\n###### six",
        "####### seven", "`code <b>` and ``double`` and `unclosed", "***both*** and **unclosed", "*a **b** c*",
        "<script>alert(1)</script>", "\"quotes\" & 'apostrophes'", "emoji 🎉 and ünïcödé _émphasis_",
        "https://example.org/path_(with)_parens", "javascript:alert(1) and [x](javascript:alert(1))",
        "1) paren\n2) list", "   indented\n\ttabbed", "a\n\n\n\nb", "", "trailing space  \nnext",
        "**a**b**c** 2*3*4 a_b_c _a_b", "- [ ] task\n- [x] done", "| a | b |\n|---|---|\n| 1 | 2 |",
        "mixed\n```\ncode\n```\n- list\n> quote\n# head",
    ]

    /// Tool arguments as models write them: nested, empty containers, escapes, numbers in several spellings,
    /// Unicode, and text that is not JSON.
    static let argumentCorpus: [String] = [
        #"{"content":"Buy milk","due_string":"tomorrow","priority":4}"#, #"{}"#, #"[]"#, #"{ "a" : [ ] , "b" : { } }"#,
        #"{"nested":{"list":[1,2.50,-3e2,{"deep":[true,false,null]}]}}"#,
        #"{"text":"quote \" and \\ and \n and \u00e9"}"#,
        #"{"emoji":"👩‍👩‍👧","key with spaces":"v","colon:in":"a:b","comma,in":"a,b"}"#, #"  [ "spaced" ,  1 ]  "#,
        #""just a string""#, "42", "not json {", #"{"unterminated": "#, "",
    ]

    @Test func theScriptIndentsToolArgumentsAsTheServerDoes() async throws {
        let rendered = try await Self.run("inputs.map(ChatMarkdown.indentJSON)", Self.argumentCorpus)
        for (text, page) in zip(Self.argumentCorpus, rendered) {
            #expect(page == JSONIndent.indent(text), "input \(text.debugDescription)")
        }
        #expect(JSONIndent.indent(#"{"a":[1,{}],"b":"x"}"#) == "{\n  \"a\": [\n    1,\n    {}\n  ],\n  \"b\": \"x\"\n}")
        let people = try await Self.run("inputs.map(ChatMarkdown.decidedBy)", ["web:owner", "16505551234", ""])
        #expect(people == ["web:owner", "16505551234", ""].map(ThreadFold.decidedBy))
        #expect(people == [" by you", " by 16505551234", ""])
    }

    /// A conversation's title is the same in the sidebar the server renders, the header, and the entry the script
    /// adds for a new chat.
    @Test func theScriptTitlesAConversationAsTheServerDoes() async throws {
        let corpus = [
            "Buy milk", "  padded  \nsecond line", "\n\nafter blank lines", String(repeating: "x", count: 60),
            String(repeating: "y", count: 61), String(repeating: "👩‍👩‍👧", count: 61), "\u{00A0}nbsp\u{00A0}",
            "crlf\r\nline", "tab\there\t", "   ", "line\u{2028}sep", "é" + String(repeating: "e\u{301}", count: 70),
        ]
        let rendered = try await Self.run("inputs.map(t => ChatMarkdown.title(t, 'web-x'))", corpus)
        for (text, page) in zip(corpus, rendered) {
            #expect(page == ChatViews.title(text, fallback: "web-x"), "input \(text.debugDescription)")
        }
    }

    /// Runs `expression` over `inputs` with the page's `markdown.js` in Node, as served; its JSON result.
    static func run(_ expression: String, _ inputs: [String]) async throws -> [String] {
        let dir = TemporaryDirectory()
        let script = dir.sub("check.js")
        let markdownJS = String(decoding: WebAssets.scriptParts[0], as: UTF8.self)
        let runner =
            markdownJS + "\nconst inputs = JSON.parse(require('fs').readFileSync(0, 'utf8'));\n"
            + "process.stdout.write(JSON.stringify(\(expression)));\n"
        try runner.write(toFile: script, atomically: true, encoding: .utf8)
        let node = Process()
        node.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        node.arguments = ["node", script]
        let input = Pipe()
        let output = Pipe()
        node.standardInput = input
        node.standardOutput = output
        try node.run()
        input.fileHandleForWriting.write(try JSONEncoder().encode(inputs))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        node.waitUntilExit()
        #expect(node.terminationStatus == 0, "node (20 or later) runs the page's script")
        return try JSONDecoder().decode([String].self, from: data)
    }

    @Test func theScriptRendersEveryInputAsTheServerDoes() async throws {
        let rendered = try await Self.run("inputs.map(ChatMarkdown.markdown)", Self.corpus)
        #expect(rendered.count == Self.corpus.count)
        for (text, page) in zip(Self.corpus, rendered) {
            #expect(page == Markdown.render(text), "input \(text.debugDescription)")
        }
    }
}
