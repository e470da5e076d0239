import AsyncHTTPClient
import EventLog
import Foundation
import Hummingbird
import Logging
import NIOCore
import Projections
import Synchronization
import SwitchboardEvents
import Testing
@testable import Workers

/// The server-rendered pages: escaping of model text, the DOM contract, status and settings with Todoist connect.
@Suite("Web pages", .timeLimit(.minutes(3)))
struct WebPagesTests {
    static let hostile = """
        <script>alert(1)</script> <img src=x onerror=alert(2)> [click](javascript:alert(3)) **bold** and `<b>code</b>`
        - item <i>one</i>
        - [safe](https://example.org/?a=1&b="2")

        ```html
        <script>alert(4)</script>
        ```
        """

    @Test func modelTextIsEscapedInTheServerRenderedThread() async throws {
        try await WebHarness.with { h in
            let login = try await h.login()
            let posted = try await WebChatTests.post(
                h, login, conversation: "web-x", clientID: "x-1", text: "<b>user html</b> & more")
            let jobID = try #require(posted.json["jobID"] as? String)
            try await h.log.log.append(
                AssistantMessage(
                    messageID: "reply:\(jobID)", conversationID: "web-x", jobID: jobID, jobToken: 1, text: Self.hostile,
                    modelUsed: "test-model", final: true))
            let page = try await h.get("/c/web-x", login)
            #expect(page.status == 200)
            let body = page.body
            // Nothing the model (or the user) wrote becomes markup.
            #expect(!body.contains("<script>alert"))
            #expect(!body.contains("<img"))
            #expect(!body.contains("<i>one</i>"))
            #expect(!body.contains("<b>"))
            #expect(!body.contains("javascript:alert(3)\""))
            #expect(!body.contains("href=\"javascript"))
            #expect(body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
            #expect(body.contains("&lt;img src=x onerror=alert(2)&gt;"))
            #expect(body.contains("&lt;b&gt;user html&lt;/b&gt; &amp; more"))
            // The Markdown that is allowed is rendered.
            #expect(body.contains("<strong>bold</strong>"))
            #expect(body.contains("<code>&lt;b&gt;code&lt;/b&gt;</code>"))
            #expect(body.contains("<li>item &lt;i&gt;one&lt;/i&gt;</li>"))
            #expect(
                body.contains(
                    #"<a href="https://example.org/?a=1&amp;b=&quot;2&quot;" rel="noopener noreferrer" target="_blank">safe</a>"#
                ) || body.contains("[safe]"))
            #expect(
                body.contains(#"<pre><code class="language-html">&lt;script&gt;alert(4)&lt;/script&gt;</code></pre>"#))
            // The DOM contract.
            #expect(body.contains(#"<ul id="conversations">"#))
            #expect(body.contains(#"<a class="conversation" href="/c/web-x" aria-current="page">"#))
            #expect(body.contains(#"id="new-chat""#))
            #expect(body.contains(#"<div id="thread" role="log" aria-live="polite""#))
            #expect(body.contains(#"<div class="msg" data-role="user" data-client-id="x-1""#))
            #expect(body.contains(#"data-role="assistant" data-state="final" data-message-id="reply:\#(jobID)""#))
            // Issue 24: every message has its time, replies included, the absolute one on hover.
            let reply = body.components(separatedBy: #"data-role="assistant""#).dropFirst().first?.prefix(700) ?? ""
            #expect(reply.contains(#"<time datetime=""#) && reply.contains(#" UTC">"#), "\(reply)")
            let user = body.components(separatedBy: #"data-role="user""#).dropFirst().first?.prefix(400) ?? ""
            #expect(user.contains(#"<time datetime=""#) && user.contains(#" UTC">"#), "\(user)")
            #expect(body.contains(#"<textarea id="composer""#))
            #expect(body.contains(#"<button id="send""#))
            #expect(page.header("Content-Security-Policy")?.contains("default-src 'none'") == true)
            // The sidebar title (the first message) is escaped too.
            #expect(body.contains(#"<span class="title">&lt;b&gt;user html&lt;/b&gt; &amp; more</span>"#))
        }
    }

    @Test func markdownRendersTheSafeSubset() {
        #expect(Markdown.render("a *b* _c_ **d**") == "<p>a <em>b</em> <em>c</em> <strong>d</strong></p>")
        // Underscores inside words are text, a double one never half emphasis (CommonMark's flanking rules).
        #expect(Markdown.render("window.__x=1 and window.__x=2") == "<p>window.__x=1 and window.__x=2</p>")
        #expect(Markdown.render("snake_case_name and __bold__") == "<p>snake_case_name and <strong>bold</strong></p>")
        #expect(Markdown.render("1. one\n2. two") == "<ol><li>one</li><li>two</li></ol>")
        #expect(Markdown.render("line one\nline two\n\nnext") == "<p>line one<br>line two</p><p>next</p>")
        #expect(
            Markdown.render("see https://example.org/x.")
                == #"<p>see <a href="https://example.org/x" rel="noopener noreferrer" target="_blank">https://example.org/x</a>.</p>"#
        )
        #expect(Markdown.render("[x](data:text/html,hi)") == "<p>[x](data:text/html,hi)</p>")
        #expect(Markdown.render("snake_case_name") == "<p>snake_case_name</p>")
        #expect(Markdown.render("```\nopen") == "<pre><code>open</code></pre>")
        #expect(Markdown.render("> quoted <x>") == "<blockquote><p>quoted &lt;x&gt;</p></blockquote>")
    }

    // Issue 24, bug 5: New chat goes to `/`, not `/?`; the tab has an icon and `/favicon.ico` answers; a dead job's
    // `notBefore` is absent, not the sentinel that keeps it out of the queue (year 294247).
    @Test func newChatIsALinkTheIconIsServedAndADeadJobHasNoNotBefore() async throws {
        try await WebHarness.with { h in
            let login = try await h.login()
            let page = try await h.get("/", login)
            #expect(page.body.contains(#"<a id="new-chat" class="button primary" href="/">New chat</a>"#))
            #expect(!page.body.contains(#"<form action="/" method="get">"#))
            let icon = try #require(
                page.body.components(separatedBy: #"<link rel="icon" type="image/svg+xml" href=""#).dropFirst().first?
                    .prefix { $0 != "\"" })
            let served = try await h.get(String(icon), nil)
            #expect(served.status == 200 && served.header("Content-Type") == "image/svg+xml")
            #expect(served.body.hasPrefix("<svg"))
            let favicon = try await h.get("/favicon.ico", nil)
            #expect(favicon.status == 200 && favicon.body == served.body)

            _ = try await h.engine.enqueueJob(NewJob(idempotencyKey: "dead-1", conversationID: "web-dead"))
            let claimed = try #require(try await h.engine.claimJob())
            _ = try await h.engine.failJob(
                claimed.job.jobID, token: claimed.token, reason: "permanent", message: "refused", retryable: false)
            let json = try await h.get("/api/status", login)
            #expect(!json.body.contains("294247"), "\(json.body)")
            let status = try JSONDecoder().decode(WebStatus.self, from: Data(json.body.utf8))
            #expect(status.deadJobs.map(\.jobID) == [claimed.job.jobID])
            #expect(status.deadJobs.first?.notBefore == nil)
        }
    }

    @Test func theStatusPageAndItsJSONShowLeasesQueuesDeadJobsAndAlerts() async throws {
        try await WebHarness.with { h in
            let login = try await h.login()
            _ = try await h.engine.acquireLease("whatsapp/default")
            let page = try await h.get("/status", login)
            #expect(page.status == 200)
            for id in ["leases", "queues", "dead-jobs", "uncertain", "alerts"] {
                #expect(page.body.contains(#"id="\#(id)""#), "\(id)")
            }
            #expect(page.body.contains("whatsapp/default"))
            let json = try await h.get("/api/status", login)
            #expect(json.status == 200)
            let status = try JSONDecoder().decode(WebStatus.self, from: Data(json.body.utf8))
            #expect(status.leases.map(\.resource) == ["whatsapp/default"])
            #expect(status.leases.first?.state == .held)
            #expect(status.alerts.count == AlertCheck.Check.allCases.count)
            #expect(status.deadJobs.isEmpty)
        }
    }

    @Test func settingsSayWhenTodoistIsNotConfiguredAndWhichModelAnswers() async throws {
        try await WebHarness.with(["WEB_PASSWORD": WebHarness.password]) { h in
            let login = try await h.login()
            let page = try await h.get("/settings", login)
            #expect(page.status == 200)
            #expect(
                page.body.contains(
                    #"<p id="todoist-status">Todoist not configured (set TODOIST_CLIENT_ID and TODOIST_CLIENT_SECRET"#))
            #expect(page.body.contains(#"id="todoist-connect""#))
            #expect(page.body.contains("offline assistant"))
            #expect(try await h.get("/settings/todoist/connect", login).header("Location") == "/settings")
        }
        try await WebHarness.with([
            "WEB_PASSWORD": WebHarness.password, "AI_BASE_URL": "http://127.0.0.1:9/v1", "AI_MODEL": "qwen-<7b>",
        ]) { h in
            let page = try await h.get("/settings", try await h.login())
            #expect(page.body.contains("<strong>qwen-&lt;7b&gt;</strong> at 127.0.0.1"))
        }
    }

    @Test func todoistConnectStoresTheTokenAndABadStateIsRefused() async throws {
        let fake = try await FakeTodoistOAuth.start()
        defer { fake.stop() }
        let environment = [
            "WEB_PASSWORD": WebHarness.password, "TODOIST_CLIENT_ID": "client-9", "TODOIST_CLIENT_SECRET": "s3cret",
            "TODOIST_OAUTH_AUTHORIZE_URL": "\(fake.base)/oauth/authorize",
            "TODOIST_OAUTH_TOKEN_URL": "\(fake.base)/oauth/access_token",
            "TODOIST_OAUTH_REDIRECT_URI": "http://127.0.0.1:1/oauth/todoist/callback",
        ]
        try await WebHarness.with(environment) { h in
            let login = try await h.login()
            let settings = try await h.get("/settings", login)
            #expect(settings.body.contains(#"<p id="todoist-status">Todoist not connected.</p>"#))
            #expect(
                settings.body.contains(
                    #"<a id="todoist-connect" class="button primary" href="/settings/todoist/connect">"#))

            let connect = try await h.get("/settings/todoist/connect", login)
            #expect(connect.status == 303)
            let location = try #require(connect.header("Location").flatMap(URLComponents.init(string:)))
            #expect(location.path == "/oauth/authorize")
            let query = Dictionary(uniqueKeysWithValues: (location.queryItems ?? []).map { ($0.name, $0.value ?? "") })
            #expect(query["client_id"] == "client-9")
            #expect(query["scope"] == "data:read_write")
            #expect(query["redirect_uri"] == "http://127.0.0.1:1/oauth/todoist/callback")
            let state = try #require(query["state"])

            // A state not made for this session is refused: no code exchange, no token.
            var forged = Array(state)
            forged[forged.count - 1] = forged.last == "A" ? "B" : "A"
            let bad = try await h.get("/oauth/todoist/callback?code=abc&state=\(String(forged))", login)
            #expect(bad.status == 400)
            let other = try await h.login()
            let otherSession = try await h.get("/oauth/todoist/callback?code=abc&state=\(state)", other)
            #expect(otherSession.status == 400)
            #expect(fake.exchanges.isEmpty)

            // Arriving from Todoist's site the Strict cookie is withheld: a same-site hop reloads the URL.
            let hop = try await h.get("/oauth/todoist/callback?code=abc&state=\(state)")
            #expect(hop.status == 200)
            #expect(hop.body.contains("hop=1"))
            #expect(try await h.get("/oauth/todoist/callback?code=abc&state=\(state)&hop=1").status == 303)
            #expect(fake.exchanges.isEmpty)

            let callback = try await h.get("/oauth/todoist/callback?code=abc&state=\(state)&hop=1", login)
            #expect(callback.status == 303)
            #expect(callback.header("Location") == "/settings?todoist=connected")
            let exchange = try #require(fake.exchanges.first)
            #expect(exchange["client_id"] == "client-9")
            #expect(exchange["client_secret"] == "s3cret")
            #expect(exchange["code"] == "abc")
            #expect(exchange["redirect_uri"] == "http://127.0.0.1:1/oauth/todoist/callback")
            let store = try SessionStore(backend: .log, engine: h.engine)
            #expect(try store.value("access_token", namespace: "todoist") == Data("tok-abc".utf8))
            // Written under the `todoist` lease, released after.
            let lease = try #require(try h.engine.lease("todoist"))
            #expect(!lease.held)
            let set = try h.log.events().compactMap { entry -> SessionEntrySet? in
                if case .sessionEntrySet(let e) = entry.event { return e }
                return nil
            }
            #expect(set.map(\.namespace) == ["todoist"])
            #expect(set.first?.leaseToken == lease.token)
            let connected = try await h.get("/settings?todoist=connected", login)
            #expect(connected.body.contains(#"<p id="todoist-status">Todoist connected.</p>"#))
            #expect(connected.body.contains("Todoist is connected."))

            // Disconnect removes it.
            let disconnect = try await h.request(
                "POST", "/settings/todoist/disconnect",
                headers: login.headers + [("Content-Type", "application/x-www-form-urlencoded")],
                body: "csrf=\(login.csrf)")
            #expect(disconnect.status == 303)
            #expect(try store.value("access_token", namespace: "todoist") == nil)
            #expect(try await h.get("/settings", login).body.contains("Todoist not connected."))
        }
    }
}

/// A fake Todoist OAuth server on 127.0.0.1: the authorize URL is only a redirect target; the token endpoint
/// takes the real form POST and answers the real JSON.
final class FakeTodoistOAuth: Sendable {
    private let recorded = Mutex<[[String: String]]>([])
    private let task: Mutex<Task<Void, any Error>?> = Mutex(nil)
    let port: Int

    var base: String { "http://127.0.0.1:\(port)" }
    var exchanges: [[String: String]] { recorded.withLock { $0 } }

    private init(port: Int) { self.port = port }

    func stop() { task.withLock { $0?.cancel() } }

    static func start() async throws -> FakeTodoistOAuth {
        let box = Mutex<FakeTodoistOAuth?>(nil)
        let router = Router()
        router.post("/oauth/access_token") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 16)
            var form: [String: String] = [:]
            for pair in String(buffer: body).split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? "" }
                form[parts[0]] = parts.count > 1 ? parts[1] : ""
            }
            box.withLock { $0 }?.recorded.withLock { $0.append(form) }
            let json = #"{"access_token":"tok-\#(form["code"] ?? "")","token_type":"Bearer"}"#
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: json)))
        }
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                continuation.yield(channel.localAddress?.port ?? 0)
                continuation.finish()
            }, logger: Logger(label: "fake-todoist", factory: { _ in SwiftLogNoOpLogHandler() }))
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var iterator = ports.makeAsyncIterator()
        let port = await iterator.next() ?? 0
        let fake = FakeTodoistOAuth(port: port)
        fake.task.withLock { $0 = task }
        box.withLock { $0 = fake }
        return fake
    }
}
