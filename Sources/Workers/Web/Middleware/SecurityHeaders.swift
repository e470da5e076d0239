import Hummingbird

/// Security headers on every web response: no sniffing, no referrer to other sites (OAuth codes stay out of it),
/// and on pages a content security policy allowing only this origin's script and style (model output can never
/// run), no framing.
struct SecurityHeaders<Context: RequestContext>: RouterMiddleware {
    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        var response = try await next(request, context)
        response.headers[.xContentTypeOptions] = "nosniff"
        // Same-origin only: no referrer leaves for another site (an OAuth code in a URL stays here), while this
        // site's own form POSTs keep their `Origin` (under `no-referrer` browsers send `Origin: null`).
        response.headers[.referrerPolicy] = "same-origin"
        if response.headers[.contentType]?.hasPrefix("text/html") ?? false {
            response.headers[.contentSecurityPolicy] =
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
                + "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
            response.headers[.xFrameOptions] = "DENY"
        }
        return response
    }
}
