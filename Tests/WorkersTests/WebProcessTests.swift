import AsyncHTTPClient
import Foundation
import NIOCore
import TestSupport
import Testing

/// `AGENT_ROLE=web` as a real process: the owner token printed once and stored, a login over HTTP, the chat page.
@Suite("Web process", .serialized, .timeLimit(.minutes(2)))
struct WebProcessTests {
    /// The port from the `http.listening` line.
    static func port(_ agent: AgentProcess) async throws -> Int {
        let index = try await agent.waitFor("http.listening")
        let line = agent.lines[index]
        guard let range = line.range(of: "http.port="),
            let port = Int(line[range.upperBound...].prefix { $0.isNumber })
        else { throw TestTimeout(what: "a port in '\(line)'") }
        return port
    }

    @Test func theWebRolePrintsTheOwnerTokenOnceAndServesTheChatAfterLogin() async throws {
        let dir = TemporaryDirectory()
        let agent = try AgentProcess("web-1", data: dir.path, ["AGENT_ROLE": "web"])
        let tokenIndex = try await agent.waitFor("[web] Owner token (shown once")
        let line = agent.lines[tokenIndex]
        let token = try #require(line.split(separator: " ").last.map(String.init))
        let port = try await Self.port(agent)
        try await agent.waitFor("[main] Agent is running (role: web)")
        let stored = try String(contentsOfFile: dir.path + "/web/owner-token", encoding: .utf8)
        #expect(stored == token)
        let mode = try FileManager.default.attributesOfItem(atPath: dir.path + "/web/owner-token")[.posixPermissions]
        #expect(mode as? Int == 0o600)

        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let result = await outcome {
            let base = "http://127.0.0.1:\(port)"
            var unauthenticated = HTTPClientRequest(url: base + "/")
            unauthenticated.method = .GET
            #expect(try await client.execute(unauthenticated, timeout: .seconds(10)).status.code == 303)

            var login = HTTPClientRequest(url: base + "/login")
            login.method = .POST
            login.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            login.body = .bytes(ByteBuffer(string: "secret=\(token)"))
            let answer = try await client.execute(login, timeout: .seconds(10))
            #expect(answer.status.code == 303)
            let cookie = try #require(answer.headers["Set-Cookie"].first?.split(separator: ";").first.map(String.init))

            var page = HTTPClientRequest(url: base + "/")
            page.headers.add(name: "Cookie", value: cookie)
            let chat = try await client.execute(page, timeout: .seconds(10))
            #expect(chat.status.code == 200)
            let body = String(buffer: try await chat.body.collect(upTo: 1 << 20))
            #expect(body.contains(#"<textarea id="composer""#))
        }
        try? await client.shutdown()
        #expect(await agent.stop() == 0)
        try result.get()
        // Secrets stay out of the log lines, but for the one line that shows the new token.
        #expect(agent.lines.filter { $0.contains(token) }.count == 1)

        // A later start says where the token is and does not print it.
        let again = try AgentProcess("web-2", data: dir.path, ["AGENT_ROLE": "web"])
        try await again.waitFor("[web] Web chat at")
        // Listening: the service group runs, so SIGTERM is a graceful stop.
        try await again.waitFor("http.listening")
        let status = await again.stop()
        #expect(status == 0, "\(again.lines.suffix(15))")
        #expect(
            again.lines.contains { $0.contains("sign in with the owner token stored in \(dir.path)/web/owner-token") })
        #expect(!again.lines.contains { $0.contains(token) })
    }
}

/// The result of an async body, so cleanup can run before a failure is rethrown.
func outcome(_ body: () async throws -> Void) async -> Result<Void, any Error> {
    do {
        try await body()
        return .success(())
    } catch {
        return .failure(error)
    }
}
