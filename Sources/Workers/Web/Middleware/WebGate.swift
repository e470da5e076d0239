import Hummingbird
import Logging

/// What a route answers when it refuses or fails: a page redirects to `/login` and shows an HTML error, an API
/// answers JSON.
enum WebRouteKind: Sendable {
    /// A page: without a session, a redirect to `/login?next=<path>`.
    case page
    /// An API: without a session, 401 JSON.
    case api
}

/// The groups the web controllers register their routes on. Every web route already runs behind
/// ``SecurityHeaders`` and ``WebSessionAuthenticator`` (``WebChat/addRoutes(to:)``); a route that needs the owner
/// goes in an ``owner(_:on:)`` group, which adds, in this order:
///
/// 1. ``RequireOwner``: without a session, a redirect to `/login` or 401 JSON;
/// 2. ``CSRFMiddleware``: a request that is not a GET or HEAD must be same-origin (else 403), its body at most
///    256 KiB (else 413) and carry the session's CSRF token (else 403);
/// 3. ``InternalErrorMiddleware``: an unexpected error is logged and answered 500 without its details.
///
/// So a handler in an owner group cannot forget the session check or, for a POST, the CSRF check.
struct WebGate: Sendable {
    let auth: WebAuth
    let sameOrigin: SameOrigin
    let logger: Logger

    /// A group for routes that need the owner's session (and, for state-changing methods, the CSRF token).
    func owner(_ kind: WebRouteKind, on group: RouterGroup<WebRequestContext>) -> RouterGroup<WebRequestContext> {
        group.group()
            .add(middleware: RequireOwner(kind: kind))
            .add(middleware: CSRFMiddleware(auth: auth, sameOrigin: sameOrigin))
            .add(middleware: InternalErrorMiddleware(kind: kind, logger: logger))
    }
}
