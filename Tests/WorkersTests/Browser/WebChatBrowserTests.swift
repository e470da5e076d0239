import AsyncHTTPClient
import Foundation
import TestSupport
import Testing

/// An `agent` with `AGENT_ROLE=all` serving the web chat, on a temporary log, with the fakes it talks to.
struct WebChatAgent {
    static let password = "correct horse battery staple"

    let dir: TemporaryDirectory
    let agent: AgentProcess
    let base: String

    /// Starts the agent (`WEB_PASSWORD` set, HTTP on `port`, or on a free port the kernel picks) and waits until
    /// `/healthz` answers.
    static func start(_ environment: [String: String], port: Int = 0) async throws -> WebChatAgent {
        let dir = TemporaryDirectory()
        let agent = try AgentProcess(
            "web-1", data: dir.path,
            [
                "AGENT_ROLE": "all", "WEB_PASSWORD": password, "ENABLE_WHATSAPP": "false", "LOG_LEVEL": "info",
                "AI_STREAM_IDLE_TIMEOUT_MS": "300000", "PORT": "\(port)",
            ].merging(environment) { $1 })
        let listening = try await agent.waitFor("http.port=", within: 60)
        let line = agent.lines[listening]
        guard let port = line.components(separatedBy: "http.port=").last?.prefix(while: \.isNumber), !port.isEmpty
        else { throw TestTimeout(what: "the agent's port in \(line)") }
        let chat = WebChatAgent(dir: dir, agent: agent, base: "http://127.0.0.1:\(port)")
        let health = try await HTTPClient.shared.execute(
            HTTPClientRequest(url: chat.base + "/healthz"), timeout: .seconds(30))
        guard health.status.code == 200 else { throw TestTimeout(what: "a healthy agent (\(health.status))") }
        let login = try await HTTPClient.shared.execute(
            HTTPClientRequest(url: chat.base + "/login"), timeout: .seconds(30))
        guard login.status.code == 200 else {
            _ = await agent.stop()
            throw WebChatMissing(status: Int(login.status.code))
        }
        return chat
    }

    /// Opens `/`, is sent to the login page, logs in, and waits for the chat page's composer.
    func logIn(_ browser: Browser, screenshots: Bool = false) async throws {
        try await browser.open(base + "/")
        try await browser.waitUntil("the login page") {
            let url = try await browser.currentURL()
            let secret = try await browser.findAll("#login-secret")
            return Look(value: url.contains("/login") && !secret.isEmpty ? true : nil, seen: "\(url), \(secret)")
        }
        if screenshots { try await browser.screenshot("login") }
        try await browser.find("#login-secret").sendKeys(Self.password)
        try await browser.find("#login-submit").click()
        try await browser.waitForElement("#composer")
    }

    /// SIGTERM; the agent must stop cleanly.
    func stop() async -> Int32 { await agent.stop() }
}

/// The agent serves no web chat (`GET /login` is not a page).
struct WebChatMissing: Error, CustomStringConvertible {
    var status: Int
    var description: String { "the agent serves no web chat: GET /login answered \(status), not 200" }
}

/// Selectors of the web chat's DOM contract (docs/web.md).
enum ChatDOM {
    static let assistant = #"#thread .msg[data-role="assistant"]"#
    static let user = #"#thread .msg[data-role="user"]"#
    static let approval = "#thread .approval[data-call-id]"
    static let state = ["data-state", "data-message-id"]

    static func trimmed(_ text: String) -> String { text.trimmingCharacters(in: .whitespacesAndNewlines) }
}

extension BrowserTests {
    /// The web chat end to end in headless Chromium: a real `agent` (all roles), a slow fake model, a fake
    /// Todoist. Each step waits on the page (deadline 30 s) and leaves a screenshot.
    @Suite("Web chat in a browser", .timeLimit(.minutes(6)))
    struct WebChat {
        /// What the model streams for "hello", one held chunk at a time.
        static let greeting = ["Hello", " there,", " I am", " streaming", " slowly."]

        // Runbook A: log in, a streamed reply growing then final, a tool approval that creates one task.
        @Test func runbookA_loginStreamedReplyAndToolApproval() async throws {
            let gate = StreamGate()
            defer { gate.open() }
            let todoist = try await FakeTodoist.start()
            defer { todoist.stop() }
            let model = try await FakeModelServer.start { request in
                if request.last?.role == "tool" { return .text(["Added buy milk", " to your Todoist."]) }
                let text = request.lastUserText
                if text == "hello" { return .text(Self.greeting, gate: gate) }
                if text.contains("buy milk") {
                    return .toolCall(
                        id: "call_todo_1", name: "todoist_create_task", arguments: #"{"content":"buy milk"}"#)
                }
                return .text(["I heard: \(text)"])
            }
            defer { model.stop() }
            let chat = try await WebChatAgent.start([
                "AI_BASE_URL": model.baseURL, "AI_MODEL": "fake-model", "TODOIST_API_TOKEN": FakeTodoist.token,
                "TODOIST_BASE_URL": todoist.apiBaseURL,
            ])
            try await withBrowser { browser in
                // `/` sends a stranger to the login page; a wrong password says so.
                try await browser.open(chat.base + "/")
                try await browser.waitUntil("the redirect to the login page") {
                    let url = try await browser.currentURL()
                    return Look(value: url.contains("/login") ? url : nil, seen: url)
                }
                try await browser.waitForElement("#login-secret")
                try await browser.screenshot("login-page")
                try await browser.find("#login-secret").sendKeys("not the password")
                try await browser.find("#login-submit").click()
                let error = try await browser.waitFor("the login error", "#login-error") {
                    $0.first.map { ChatDOM.trimmed($0.text) }.flatMap { $0.isEmpty ? nil : $0 }
                }
                #expect(!error.isEmpty)
                #expect(try await browser.findAll("#composer").isEmpty)
                try await browser.screenshot("login-wrong-password")

                try await browser.find("#login-secret").clear()
                try await browser.find("#login-secret").sendKeys(WebChatAgent.password)
                try await browser.find("#login-submit").click()
                try await browser.waitForElement("#composer")
                #expect(try await !browser.currentURL().contains("/login"))
                try await browser.screenshot("chat-page")

                // "hello" with Enter: the message shows, then the reply grows chunk by chunk, then is final.
                try await browser.find("#composer").sendKeys("hello" + Keys.enter)
                try await browser.waitFor("the user's message", ChatDOM.user, textOf: ".body") {
                    $0.contains { ChatDOM.trimmed($0.text) == "hello" } ? true : nil
                }
                try await browser.screenshot("user-message")
                var seen: [String] = []
                for step in Self.greeting.indices {
                    let expected = Self.greeting[...step].joined()
                    if step > 0 { gate.release() }
                    let text = try await browser.waitFor(
                        "the reply to read '\(expected)' while streaming", ChatDOM.assistant,
                        attributes: ChatDOM.state, textOf: ".body"
                    ) { replies -> String? in
                        guard let last = replies.last, last.attributes["data-state"] == "streaming",
                            ChatDOM.trimmed(last.text) == expected
                        else { return nil }
                        return ChatDOM.trimmed(last.text)
                    }
                    seen.append(text)
                    try await browser.screenshot("reply-streaming-\(step)")
                }
                for (earlier, later) in zip(seen, seen.dropFirst()) {
                    #expect(later.hasPrefix(earlier) && later.count > earlier.count, "\(earlier) → \(later)")
                }
                gate.release()  // the end of the stream
                let final = try await browser.waitFor(
                    "the final reply", ChatDOM.assistant, attributes: ChatDOM.state, textOf: ".body"
                ) { replies -> ElementSnapshot? in
                    guard let last = replies.last, last.attributes["data-state"] == "final" else { return nil }
                    return last
                }
                #expect(ChatDOM.trimmed(final.text) == Self.greeting.joined())
                #expect(final.attributes["data-message-id"]?.hasPrefix("reply:") == true)
                try await browser.screenshot("reply-final")

                // A side-effecting tool: an approval card, approved, then the final reply; one task exists.
                try await browser.find("#composer").sendKeys("Please add buy milk to my Todoist" + Keys.enter)
                let callID = try await browser.waitFor(
                    "an approval card awaiting", ChatDOM.approval, attributes: ["data-call-id", "data-status"]
                ) { cards -> String? in
                    cards.first { $0.attributes["data-status"] == "awaiting" }?.attributes["data-call-id"]
                }
                #expect(!callID.isEmpty)
                #expect(todoist.tasks.isEmpty)
                try await browser.screenshot("approval-awaiting")
                try await browser.find(
                    #"#thread .approval[data-status="awaiting"] button[data-action="approve"]"#
                ).click()
                try await browser.waitFor(
                    "the card to show approved", ChatDOM.approval, attributes: ["data-call-id", "data-status"]
                ) { cards in
                    cards.contains {
                        $0.attributes["data-call-id"] == callID && $0.attributes["data-status"] == "approved"
                    }
                        ? true : nil
                }
                let done = try await browser.waitFor(
                    "the reply after the tool", ChatDOM.assistant, attributes: ChatDOM.state, textOf: ".body"
                ) { replies -> String? in
                    replies.last { $0.attributes["data-state"] == "final" && $0.text.contains("to your Todoist") }?
                        .text
                }
                #expect(ChatDOM.trimmed(done) == "Added buy milk to your Todoist.")
                try await browser.screenshot("approval-approved-final")
                // Issue 24, bug 4: the card sits above the reply it controls, says who decided as a person reads
                // it, and reads the same (its arguments too) streamed and after a reload.
                let cardView = """
                    const card = document.querySelector('.approval[data-call-id="' + arguments[0] + '"]');
                    const replies = [...document.querySelectorAll('.msg[data-role="assistant"]')];
                    const controlled = replies[replies.length - 1];
                    return [card.querySelector('.args').textContent, card.querySelector('.approval-state').textContent,
                        String(Boolean(card.compareDocumentPosition(controlled) & Node.DOCUMENT_POSITION_FOLLOWING))];
                    """
                let streamed = try await browser.execute(cardView, [.string(callID)])
                try await browser.open(try await browser.currentURL())
                try await browser.waitForElement(ChatDOM.approval)
                let reloaded = try await browser.execute(cardView, [.string(callID)])
                #expect(streamed == reloaded, "streamed \(streamed), reloaded \(reloaded)")
                guard case .array(let parts) = reloaded, parts.count == 3 else {
                    Issue.record("the card: \(reloaded)")
                    return
                }
                #expect(parts[1].string == "Approved by you", "\(parts[1])")
                #expect(parts[2].string == "true", "the approval card comes before the reply it controls")
                #expect(parts[0].string?.contains("\n  \"content\": ") == true, "\(parts[0])")
                // Every message shows its time, replies included, with the absolute time on hover.
                let untimed = try await browser.execute(
                    "return [...document.querySelectorAll('.msg')].filter(m => !m.querySelector('.meta time[title]')).length;"
                )
                #expect(untimed == .number(0), "messages without a time: \(untimed)")
                #expect(todoist.tasks == [FakeTodoist.TodoTask(id: "t1", content: "buy milk")])
                // The model saw the tool's result before writing that reply.
                #expect(model.requests.contains { $0.last?.role == "tool" && $0.last?.content.contains("t1") == true })
                #expect(model.requests.allSatisfy { $0.stream })
                #expect(model.requests.first?.toolNames.contains("todoist_create_task") == true)

                let console = try await browser.consoleLog()
                #expect(!console.contains { $0.isScriptProblem }, "\(console)")
            }
            #expect(await chat.stop() == 0)
        }

        // Model output and the user's own text are shown as text: no script runs, no element is made from them,
        // neither while streaming nor in the page rendered again from the log.
        @Test func htmlInMessagesIsShownAsTextAndNeverRuns() async throws {
            let script = "<script>window.__xss=1</script>"
            let image = #"<img src=x onerror="window.__xss=2">"#
            let model = try await FakeModelServer.start { _ in
                .text(["Here is HTML: ", script, " and ", image, " done."])
            }
            defer { model.stop() }
            let chat = try await WebChatAgent.start(["AI_BASE_URL": model.baseURL, "AI_MODEL": "fake-model"])
            try await withBrowser { browser in
                try await chat.logIn(browser)
                let userText = #"show <b>me</b> <img src=x onerror="window.__xss=3">"#
                try await browser.find("#composer").sendKeys(userText + Keys.enter)
                try await Self.expectShownAsText(browser, userText: userText, reply: [script, image])
                try await browser.screenshot("html-as-text")

                // The same conversation rendered again from the log.
                let url = try await browser.currentURL()
                try await browser.open(url)
                try await Self.expectShownAsText(browser, userText: userText, reply: [script, image])
                try await browser.screenshot("html-as-text-reloaded")
                // Nothing even tried to run (a blocked inline script would be a CSP report in the console).
                let console = try await browser.consoleLog()
                #expect(!console.contains { $0.isScriptProblem }, "\(console)")
                // Issue 24, bug 5: New chat opens `/` (not `/?`), and the tab's icon loads (no 404 in the console).
                try await browser.find("#new-chat").click()
                let fresh = try await browser.waitUntil("a new chat's URL") {
                    let now = try await browser.currentURL()
                    return Look(value: now != url ? now : nil, seen: now)
                }
                #expect(fresh.hasSuffix("/") && !fresh.contains("?"), "\(fresh)")
                let afterNewChat = try await browser.consoleLog()
                #expect(
                    !afterNewChat.contains { $0.message.contains("favicon") || $0.message.contains("404") },
                    "\(afterNewChat)")
            }
            #expect(await chat.stop() == 0)
        }

        @Test func runbookF_connectTodoistThenAddAndCompleteATaskFromTheChat() async throws {
            // The callback URL names the agent's port, so the port is chosen before the agent starts.
            let port = try freePort()
            let todoist = try await FakeTodoist.start()
            defer { todoist.stop() }
            let chat = try await WebChatAgent.start(
                [
                    "TODOIST_CLIENT_ID": "client-1", "TODOIST_CLIENT_SECRET": "client-secret-1",
                    // `localhost`: another site than the agent's 127.0.0.1, as todoist.com is.
                    "TODOIST_OAUTH_AUTHORIZE_URL": todoist.authorizeURL.replacingOccurrences(
                        of: "127.0.0.1", with: "localhost"),
                    "TODOIST_OAUTH_TOKEN_URL": todoist.tokenURL, "TODOIST_BASE_URL": todoist.apiBaseURL,
                ], port: port)
            try await withBrowser { browser in
                try await chat.logIn(browser)
                try await browser.open(chat.base + "/settings")
                let before = try await browser.waitFor("the Todoist status", "#todoist-status") { $0.first?.text }
                #expect(before.contains("not connected"), "\(before)")
                try await browser.screenshot("settings-not-connected")
                try await browser.find("#todoist-connect").click()
                let after = try await browser.waitFor("Todoist connected", "#todoist-status") { items in
                    items.first.flatMap { $0.text.contains("Todoist connected") ? $0.text : nil }
                }
                #expect(after == "Todoist connected.")
                try await browser.screenshot("settings-connected")
                let authorize = try #require(todoist.authorizeQueries.first)
                #expect(authorize["client_id"] == "client-1")
                #expect(authorize["redirect_uri"] == "http://127.0.0.1:\(port)/oauth/todoist/callback")
                #expect(todoist.exchanges.count == 1)
                #expect(todoist.exchanges.first?.clientSecret == "client-secret-1")
                #expect(todoist.exchanges.first?.code == FakeTodoist.code)

                try await browser.open(chat.base + "/")
                try await browser.waitForElement("#composer")
                try await browser.find("#composer").sendKeys("/todo add buy milk" + Keys.enter)
                try await Self.approveTheCallAwaiting(browser, "add")
                let added = try await Self.finalReply(browser, containing: "t1", count: 1)
                #expect(added.contains("buy milk"), "\(added)")
                #expect(todoist.tasks == [FakeTodoist.TodoTask(id: "t1", content: "buy milk")])
                try await browser.screenshot("todo-added")

                try await browser.find("#composer").sendKeys("/todo done t1" + Keys.enter)
                try await Self.approveTheCallAwaiting(browser, "done")
                _ = try await Self.finalReply(browser, containing: "t1", count: 2)
                #expect(todoist.tasks == [FakeTodoist.TodoTask(id: "t1", content: "buy milk", completed: true)])
                try await browser.screenshot("todo-completed")
                let console = try await browser.consoleLog()
                #expect(!console.contains { $0.isScriptProblem }, "\(console)")
            }
            #expect(await chat.stop() == 0)
        }

        /// Waits for an approval card awaiting an answer, approves it, and waits for it to show approved.
        static func approveTheCallAwaiting(_ browser: Browser, _ step: String) async throws {
            let callID = try await browser.waitFor(
                "an approval card awaiting (\(step))", ChatDOM.approval, attributes: ["data-call-id", "data-status"]
            ) { cards in cards.first { $0.attributes["data-status"] == "awaiting" }?.attributes["data-call-id"] }
            try await browser.screenshot("\(step)-approval-awaiting")
            try await browser.find(
                #"#thread .approval[data-status="awaiting"] button[data-action="approve"]"#
            ).click()
            try await browser.waitFor(
                "the card to show approved (\(step))", ChatDOM.approval, attributes: ["data-call-id", "data-status"]
            ) { cards in
                cards.contains { $0.attributes["data-call-id"] == callID && $0.attributes["data-status"] == "approved" }
                    ? true : nil
            }
        }

        /// Waits until there are `count` final replies and the last one contains `text`; returns its text.
        static func finalReply(_ browser: Browser, containing text: String, count: Int) async throws -> String {
            try await browser.waitFor(
                "final reply \(count) containing '\(text)'", ChatDOM.assistant, attributes: ChatDOM.state,
                textOf: ".body"
            ) { replies in
                let finals = replies.filter { $0.attributes["data-state"] == "final" }
                guard finals.count == count, let last = finals.last, last.text.contains(text) else { return nil }
                return ChatDOM.trimmed(last.text)
            }
        }

        static func expectShownAsText(_ browser: Browser, userText: String, reply: [String]) async throws {
            let final = try await browser.waitFor(
                "the final reply", ChatDOM.assistant, attributes: ChatDOM.state, textOf: ".body"
            ) { replies in replies.last { $0.attributes["data-state"] == "final" }?.text }
            for piece in reply { #expect(final.contains(piece), "\(final)") }
            let user = try await browser.snapshot(ChatDOM.user, textOf: ".body")
            #expect(user.contains { ChatDOM.trimmed($0.text) == userText }, "\(user)")
            let probe = try await browser.execute(
                """
                return {
                    xss: typeof window.__xss,
                    made: document.querySelectorAll('#thread .body script, #thread .body img, #thread .body b').length
                };
                """)
            #expect(probe["xss"]?.string == "undefined")
            #expect(probe["made"]?.number == 0)
        }

    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for a process whose settings must name its port before it
/// starts).
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestTimeout(what: "a socket") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
        }
    }
    guard bound else { throw TestTimeout(what: "a free port") }
    return Int(UInt16(bigEndian: address.sin_port))
}
