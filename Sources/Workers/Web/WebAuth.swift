import Crypto
import Foundation
import Projections
import Synchronization

/// A logged-in owner session, from a verified cookie.
public struct WebSession: Sendable, Equatable {
    /// A random id made at login.
    public var id: String
    /// Unix seconds after which the cookie is refused.
    public var expires: Int64
    /// The CSRF token bound to this session (every POST carries it).
    public var csrf: String
}

/// The web chat's single-owner access control: the secret check, signed session cookies, CSRF tokens and
/// OAuth states bound to a session, the login rate limit and logout.
///
/// Cookies are stateless (`<id>.<expires>.<HMAC-SHA256>`), signed with a key derived from the cookie key and a
/// digest of the owner's secret: changing `WEB_PASSWORD` (or deleting the token or key file) ends every session.
/// Logout revokes the session id in this process until it would have expired.
public final class WebAuth: Sendable {
    /// The session cookie's name.
    public static let cookieName = "sb_session"

    private let secretDigest: [UInt8]
    private let key: SymmetricKey
    let lifetime: Duration
    let secure: Bool
    let limiter: LoginLimiter
    private let revoked = Mutex<[String: Int64]>([:])
    private let clock: @Sendable () -> Date

    /// - Parameter clock: the wall clock (tests move it).
    public init(
        secret: String, cookieKey: SymmetricKey, lifetime: Duration, secure: Bool, failuresPerMinute: Int,
        clock: @escaping @Sendable () -> Date = { Date() }
    ) {
        secretDigest = Array(SHA256.hash(data: Array(secret.utf8)))
        let derived = HMAC<SHA256>.authenticationCode(
            for: Array("switchboard-web-session|".utf8) + secretDigest, using: cookieKey)
        key = SymmetricKey(data: Array(derived))
        self.lifetime = lifetime
        self.secure = secure
        limiter = LoginLimiter(limit: failuresPerMinute, window: 60, clock: clock)
        self.clock = clock
    }

    var now: Int64 { Int64(clock().timeIntervalSince1970) }

    /// Whether `candidate` is the owner's secret, compared in constant time (as digests, so the length leaks
    /// nothing either).
    public func checkSecret(_ candidate: String) -> Bool {
        constantTimeEqual(Array(SHA256.hash(data: Array(candidate.utf8))), secretDigest)
    }

    private func mac(_ text: String) -> String {
        WebKeyFiles.base64URL(HMAC<SHA256>.authenticationCode(for: Array(text.utf8), using: key))
    }

    /// A new session and the cookie value that carries it.
    public func newSession() -> (session: WebSession, cookie: String) {
        let id = WebKeyFiles.base64URL(WebKeyFiles.random(18))
        let expires = now + lifetime.components.seconds
        let payload = "\(id).\(expires)"
        return (session(id: id, expires: expires), "\(payload).\(mac("session|" + payload))")
    }

    private func session(id: String, expires: Int64) -> WebSession {
        WebSession(id: id, expires: expires, csrf: mac("csrf|" + id))
    }

    /// The session a cookie value carries, when its signature is right, it has not expired and was not revoked.
    public func session(cookie value: String) -> WebSession? {
        let parts = value.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let expires = Int64(parts[1]) else { return nil }
        let payload = "\(parts[0]).\(parts[1])"
        guard constantTimeEqual(Array(mac("session|" + payload).utf8), Array(parts[2].utf8)) else { return nil }
        guard expires > now else { return nil }
        let id = String(parts[0])
        guard revoked.withLock({ $0[id] == nil }) else { return nil }
        return session(id: id, expires: expires)
    }

    /// Whether `token` is the CSRF token of `session` (constant time).
    public func checkCSRF(_ token: String?, for session: WebSession) -> Bool {
        guard let token else { return false }
        return constantTimeEqual(Array(token.utf8), Array(session.csrf.utf8))
    }

    /// Ends `session` in this process (its cookie is refused from now on).
    public func revoke(_ session: WebSession) {
        let now = now
        revoked.withLock { revoked in
            revoked = revoked.filter { $0.value > now }
            revoked[session.id] = session.expires
        }
    }

    /// The `Set-Cookie` value that stores `cookie` (HttpOnly, SameSite=Strict, Secure behind https, expiring
    /// with the session).
    public func setCookie(_ cookie: String) -> String {
        let seconds = lifetime.components.seconds
        return "\(Self.cookieName)=\(cookie); Path=/; Max-Age=\(seconds); HttpOnly; SameSite=Strict"
            + (secure ? "; Secure" : "")
    }

    /// The `Set-Cookie` value that removes the cookie.
    public var clearCookie: String {
        "\(Self.cookieName)=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict" + (secure ? "; Secure" : "")
    }

    /// An OAuth `state` bound to `session`: `<nonce>.<expires>.<mac>`, valid for 10 minutes.
    public func oauthState(for session: WebSession, purpose: String) -> String {
        let nonce = WebKeyFiles.base64URL(WebKeyFiles.random(12))
        let expires = now + 600
        return "\(nonce).\(expires).\(mac("oauth|\(purpose)|\(session.id)|\(nonce)|\(expires)"))"
    }

    /// Whether `state` was made by ``oauthState(for:purpose:)`` for this session and has not expired; the
    /// signature is compared in constant time.
    public func checkOAuthState(_ state: String, for session: WebSession, purpose: String) -> Bool {
        let parts = state.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let expires = Int64(parts[1]) else { return false }
        let expected = mac("oauth|\(purpose)|\(session.id)|\(parts[0])|\(expires)")
        guard constantTimeEqual(Array(expected.utf8), Array(parts[2].utf8)) else { return false }
        return expires > now
    }
}

/// Failed logins per client in a sliding window: past `limit` failures in `window` seconds the client is
/// refused (429) until the oldest failure leaves the window.
public final class LoginLimiter: Sendable {
    let limit: Int
    let window: Double
    private let clock: @Sendable () -> Date
    private let failures = Mutex<[String: [Double]]>([:])

    init(limit: Int, window: Double, clock: @escaping @Sendable () -> Date) {
        self.limit = limit
        self.window = window
        self.clock = clock
    }

    /// Seconds the client must wait before it may try again, or `nil` when it may try now.
    public func retryAfter(_ client: String) -> Int? {
        let now = clock().timeIntervalSince1970
        return failures.withLock { failures -> Int? in
            let recent = (failures[client] ?? []).filter { $0 > now - window }
            failures[client] = recent.isEmpty ? nil : recent
            guard recent.count >= limit, let oldest = recent.first else { return nil }
            return max(1, Int((oldest + window - now).rounded(.up)))
        }
    }

    /// Records a failed login of `client`.
    public func failed(_ client: String) {
        let now = clock().timeIntervalSince1970
        failures.withLock { failures in
            // Bounded: past 10 000 clients, those without a recent failure are forgotten first.
            if failures.count > 10_000 { failures = failures.filter { $0.value.contains { $0 > now - window } } }
            failures[client, default: []].append(now)
        }
    }

    /// Forgets `client`'s failures (after a successful login).
    public func succeeded(_ client: String) {
        _ = failures.withLock { $0.removeValue(forKey: client) }
    }
}
