import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The request context of the agent's HTTP server: Hummingbird's basic context plus the client's address (for
/// the login rate limit) and, on the web chat's routes, the owner's session.
public struct WebRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The peer's IP address, when the connection has one.
    public let peerAddress: String?
    /// The owner's session, when the request carries a valid session cookie. Set by ``WebSessionAuthenticator``
    /// on the web chat's routes; a route behind ``RequireOwner`` always has it.
    public internal(set) var session: WebSession?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        peerAddress = source.channel.remoteAddress?.ipAddress
    }

    /// Request bodies are read by the handlers with their own limits; decoding allows 1 MiB.
    public var maxUploadSize: Int { 1 << 20 }
}

extension WebRequestContext {
    /// The owner's session of a route behind ``RequireOwner``. Throws (401) only for a route registered outside
    /// the owner's groups, which is a bug.
    func ownerSession() throws -> WebSession {
        guard let session else { throw HTTPError(.unauthorized) }
        return session
    }

    /// The path parameter `name` (e.g. `conversationID` of `c/:conversationID`), percent-decoded.
    func decodedParameter(_ name: String) -> String? {
        parameters.get(name).flatMap { $0.removingPercentEncoding }
    }

    /// The client a login attempt is counted against: the peer address, or — when the peer is this host (a
    /// reverse proxy in front of the agent) — the last address the proxy appended to `X-Forwarded-For`.
    func clientKey(_ request: Request) -> String {
        let peer = peerAddress ?? "unknown"
        guard peer == "127.0.0.1" || peer == "::1" || peer.hasPrefix("::ffff:127."),
            let forwarded = request.headers[.xForwardedFor],
            let last = forwarded.split(separator: ",").last?.trimmingCharacters(in: .whitespaces), !last.isEmpty
        else { return peer }
        return last
    }
}

extension HTTPField.Name {
    static let csrfToken = Self("X-CSRF-Token")!
    static let lastEventID = Self("Last-Event-ID")!
    static let xForwardedFor = Self("X-Forwarded-For")!
    static let referrerPolicy = Self("Referrer-Policy")!
    static let xFrameOptions = Self("X-Frame-Options")!
    static let xAccelBuffering = Self("X-Accel-Buffering")!
}
