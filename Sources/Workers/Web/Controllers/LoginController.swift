import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// Signing in and out: `GET|POST /login` (open to anyone), `POST /logout` (the owner, CSRF) and
/// `GET /api/session` (the owner). See docs/web.md, "Access control".
struct LoginController: Sendable {
    let auth: WebAuth
    let secretSource: WebKeyFiles.SecretSource
    let assets: WebAssets
    let gate: WebGate
    let logger: Logger

    func addRoutes(to group: RouterGroup<WebRequestContext>) {
        group.get("login", use: loginPage)
        group.post("login", use: login)
        gate.owner(.page, on: group).post("logout", use: logout)
        gate.owner(.api, on: group).get("api/session", use: session)
    }

    /// A local path to return to after login (never another site).
    static func safeNext(_ next: String?) -> String {
        guard let next, next.hasPrefix("/"), !next.hasPrefix("//"), !next.contains("\\"),
            !next.contains(where: { $0.isNewline })
        else { return "/" }
        return next
    }

    var loginHint: String {
        switch secretSource {
        case .password: return "Sign in with the password set in WEB_PASSWORD."
        case .tokenFile:
            return "Sign in with the owner token: it was printed when the agent first started and is stored in "
                + "web/owner-token under the agent's data directory."
        }
    }

    /// `GET /login`: the sign-in page, or straight to `next` with a session.
    @Sendable func loginPage(_ request: Request, context: WebRequestContext) async throws -> Response {
        let next = Self.safeNext(request.uri.queryParameters.get("next"))
        if context.session != nil { return WebResponse.redirect(next) }
        return WebResponse.html(.ok, WebPages.login(assets: assets, error: nil, next: next, hint: loginHint))
    }

    /// `POST /login`: the form (`secret`, `next`) or JSON `{"secret", "next"}`. The rate limit comes first (429
    /// even for the right secret), then the same-origin check, then the secret, compared in constant time.
    @Sendable func login(_ request: Request, context: WebRequestContext) async throws -> Response {
        let client = context.clientKey(request)
        let wantsJSON = request.headers[.contentType]?.lowercased().hasPrefix("application/json") ?? false
        func failure(_ status: HTTPResponse.Status, _ message: String, next: String, headers: HTTPFields = [:])
            -> Response
        {
            if wantsJSON {
                var response = WebResponse.json(status, ["error": message])
                response.headers.append(contentsOf: headers)
                return response
            }
            return WebResponse.html(
                status, WebPages.login(assets: assets, error: message, next: next, hint: loginHint), headers: headers)
        }
        if let wait = auth.limiter.retryAfter(client) {
            logger.warning("[web] Login refused: too many failures", metadata: ["web.client": "\(client)"])
            return failure(
                .tooManyRequests, "Too many failed attempts. Try again in \(wait) s.", next: "/",
                headers: [.retryAfter: "\(wait)"])
        }
        guard gate.sameOrigin.allows(request) else { return gate.sameOrigin.refuse(request) }
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: 16 * 1024)
        } catch {
            return failure(.contentTooLarge, "The request is too large.", next: "/")
        }
        let secret: String?
        let next: String
        if wantsJSON {
            struct LoginBody: Decodable {
                var secret: String
                var next: String?
            }
            let decoded = try? JSONDecoder().decode(LoginBody.self, from: Data(body.readableBytesView))
            secret = decoded?.secret
            next = Self.safeNext(decoded?.next)
        } else {
            let form = WebForm.parse(body)
            secret = form["secret"]
            next = Self.safeNext(form["next"])
        }
        guard let secret, auth.checkSecret(secret) else {
            auth.limiter.failed(client)
            logger.warning("[web] Login failed", metadata: ["web.client": "\(client)"])
            return failure(.unauthorized, "Wrong secret.", next: next)
        }
        auth.limiter.succeeded(client)
        let (_, cookie) = auth.newSession()
        logger.info("[web] Owner signed in", metadata: ["web.client": "\(client)"])
        let setCookie: HTTPFields = [.setCookie: auth.setCookie(cookie)]
        if wantsJSON {
            var response = WebResponse.json(.ok, ["next": next])
            response.headers.append(contentsOf: setCookie)
            return response
        }
        return WebResponse.redirect(next, headers: setCookie)
    }

    /// `POST /logout`: revokes the session and clears the cookie.
    @Sendable func logout(_ request: Request, context: WebRequestContext) throws -> Response {
        auth.revoke(try context.ownerSession())
        logger.info("[web] Owner signed out")
        return WebResponse.redirect("/login", headers: [.setCookie: auth.clearCookie])
    }

    /// `GET /api/session`: whether the cookie is a live session, its expiry and its CSRF token (readable by this
    /// origin's scripts only).
    struct SessionInfo: Encodable {
        var expires: Int64
        var csrf: String
    }

    @Sendable func session(_ request: Request, context: WebRequestContext) throws -> Response {
        let session = try context.ownerSession()
        return WebResponse.json(.ok, SessionInfo(expires: session.expires, csrf: session.csrf))
    }
}
