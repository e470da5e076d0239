import Foundation
import Hummingbird
import Logging
import NIOCore

/// Guards every state-changing request of the owner (any method but GET and HEAD): its `Origin`, when present,
/// must name this server (else 403), its body is read whole up to ``maxBody`` (else 413) and it must carry the
/// session's CSRF token — header `X-CSRF-Token` or form field `csrf` — (else 403).
///
/// Runs after ``RequireOwner``. The body it read stays in the request: a handler reads it again with
/// `request.collectBody(upTo: CSRFMiddleware.maxBody)` at no cost.
struct CSRFMiddleware: RouterMiddleware {
    typealias Context = WebRequestContext
    /// The largest request body read (bytes).
    static let maxBody = 256 * 1024

    let auth: WebAuth
    let sameOrigin: SameOrigin

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard request.method != .get, request.method != .head else { return try await next(request, context) }
        guard sameOrigin.allows(request) else { return sameOrigin.refuse(request) }
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: Self.maxBody)
        } catch {
            return WebResponse.json(
                .contentTooLarge, ["error": "the request body is larger than \(Self.maxBody) bytes"])
        }
        let token = request.headers[.csrfToken] ?? WebForm.fields(of: request, body: body)["csrf"]
        guard let session = context.session, auth.checkCSRF(token, for: session) else {
            return WebResponse.json(
                .forbidden, ["error": "missing or wrong CSRF token (X-CSRF-Token header or csrf field)"])
        }
        return try await next(request, context)
    }
}

/// Whether a request's `Origin` names this server: the `Host` it was asked for, or `WEB_PUBLIC_URL`.
struct SameOrigin: Sendable {
    let publicURL: String?
    let logger: Logger

    /// Whether the `Origin` header, when present, names this server.
    func allows(_ request: Request) -> Bool {
        // `null` (a privacy setting, a sandboxed frame) names no site: the CSRF token decides.
        guard let origin = request.headers[.origin], origin != "null" else { return true }
        if let publicURL, origin.lowercased() == publicURL.lowercased() { return true }
        guard let host = request.head.authority,
            let parsed = URL(string: origin), let originHost = parsed.host
        else { return false }
        let originAuthority = parsed.port.map { "\(originHost):\($0)" } ?? originHost
        return originAuthority.lowercased() == host.lowercased()
    }

    /// The 403 of a cross-origin request, logged.
    func refuse(_ request: Request) -> Response {
        logger.warning(
            "[web] Cross-origin request refused",
            metadata: [
                "http.origin": "\(request.headers[.origin] ?? "")", "http.host": "\(request.head.authority ?? "")",
                "http.path": "\(request.uri.path)",
            ])
        return WebResponse.json(.forbidden, ["error": "cross-origin request refused"])
    }
}
