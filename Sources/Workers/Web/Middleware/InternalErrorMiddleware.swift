import Hummingbird
import Logging

/// Answers an unexpected error of a handler with 500 and no details (an ``HTTPError`` passes through), and logs
/// it: JSON for an API, a short HTML page for a page.
struct InternalErrorMiddleware: RouterMiddleware {
    typealias Context = WebRequestContext
    let kind: WebRouteKind
    let logger: Logger

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError {
            throw error
        } catch {
            logger.error("web.request.failed", metadata: ["error": "\(error)"])
            switch kind {
            case .api: return WebResponse.json(.internalServerError, ["error": "internal error; see the agent's log"])
            case .page:
                return WebResponse.html(
                    .internalServerError,
                    "<!doctype html><title>Error</title><p>Internal error; see the agent's log.</p>")
            }
        }
    }
}
