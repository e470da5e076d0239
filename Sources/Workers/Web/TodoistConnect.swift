import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import Projections

/// Todoist's OAuth flow for the owner: the authorize URL, the code exchange (form POST to the token URL), and
/// the token kept in the session store — namespace `todoist`, key `access_token` — written under the lease
/// `todoist` (acquire, write, release), where the core reads it at each job.
struct TodoistConnect: Sendable {
    static let namespace = "todoist"
    static let key = "access_token"
    static let lease = "todoist"
    static let statePurpose = "todoist"

    let oauth: WebSettings.TodoistOAuth?
    let store: SessionStore
    let engine: Switchboard
    let client: HTTPClient
    let timeout: TimeAmount
    let logger: Logger

    /// Where `#todoist-connect` sends the browser.
    func authorizeURL(oauth: WebSettings.TodoistOAuth, state: String) -> String {
        let query = [
            ("client_id", oauth.clientID), ("scope", oauth.scope), ("state", state),
            ("redirect_uri", oauth.redirectURI),
        ].map { "\($0.0)=\(HTML.queryValue($0.1))" }.joined(separator: "&")
        return oauth.authorizeURL + (oauth.authorizeURL.contains("?") ? "&" : "?") + query
    }

    struct TokenAnswer: Decodable {
        var access_token: String?
        var token_type: String?
        var error: String?
    }

    /// Exchanges `code` for an access token. The client secret and the token never reach a log line.
    func exchange(oauth: WebSettings.TodoistOAuth, code: String) async throws -> String {
        var request = HTTPClientRequest(url: oauth.tokenURL)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "Accept", value: "application/json")
        let form = [
            ("client_id", oauth.clientID), ("client_secret", oauth.clientSecret), ("code", code),
            ("redirect_uri", oauth.redirectURI),
        ].map { "\($0.0)=\(HTML.queryValue($0.1))" }.joined(separator: "&")
        request.body = .bytes(ByteBuffer(string: form))
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: timeout)
        } catch {
            throw WebError(.oauth, "Todoist could not be reached (\(type(of: error)))")
        }
        let body = try await response.body.collect(upTo: 1 << 20)
        guard (200..<300).contains(Int(response.status.code)) else {
            throw WebError(.oauth, "Todoist refused the code (HTTP \(response.status.code))")
        }
        guard let answer = try? JSONDecoder().decode(TokenAnswer.self, from: Data(body.readableBytesView)),
            let token = answer.access_token, !token.isEmpty
        else {
            throw WebError(.oauth, "Todoist's answer has no access_token")
        }
        return token
    }

    /// Writes (or with `nil` removes) the token under the `todoist` lease.
    func save(_ token: String?) async throws {
        guard let grant = try await engine.acquireLease(Self.lease).grant else {
            throw WebError(.oauth, "the todoist session is being written by another process; try again")
        }
        let result: SessionWriteResult
        do {
            result = try await store.write(
                [Self.key: token.map { Data($0.utf8) }], namespace: Self.namespace, leaseToken: grant.token)
        } catch {
            _ = try? await engine.releaseLease(Self.lease, token: grant.token)
            throw error
        }
        _ = try await engine.releaseLease(Self.lease, token: grant.token)
        guard case .accepted = result else {
            throw WebError(.oauth, "the todoist session write was refused (the lease lapsed); try again")
        }
        logger.info(token == nil ? "[web] Todoist disconnected" : "[web] Todoist connected")
    }

    /// Whether a token is stored.
    func isConnected() throws -> Bool {
        try store.value(Self.key, namespace: Self.namespace) != nil
    }
}
