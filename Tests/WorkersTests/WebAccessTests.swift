import Foundation
import Projections
import SwitchboardEvents
import TestSupport
import Testing
import Workers

/// The web chat's access control over real HTTP: the gate, the login, its rate limit, the cookie, CSRF.
@Suite("Web access", .timeLimit(.minutes(2)))
struct WebAccessTests {
    @Test func withoutASessionPagesRedirectToLoginAndAPIsAnswer401() async throws {
        try await WebHarness.with { h in
            for path in ["/", "/c/web-abc", "/status", "/settings", "/settings/todoist/connect"] {
                let answer = try await h.get(path)
                #expect(answer.status == 303, "\(path)")
                #expect(answer.header("Location")?.hasPrefix("/login") == true, "\(path)")
            }
            #expect(try await h.get("/c/web-abc").header("Location") == "/login?next=%2Fc%2Fweb-abc")
            for path in ["/api/status", "/api/conversations", "/api/conversations/web-abc/events", "/api/session"] {
                let answer = try await h.get(path)
                #expect(answer.status == 401, "\(path)")
                #expect(answer.header("Content-Type") == "application/json")
                #expect(answer.json["error"] as? String != nil)
            }
            for path in [
                "/api/conversations/web-abc/messages", "/api/approvals/call-1", "/api/conversations", "/logout",
            ] {
                let answer = try await h.postJSON(path, nil, #"{"clientID":"a","text":"hi"}"#)
                #expect([401, 303].contains(answer.status), "\(path)")
            }
            #expect(try h.log.events().allSatisfy { $0.record.type != "message.received" })
            // What is public: the login page, the assets, health and metrics.
            let login = try await h.get("/login")
            #expect(login.status == 200)
            #expect(login.body.contains(#"<input id="login-secret" name="secret" type="password""#))
            #expect(login.body.contains(#"<button id="login-submit""#))
            #expect(login.body.contains(#"id="login-error""#))
            #expect(login.header("Content-Security-Policy")?.contains("script-src 'self'") == true)
            #expect(login.header("Referrer-Policy") == "same-origin")
            let script = try await h.get(h.chat.assets.script.path)
            #expect(script.status == 200)
            #expect(script.header("Cache-Control") == "public, max-age=31536000, immutable")
            #expect(script.header("Content-Type")?.hasPrefix("text/javascript") == true)
            #expect(try await h.get(h.chat.assets.style.path).status == 200)
            #expect(try await h.get("/assets/chat.0000.js").status == 404)
            #expect(try await h.get("/healthz").status == 200)
            #expect(try await h.get("/metrics").status == 200)
        }
    }

    @Test func theLoginSetsAStrictHttpOnlyCookieAndLogoutEndsTheSession() async throws {
        try await WebHarness.with { h in
            let answer = try await h.loginAttempt(WebHarness.password)
            #expect(answer.status == 303)
            #expect(answer.header("Location") == "/")
            let cookie = try #require(answer.header("Set-Cookie"))
            #expect(cookie.hasPrefix("\(WebAuth.cookieName)="))
            #expect(cookie.contains("HttpOnly"))
            #expect(cookie.contains("SameSite=Strict"))
            #expect(cookie.contains("Path=/"))
            #expect(cookie.contains("Max-Age=604800"))
            #expect(!cookie.contains("Secure"))  // served over http
            let login = try await h.login()
            let page = try await h.get("/", login)
            #expect(page.status == 200)
            #expect(page.body.contains(#"<meta name="csrf-token" content="\#(login.csrf)">"#))

            // A tampered cookie is refused.
            var forged = login
            // The signature's last character changed (to "AA" regardless, one cookie in 4 096 stayed the same).
            forged.cookie = String(login.cookie.dropLast()) + (login.cookie.hasSuffix("A") ? "B" : "A")
            #expect(try await h.get("/", forged).status == 303)

            // Logout needs the CSRF token, then the cookie is cleared and refused.
            #expect(try await h.request("POST", "/logout", headers: login.headers).status == 403)
            let logout = try await h.request(
                "POST", "/logout", headers: login.headers + [("Content-Type", "application/x-www-form-urlencoded")],
                body: "csrf=\(login.csrf)")
            #expect(logout.status == 303)
            #expect(logout.header("Location") == "/login")
            #expect(logout.header("Set-Cookie")?.contains("Max-Age=0") == true)
            #expect(try await h.get("/", login).status == 303)
            #expect(try await h.get("/api/session", login).status == 401)
        }
    }

    @Test func aSessionExpires() async throws {
        try await WebHarness.with(["WEB_PASSWORD": WebHarness.password, "WEB_SESSION_HOURS": "1"]) { h in
            let login = try await h.login()
            #expect(try await h.get("/api/session", login).status == 200)
            h.clock.advance(3601)
            #expect(try await h.get("/api/session", login).status == 401)
        }
    }

    @Test func behindHTTPSTheCookieIsSecure() async throws {
        try await WebHarness.with(["WEB_PASSWORD": WebHarness.password, "WEB_PUBLIC_URL": "https://chat.example.org"]) {
            h in
            let answer = try await h.loginAttempt(WebHarness.password)
            #expect(answer.header("Set-Cookie")?.contains("; Secure") == true)
        }
    }

    @Test func aWrongSecretIs401AndRepeatedFailuresAre429() async throws {
        try await WebHarness.with { h in
            for attempt in 1...5 {
                let answer = try await h.loginAttempt("wrong secret \(attempt)")
                #expect(answer.status == 401)
                #expect(answer.header("Set-Cookie") == nil)
                #expect(answer.body.contains(#"<p id="login-error" role="alert">Wrong secret.</p>"#))
            }
            // The sixth try is refused before the secret is even checked: the right one too.
            let limited = try await h.loginAttempt(WebHarness.password)
            #expect(limited.status == 429)
            #expect(limited.header("Set-Cookie") == nil)
            let retryAfter = try #require(limited.header("Retry-After").flatMap(Int.init))
            #expect((1...60).contains(retryAfter))
            // Another client (a proxy's forwarded address from this host) is counted apart.
            let other = try await h.loginAttempt(WebHarness.password, headers: [("X-Forwarded-For", "198.51.100.7")])
            #expect(other.status == 303)
            // A minute later the window has passed.
            h.clock.advance(61)
            #expect(try await h.loginAttempt(WebHarness.password).status == 303)
            // JSON logins answer JSON.
            let json = try await h.request(
                "POST", "/login", headers: [("Content-Type", "application/json")], body: #"{"secret":"nope"}"#)
            #expect(json.status == 401)
            #expect(json.json["error"] as? String == "Wrong secret.")
        }
    }

    @Test func aPostWithoutTheCSRFTokenIs403AndACrossOriginPostIsRefused() async throws {
        try await WebHarness.with { h in
            let login = try await h.login()
            let body = #"{"clientID":"c-1","text":"hello"}"#
            let missing = try await h.postJSON("/api/conversations/web-1/messages", login, body, csrf: false)
            #expect(missing.status == 403)
            var wrong = login
            wrong.csrf = "not-the-token"
            #expect(try await h.postJSON("/api/conversations/web-1/messages", wrong, body).status == 403)
            // Another session's token does not fit this one.
            let other = try await h.login()
            var mixed = login
            mixed.csrf = other.csrf
            #expect(try await h.postJSON("/api/conversations/web-1/messages", mixed, body).status == 403)
            let crossSite = try await h.request(
                "POST", "/api/conversations/web-1/messages",
                headers: login.headers + [
                    ("Content-Type", "application/json"), ("X-CSRF-Token", login.csrf),
                    ("Origin", "https://evil.example"),
                ], body: body)
            #expect(crossSite.status == 403)
            #expect(try h.log.events().allSatisfy { $0.record.type != "message.received" })
            let sameSite = try await h.request(
                "POST", "/api/conversations/web-1/messages",
                headers: login.headers + [
                    ("Content-Type", "application/json"), ("X-CSRF-Token", login.csrf), ("Origin", h.base),
                ], body: body)
            #expect(sameSite.status == 202)
            // `Origin: null` names no site: the CSRF token decides.
            let nullOrigin = try await h.request(
                "POST", "/api/conversations/web-1/messages",
                headers: login.headers + [
                    ("Content-Type", "application/json"), ("X-CSRF-Token", login.csrf), ("Origin", "null"),
                ], body: #"{"clientID":"c-2","text":"hello again"}"#)
            #expect(nullOrigin.status == 202)
        }
    }

    @Test func aGeneratedOwnerTokenIsStoredOnceWithMode0600() async throws {
        let directory = TemporaryDirectory()
        let settings = try WebSettings(environment: [:], dataDirectory: directory.path, host: "127.0.0.1", port: 0)
        let first = try WebKeyFiles(settings: settings)
        guard case .tokenFile(let path, created: true) = first.source else {
            Issue.record("expected a new token file, got \(first.source)")
            return
        }
        #expect(path == directory.path + "/web/owner-token")
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let keyAttributes = try FileManager.default.attributesOfItem(atPath: directory.path + "/web/cookie-key")
        #expect((keyAttributes[.posixPermissions] as? Int) == 0o600)
        #expect(first.secret.count >= 40)
        let second = try WebKeyFiles(settings: settings)
        #expect(second.source == .tokenFile(path: path, created: false))
        #expect(second.secret == first.secret)
        // A password wins over the file.
        let withPassword = try WebSettings(
            environment: ["WEB_PASSWORD": "a long password"], dataDirectory: directory.path, host: "127.0.0.1", port: 0)
        #expect(try WebKeyFiles(settings: withPassword).source == .password)
        #expect(throws: SettingsError.self) {
            try WebSettings(environment: ["WEB_PASSWORD": "short"], dataDirectory: directory.path, host: "h", port: 1)
        }
    }
}
