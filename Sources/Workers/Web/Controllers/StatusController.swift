import Hummingbird
import Projections

/// The operator's view (the owner's): `GET /status` (the page) and `GET /api/status` (the same as JSON) — lease
/// holders, queue depths, dead jobs, uncertain deliveries, alerts and the local model's health (``WebStatus``).
struct StatusController: Sendable {
    let engine: Switchboard
    /// The local model server's health, when this process supervises one.
    let modelHealth: ModelHealth?
    let assets: WebAssets
    let gate: WebGate

    func addRoutes(to group: RouterGroup<WebRequestContext>) {
        gate.owner(.page, on: group).get("status", use: page)
        gate.owner(.api, on: group).get("api/status", use: json)
    }

    @Sendable func page(_ request: Request, context: WebRequestContext) async throws -> Response {
        let session = try context.ownerSession()
        let status = try await WebStatus.read(engine: engine, model: modelHealth)
        return WebResponse.html(.ok, WebPages.status(status, assets: assets, csrf: session.csrf))
    }

    @Sendable func json(_ request: Request, context: WebRequestContext) async throws -> Response {
        WebResponse.json(.ok, try await WebStatus.read(engine: engine, model: modelHealth))
    }
}
