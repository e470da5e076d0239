import Hummingbird

/// Reads the session cookie: a valid, unexpired, unrevoked session is put into the context
/// (``WebRequestContext/session``). Refuses nothing; ``RequireOwner`` does.
struct WebSessionAuthenticator: RouterMiddleware {
    typealias Context = WebRequestContext
    let auth: WebAuth

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        var context = context
        context.session = request.cookies[WebAuth.cookieName].flatMap { auth.session(cookie: $0.value) }
        return try await next(request, context)
    }
}

/// Lets only the owner through: without a session (see ``WebSessionAuthenticator``) a page redirects to
/// `/login?next=<path>` and an API answers 401 JSON.
struct RequireOwner: RouterMiddleware {
    typealias Context = WebRequestContext
    let kind: WebRouteKind

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard context.session == nil else { return try await next(request, context) }
        switch kind {
        case .api:
            return WebResponse.json(.unauthorized, ["error": "sign in first (POST /login)"])
        case .page:
            let next = request.uri.path == "/" ? "" : "?next=\(HTML.queryValue(request.uri.path))"
            return WebResponse.redirect("/login\(next)")
        }
    }
}
