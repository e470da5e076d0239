import Foundation
import TestSupport
import Testing

/// The web chat's limits, layouts and code blocks in a browser (issue 24): part of the `WebChat` suite, in a file of
/// its own.
extension BrowserTests.WebChat {
    // Runbook F: Settings → Connect Todoist → the (fake) authorize page sends the browser back with a code →
    // connected; then, with no model (the offline assistant), `/todo add` and `/todo done` each ask for an
    // approval in the chat and act once approved.
    // Issue 24, bug 2: a message over the limit is never lost — the composer counts as the server does, says
    // how much is over before sending, keeps the text (a reload too), and sends once it fits.
    @Test func aMessageOverTheLimitIsKeptCountedAndNotSent() async throws {
        let model = try await FakeModelServer.start { _ in .text(["Got it."]) }
        defer { model.stop() }
        let chat = try await WebChatAgent.start(["AI_BASE_URL": model.baseURL, "AI_MODEL": "fake-model"])
        try await withBrowser { browser in
            try await chat.logIn(browser)
            let setText = """
                const c = document.getElementById('composer');
                c.value = arguments[0]; c.dispatchEvent(new Event('input', { bubbles: true }));
                """
            // 16 001 characters, one of them an emoji of several code points (one character to the server).
            let long = String(repeating: "a", count: 15_999) + "👩‍👩‍👧"
            _ = try await browser.execute(setText, [.string(long + "b")])
            let count = try await browser.find("#composer-count")
            #expect(try await count.text() == "16\u{202F}001 / 16\u{202F}000")
            #expect(try await browser.find("#send").property("disabled") == .bool(true))
            #expect(
                try await browser.find("#composer-reason").text()
                    == "Too long to send: 1 character over the limit of 16\u{202F}000. Shorten it, or send it in parts."
            )
            try await browser.find("#composer").sendKeys(Keys.enter)
            #expect(try await browser.findAll(#".msg[data-role="user"]"#).isEmpty, "nothing was sent")
            try await browser.screenshot("over-the-limit")

            // A reload keeps the draft.
            try await browser.open(try await browser.currentURL())
            let kept = try await browser.waitUntil("the draft restored") {
                let value = try await browser.find("#composer").property("value").string ?? ""
                return Look(value: value.isEmpty ? nil : value, seen: "\(value.count) characters")
            }
            #expect(kept == long + "b")

            // Exactly the limit: sent, and the draft is gone.
            _ = try await browser.execute(setText, [.string(long)])
            #expect(try await browser.find("#send").property("disabled") == .bool(false))
            try await browser.find("#send").click()
            try await browser.waitFor("the reply", #".msg[data-role="assistant"][data-state="final"]"#) {
                $0.isEmpty ? nil : true
            }
            try await browser.open(try await browser.currentURL())
            _ = try await browser.waitForElement(#".msg[data-role="user"]"#)
            #expect(try await browser.find("#composer").property("value").string == "")
        }
        #expect(await chat.stop() == 0)
    }

    // Issue 24: a reply cut at the token limit says so and offers Continue; Continue asks the model to go on,
    // and the note survives a reload.
    @Test func aReplyCutAtTheLimitOffersContinue() async throws {
        let model = try await FakeModelServer.start { request in
            request.lastUserText == "Continue." ? .text(["…and the rest."]) : .cut(["The first half"])
        }
        defer { model.stop() }
        let chat = try await WebChatAgent.start(["AI_BASE_URL": model.baseURL, "AI_MODEL": "fake-model"])
        try await withBrowser { browser in
            try await chat.logIn(browser)
            try await browser.find("#composer").sendKeys("Tell me everything" + Keys.enter)
            try await browser.waitFor(
                "the cut reply's note", #".msg[data-cut] .cut button[data-action="continue"]"#
            ) {
                $0.isEmpty ? nil : true
            }
            try await browser.open(try await browser.currentURL())
            try await browser.waitFor("the note after a reload", #".msg[data-cut] .cut"#) {
                $0.isEmpty ? nil : true
            }
            try await browser.screenshot("cut-reply")
            try await browser.find(#"button[data-action="continue"]"#).click()
            let rest = try await browser.waitFor(
                "the continuation", ChatDOM.assistant, attributes: ChatDOM.state, textOf: ".body"
            ) { replies -> String? in
                replies.last { $0.attributes["data-state"] == "final" && $0.text.contains("the rest") }?.text
            }
            #expect(ChatDOM.trimmed(rest) == "…and the rest.")
            // The model saw its cut reply before "Continue.".
            let asked = try #require(model.requests.last)
            #expect(asked.lastUserText == "Continue.")
            #expect(asked.messages.contains { $0.role == "assistant" && $0.content.contains("The first half") })
        }
        #expect(await chat.stop() == 0)
    }

    // Issue 24, bug 1: on a phone (390 × 844) the sidebar opens and closes by touch (its Close button, or the
    // dimmed chat beside it), the composer is on screen, and the status page is no wider than the screen.
    @Test func thePhoneLayoutOpensAndClosesTheSidebarAndFitsTheScreen() async throws {
        let chat = try await WebChatAgent.start(["AI_PROVIDER": "offline"])
        try await withBrowser { browser in
            try await browser.setWindowSize(width: 390, height: 844)
            try await chat.logIn(browser)
            let inView = """
                const r = document.querySelector(arguments[0]).getBoundingClientRect();
                const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
                return r.width > 0 && r.top >= 0 && r.bottom <= window.innerHeight && r.right <= window.innerWidth
                    && hit !== null && (hit === document.querySelector(arguments[0])
                        || document.querySelector(arguments[0]).contains(hit));
                """
            #expect(try await browser.execute(inView, ["#composer"]) == .bool(true), "the composer is reachable")
            #expect(try await browser.execute(inView, ["#sidebar-toggle"]) == .bool(true))
            try await browser.find("#sidebar-toggle").click()
            try await browser.waitFor("the sidebar open", ".sidebar.open") { $0.isEmpty ? nil : true }
            // Its own Close button is on top and closes it.
            try await browser.waitUntil("the Close button reachable") {
                let reachable = try await browser.execute(inView, ["#sidebar-close"]) == .bool(true)
                return Look(value: reachable ? true : nil, seen: "not yet")
            }
            try await browser.screenshot("phone-sidebar-open")
            try await browser.find("#sidebar-close").click()
            try await browser.waitFor("the sidebar closed", ".sidebar.open") { $0.isEmpty ? true : nil }
            try await browser.waitUntil("the composer reachable again (the sidebar slid away)") {
                let reachable = try await browser.execute(inView, ["#composer"]) == .bool(true)
                return Look(value: reachable ? true : nil, seen: "covered")
            }
            // A touch on the dimmed chat closes it too.
            try await browser.find("#sidebar-toggle").click()
            try await browser.waitFor("the sidebar open again", ".sidebar.open") { $0.isEmpty ? nil : true }
            _ = try await browser.execute(
                "document.elementFromPoint(window.innerWidth - 10, window.innerHeight / 2).click(); return true;")
            try await browser.waitFor("the sidebar closed by the scrim", ".sidebar.open") {
                $0.isEmpty ? true : nil
            }
            try await browser.screenshot("phone-sidebar-closed")

            try await browser.open(chat.base + "/status")
            try await browser.waitForElement("#leases")
            let widths = try await browser.execute(
                "const e = document.documentElement; return [e.scrollWidth, e.clientWidth];")
            guard case .array(let pair) = widths, pair.count == 2 else {
                Issue.record("no widths: \(widths)")
                return
            }
            #expect(pair[0] == pair[1], "the status page is \(pair[0]) px wide in a \(pair[1]) px viewport")
            try await browser.screenshot("phone-status")
        }
        #expect(await chat.stop() == 0)
    }

    // Code blocks are highlighted in the page (highlight.js): token spans, the language in the block's header
    // (already while the fence is still open in a streaming reply), one header however often the reply is
    // re-rendered, and Copy copies the code exactly as written — streamed, and in the page rendered again.
    @Test func codeBlocksAreHighlightedLabelledAndCopiedAsWritten() async throws {
        let code = "let greeting = \"<b>hi</b> & 'you'\" // says hi\nfunc add(_ a: Int) -> Int { a + 1 }"
        let split = code.range(of: "</b>")!.lowerBound
        let (first, rest) = (String(code[..<split]), String(code[split...]))
        let gate = StreamGate()
        defer { gate.open() }
        let model = try await FakeModelServer.start { _ in
            .text(["Here:\n```swift\n" + first, rest + "\n```\nDone."], gate: gate)
        }
        defer { model.stop() }
        let chat = try await WebChatAgent.start(["AI_BASE_URL": model.baseURL, "AI_MODEL": "fake-model"])
        // The last reply's code block: its text, header, labels, buttons and token texts by class.
        let block = """
            const pres = document.querySelectorAll('#thread .msg[data-role="assistant"] .body pre');
            const pre = pres[pres.length - 1], code = pre && pre.querySelector('code');
            if (!code) { return null; }
            const texts = sel => [...pre.querySelectorAll(sel)].map(e => e.textContent);
            return { blocks: pres.length, text: code.textContent, heads: texts('.code-head').length,
                labels: texts('.code-lang'), copies: texts('.copy-code').length, kw: texts('code .tok-kw'),
                str: texts('code .tok-str'), com: texts('code .tok-com'), fn: texts('code .tok-fn'),
                made: pre.querySelectorAll('code b, code script').length,
                state: pre.closest('.msg').getAttribute('data-state') };
            """
        let copyCode = """
            window.__copied = null;
            const record = t => { window.__copied = t; return Promise.resolve(); };
            if (navigator.clipboard) { navigator.clipboard.writeText = record; }
            document.execCommand = () => {
                window.__copied = document.querySelector('body > textarea').value; return true;
            };
            return true;
            """
        try await withBrowser { browser in
            try await chat.logIn(browser)
            try await browser.find("#composer").sendKeys("Show me some Swift" + Keys.enter)
            let streaming = try await browser.waitUntil("the open fence highlighted while streaming") {
                let seen = try await browser.execute(block)
                return Look(value: seen["state"]?.string == "streaming" ? seen : nil, seen: "\(seen)")
            }
            #expect(streaming["text"]?.string == first, "\(streaming)")
            #expect(streaming["labels"] == ["Swift"], "\(streaming)")
            #expect(streaming["kw"]?.array?.contains("let") == true, "\(streaming)")
            #expect(streaming["str"] == ["\"<b>hi"], "the unclosed string runs to the end: \(streaming)")
            try await browser.screenshot("code-streaming")
            gate.open()
            for phase in ["final", "reloaded"] {
                if phase == "reloaded" { try await browser.open(try await browser.currentURL()) }
                let seen = try await browser.waitUntil("the \(phase) code block") {
                    let seen = try await browser.execute(block)
                    return Look(value: seen["state"]?.string == "final" ? seen : nil, seen: "\(seen)")
                }
                #expect(seen["blocks"] == .number(1) && seen["made"] == .number(0), "\(phase): \(seen)")
                #expect(seen["text"]?.string == code, "\(phase): \(seen)")
                #expect(seen["heads"] == .number(1) && seen["copies"] == .number(1), "\(phase): \(seen)")
                #expect(seen["labels"] == ["Swift"], "\(phase): \(seen)")
                #expect(seen["kw"] == ["let", "func"] && seen["fn"] == ["add"], "\(phase): \(seen)")
                #expect(seen["str"] == ["\"<b>hi</b> & 'you'\""], "\(phase): \(seen)")
                #expect(seen["com"] == ["// says hi"], "\(phase): \(seen)")
                try await browser.screenshot("code-\(phase)")
                _ = try await browser.execute(copyCode)
                try await browser.find("#thread .body pre .copy-code").click()
                let copied = try await browser.waitUntil("Copy (\(phase))") {
                    let copied = try await browser.execute("return window.__copied;")
                    return Look(value: copied.string, seen: "\(copied)")
                }
                #expect(copied == code, "\(phase): copied \(copied.debugDescription)")
            }
            let console = try await browser.consoleLog()
            #expect(!console.contains { $0.isScriptProblem }, "\(console)")
        }
        #expect(await chat.stop() == 0)
    }
}
