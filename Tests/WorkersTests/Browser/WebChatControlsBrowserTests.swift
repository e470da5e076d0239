import Foundation
import Synchronization
import TestSupport
import Testing

/// The page's state as a person sees it: the messages shown (not those of another branch or version), each as
/// `role|state|stopped|pager|text`. A page followed live and a fresh load of it must agree.
private let visibleThread = """
    return Array.from(document.querySelectorAll('#thread .msg')).filter(function (e) { return !e.hidden; })
      .map(function (e) {
        var pos = e.querySelector('.meta .pager .pos');
        return [e.getAttribute('data-role'), e.getAttribute('data-state') || '',
          e.hasAttribute('data-stopped') ? 'stopped' : '', pos ? pos.textContent : '',
          e.querySelector('.body').textContent.trim()].join('|');
      }).join('\\n');
    """

/// Posts JSON from the page (its session and CSRF token), answering the HTTP status.
private let postFromPage = """
    var csrf = document.querySelector('meta[name="csrf-token"]').content;
    return fetch(arguments[0], { method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf }, body: arguments[1] })
      .then(function (r) { return r.status; });
    """

private let getFromPage = """
    return fetch(arguments[0], { credentials: 'same-origin' }).then(function (r) { return r.text(); });
    """

extension Browser {
    /// ``visibleThread`` now.
    fileprivate func visible() async throws -> String { try await execute(visibleThread).string ?? "" }

    /// Reloads the page and waits until its thread shows what it showed before (the live fold and the server's
    /// agree); returns it.
    @discardableResult
    fileprivate func reloadShowsTheSame() async throws -> String {
        let live = try await visible()
        try await open(try await currentURL())
        _ = try await waitForElement("#composer")
        let fresh = try await waitUntil("the same thread after a reload") {
            let now = try await self.visible()
            return Look(value: now == live ? now : nil, seen: "\(now)\n  live was:\n\(live)")
        }
        return fresh
    }
}

extension BrowserTests {
    /// Issue 24's controls in headless Chromium against a real `agent` (all roles) and a fake model: Stop,
    /// Regenerate with versions, Edit with branches, and the conversations' rename, search, live sidebar and
    /// delete. Each is an event in the log: a reload shows what the live page showed.
    @Suite("Web chat controls in a browser", .timeLimit(.minutes(6)))
    struct WebChatControls {
        @Test func stopEndsTheReplyFromAnyTabAndEscapeStopsToo() async throws {
            let gates = [StreamGate(), StreamGate()]
            let asked = Mutex(0)
            let model = try await FakeModelServer.start { _ in
                let n = asked.withLock { n -> Int in
                    n += 1
                    return n
                }
                return .text(["Once upon", " a time", " the end."], gate: gates[min(n, 2) - 1])
            }
            defer {
                gates.forEach { $0.open() }
                model.stop()
            }
            let chat = try await WebChatAgent.start(["AI_BASE_URL": model.baseURL, "AI_MODEL": "fake-model"])
            try await withBrowser { browser in
                try await chat.logIn(browser)
                try await browser.find("#composer").sendKeys("Tell me a story" + Keys.enter)
                try await browser.waitFor(
                    "the reply streaming", ChatDOM.assistant, attributes: ChatDOM.state, textOf: ".body"
                ) { replies in
                    replies.contains { $0.attributes["data-state"] == "streaming" && $0.text.contains("Once upon") }
                        ? true : nil
                }
                #expect(try await browser.find("#stop").property("hidden") == .bool(false))
                #expect(try await browser.find("#send").property("hidden") == .bool(true))
                let url = try await browser.currentURL()
                // Another tab stops it.
                try await withBrowser("stopFromAnotherTab") { other in
                    try await chat.logIn(other)
                    try await other.open(url)
                    _ = try await other.waitForElement("#stop:not([hidden])")
                    try await other.screenshot("stop-button")
                    try await other.find("#stop").click()
                    try await other.waitFor("stopped in the other tab", ChatDOM.assistant + "[data-stopped]") {
                        $0.isEmpty ? nil : true
                    }
                }
                // This tab follows, without a reload: the streamed text is the final reply, marked stopped.
                let stopped = try await browser.waitFor(
                    "stopped here", ChatDOM.assistant + #"[data-stopped][data-state="final"]"#, textOf: ".body"
                ) { $0.first?.text }
                #expect(stopped.contains("Once upon") && stopped.contains("Stopped."))
                #expect(!stopped.contains("a time"))
                #expect(try await browser.find("#stop").property("hidden") == .bool(true))
                #expect(try await browser.find("#send").property("hidden") == .bool(false))
                let fresh = try await browser.reloadShowsTheSame()
                #expect(fresh.contains("assistant|final|stopped||Once upon"))
                try await browser.screenshot("stopped")
                try await browser.setWindowSize(width: 390, height: 844)
                try await browser.screenshot("stopped-phone")
                try await browser.setWindowSize(width: 1280, height: 900)

                // Escape stops the next one.
                try await browser.find("#composer").sendKeys("Another story" + Keys.enter)
                try await browser.waitFor(
                    "the second reply streaming", ChatDOM.assistant + #"[data-state="streaming"]"#
                ) {
                    $0.isEmpty ? nil : true
                }
                try await browser.find("#composer").sendKeys(Keys.escape)
                try await browser.waitFor("two stopped replies", ChatDOM.assistant + "[data-stopped]") {
                    $0.count == 2 ? true : nil
                }
            }
            // Each job ended without a retry: the model was asked once per message.
            _ = try await chat.agent.waitFor("[agent] Stopped job", within: 30)
            #expect(asked.withLock { $0 } == 2)
            #expect(await chat.stop() == 0)
        }

        @Test func regenerateKeepsVersionsAndTheHistoryUsesTheOneShown() async throws {
            let jokes = Mutex(0)
            let model = try await FakeModelServer.start { request in
                guard request.lastUserText == "Tell a joke" else { return .text(["Noted."]) }
                let n = jokes.withLock { n -> Int in
                    n += 1
                    return n
                }
                return .text(["Joke number \(n)"])
            }
            defer { model.stop() }
            let chat = try await WebChatAgent.start(["AI_BASE_URL": model.baseURL, "AI_MODEL": "fake-model"])
            try await withBrowser { browser in
                try await chat.logIn(browser)
                try await browser.find("#composer").sendKeys("Tell a joke" + Keys.enter)
                try await browser.waitFor(
                    "the first joke", ChatDOM.assistant + #"[data-state="final"]"#, textOf: ".body"
                ) {
                    $0.first { $0.text.contains("Joke number 1") }.map { _ in true }
                }
                try await browser.find(#".msg[data-last] button[data-action="regenerate"]"#).click()
                try await browser.waitUntil("version 2 of 2 shown") {
                    let now = try await browser.visible()
                    return Look(value: now.contains("assistant|final||2/2|Joke number 2") ? true : nil, seen: now)
                }
                try await browser.reloadShowsTheSame()
                try await browser.screenshot("version-2-of-2")
                try await browser.find(#"#thread .msg:not([hidden]) button[data-action="page"][data-step="-1"]"#)
                    .click()
                try await browser.waitUntil("version 1 of 2 shown") {
                    let now = try await browser.visible()
                    return Look(value: now.contains("assistant|final||1/2|Joke number 1") ? true : nil, seen: now)
                }
                try await browser.setWindowSize(width: 390, height: 844)
                try await browser.waitUntil("the closed sidebar off the phone's screen") {
                    let right = try await browser.execute(
                        "return document.querySelector('.sidebar').getBoundingClientRect().right;")
                    return Look(value: (right.number ?? 1) <= 0 ? true : nil, seen: "\(right)")
                }
                try await browser.screenshot("version-1-of-2-phone")
                try await browser.setWindowSize(width: 1280, height: 900)
                // Written beside version 1: the model's history has version 1.
                try await browser.find("#composer").sendKeys("Thanks" + Keys.enter)
                try await browser.waitUntil("the answer to Thanks") {
                    let now = try await browser.visible()
                    return Look(value: now.hasSuffix("assistant|final|||Noted.") ? true : nil, seen: now)
                }
                let thanks = try #require(model.requests.last { $0.lastUserText == "Thanks" })
                let assistantSaw = thanks.messages.filter { $0.role == "assistant" }.map(\.content)
                #expect(assistantSaw == ["Joke number 1"])
                // A reload shows the same branch: version 1, then Thanks.
                let fresh = try await browser.reloadShowsTheSame()
                #expect(fresh.contains("1/2|Joke number 1"))
            }
            #expect(await chat.stop() == 0)
        }

        @Test func editingAMessageStartsABranchAndTheOldOneStaysReachable() async throws {
            let model = try await FakeModelServer.start { request in .text(["Answer to: " + request.lastUserText]) }
            defer { model.stop() }
            let chat = try await WebChatAgent.start(["AI_BASE_URL": model.baseURL, "AI_MODEL": "fake-model"])
            try await withBrowser { browser in
                try await chat.logIn(browser)
                try await browser.find("#composer").sendKeys("What is two plus two?" + Keys.enter)
                try await browser.waitFor("the answer", ChatDOM.assistant + #"[data-state="final"]"#) {
                    $0.isEmpty ? nil : true
                }
                try await browser.find(#"#thread .msg[data-role="user"] button[data-action="edit"]"#).click()
                let area = try await browser.waitForElement(".edit-box textarea")
                try await area.clear()
                try await area.sendKeys("What is three plus three?" + Keys.enter)
                let edited = try await browser.waitUntil("the edited branch") {
                    let now = try await browser.visible()
                    let want =
                        "user|||2/2|What is three plus three?\nassistant|final|||Answer to: What is three plus three?"
                    return Look(value: now == want ? now : nil, seen: now)
                }
                #expect(!edited.contains("two plus two"))
                let asked = try #require(model.requests.last)
                #expect(!asked.messages.contains { $0.content.contains("two plus two") })
                try await browser.screenshot("edited-branch")
                try await browser.setWindowSize(width: 390, height: 844)
                try await browser.screenshot("edited-branch-phone")
                try await browser.setWindowSize(width: 1280, height: 900)
                // The old branch is one click away, and a reload shows the newest.
                try await browser.find(#"#thread .msg[data-role="user"]:not([hidden]) button[data-step="-1"]"#).click()
                try await browser.waitUntil("the first branch") {
                    let now = try await browser.visible()
                    let want = "user|||1/2|What is two plus two?\nassistant|final|||Answer to: What is two plus two?"
                    return Look(value: now == want ? true : nil, seen: now)
                }
                try await browser.open(try await browser.currentURL())
                _ = try await browser.waitForElement("#composer")
                #expect(try await browser.visible() == edited)
            }
            #expect(await chat.stop() == 0)
        }

        @Test func conversationsAreRenamedSearchedKeptLiveAndDeleted() async throws {
            let model = try await FakeModelServer.start { _ in .text(["Sure."]) }
            defer { model.stop() }
            let chat = try await WebChatAgent.start(["AI_BASE_URL": model.baseURL, "AI_MODEL": "fake-model"])
            try await withBrowser { browser in
                try await chat.logIn(browser)
                func start(_ text: String) async throws -> String {
                    try await browser.open(chat.base + "/")
                    try await browser.find("#composer").sendKeys(text + Keys.enter)
                    try await browser.waitFor("the reply", ChatDOM.assistant + #"[data-state="final"]"#) {
                        $0.isEmpty ? nil : true
                    }
                    return try await browser.waitUntil("the conversation's URL") {
                        let url = try await browser.currentURL()
                        return Look(value: url.contains("/c/") ? url : nil, seen: url)
                    }
                }
                let trip = try await start("Plan the trip to Lisbon")
                let bread = try await start("Bake sourdough bread")
                let tripID = String(trip.split(separator: "/").last ?? "")
                let breadID = String(bread.split(separator: "/").last ?? "")
                try await browser.open(trip)
                _ = try await browser.waitForElement("#composer")

                // Rename: the heading and the sidebar agree.
                try await browser.find("#rename").click()
                // The field opens with the title selected: typing replaces it (WebDriver's clear would blur it,
                // which saves).
                let input = try await browser.waitForElement("#rename-input")
                try await input.sendKeys("Lisbon in May" + Keys.enter)
                try await browser.waitFor(
                    "the new title in the sidebar", #"#conversations a[aria-current="page"] .title"#
                ) {
                    $0.first?.text == "Lisbon in May" ? true : nil
                }
                #expect(try await browser.find(".main-head h1").text() == "Lisbon in May")

                // Search finds the other conversation by its text.
                try await browser.find("#search").sendKeys("SOURDOUGH")
                try await browser.waitFor("a search hit", "#search-results a.search-hit", attributes: ["href"]) {
                    $0.first?.attributes["href"] == "/c/\(breadID)" ? true : nil
                }
                try await browser.screenshot("search")
                try await browser.find("#search").sendKeys(Keys.escape)

                // Live sidebar: new activity elsewhere moves that conversation to the top, no reload.
                #expect(
                    try await browser.execute(
                        postFromPage,
                        [
                            .string("/api/conversations/\(breadID)/messages"),
                            .string(#"{"clientID":"live-1","text":"And a rye loaf"}"#),
                        ]) == .number(202))
                try await browser.waitFor(
                    "the bread conversation on top", "#conversations li a.conversation", attributes: ["href"]
                ) {
                    $0.first?.attributes["href"] == "/c/\(breadID)" ? true : nil
                }

                // Delete: gone from the sidebar, the page and the APIs; recorded who and when. A tab still open on
                // it (a phone here) follows at once.
                try await withBrowser("deletedInAnotherTab") { other in
                    try await other.setWindowSize(width: 390, height: 844)
                    try await chat.logIn(other)
                    try await other.open(trip)
                    _ = try await other.waitForElement("#delete")
                    try await other.screenshot("conversation-controls-phone")
                    try await browser.find("#delete").click()
                    try await browser.screenshot("delete-confirm")
                    try await browser.find("#delete-yes").click()
                    let gone = try await other.waitForElement(".deleted-thread")
                    #expect(try await gone.text().contains("deleted"))
                    #expect(try await other.findAll(#"#thread .msg"#).isEmpty)
                    #expect(try await other.find("#composer").property("disabled") == .bool(true))
                    try await other.screenshot("deleted-phone")
                }
                try await browser.waitUntil("back at a new chat") {
                    let url = try await browser.currentURL()
                    return Look(value: url == chat.base + "/" ? true : nil, seen: url)
                }
                #expect(try await browser.findAll(#"#conversations a[href="/c/\#(tripID)"]"#).isEmpty)
                try await browser.open(trip)
                let notice = try await browser.waitForElement(".deleted-thread")
                #expect(try await notice.text().contains("deleted"))
                #expect(try await browser.find("#composer").property("disabled") == .bool(true))
                let list = try await browser.execute(getFromPage, [.string("/api/conversations")]).string ?? ""
                #expect(!list.contains(tripID) && list.contains(breadID))
                let found = try await browser.execute(getFromPage, [.string("/api/search?q=Lisbon")]).string ?? ""
                #expect(found == "[]")
            }
            #expect(await chat.stop() == 0)

            // replay shows the deletion, never the text.
            let data = chat.dir.path
            let shown = try await SpawnedProcess.run("replay", ["conversations", "show", "--data-dir", data])
            let line = try #require(shown.lines.first { $0.contains("web-") && $0.contains("deleted at") })
            #expect(line.contains("by web:owner"))
            let export = try await SpawnedProcess.run("replay", ["export", "--data-dir", data])
            #expect(export.status == 0)
            #expect(!export.lines.contains { $0.contains("Lisbon") })
            #expect(export.lines.contains { $0.contains(#""redacted":true"#) })
            #expect(export.lines.contains { $0.contains("sourdough") })
        }
    }
}
