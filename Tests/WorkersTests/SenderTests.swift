import Foundation
import Testing
import Workers

/// The two real senders against the fake provider: the wire format, and how each way a call ends is classified.
@Suite("Channel senders")
struct SenderTests {
    let message = OutboundMessage(deliveryID: "d1", recipient: "4242", text: "hi there", replyToExternalID: "4242:7")

    @Test func telegramSendsPlainTextAndReturnsTheMessageID() async throws {
        let fake = try await FakeProvider.start()
        defer { fake.stop() }
        let sender = TelegramSender(baseURL: fake.telegramBaseURL, token: "1:abc", timeout: .seconds(5))
        #expect(await sender.send(message) == .sent(providerMessageID: "1"))
        #expect(fake.sends.map(\.recipient) == ["4242"])
        #expect(fake.sends.map(\.text) == ["hi there"])
        #expect(fake.sends.map(\.credential) == ["1:abc"])
    }

    @Test func telegramRefusalsAreClassified() async throws {
        let fake = try await FakeProvider.start()
        defer { fake.stop() }
        let sender = TelegramSender(baseURL: fake.telegramBaseURL, token: "1:abc", timeout: .seconds(5))
        fake.behave(
            .respond(
                status: 429,
                body:
                    #"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}}"#
            ))
        #expect(
            await sender.send(message)
                == .failed(
                    SendFailure(
                        permanent: false, retryAfter: .seconds(7), code: "429",
                        message: "Too Many Requests: retry after 7")))
        fake.behave(
            .respond(
                status: 403,
                body: #"{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by the user"}"#))
        guard case .failed(let blocked) = await sender.send(message) else {
            Issue.record("a 403 is a failure")
            return
        }
        #expect(blocked.permanent)
        fake.behave(.respond(status: 502, body: "bad gateway"))
        guard case .failed(let gateway) = await sender.send(message) else {
            Issue.record("a 502 is a failure")
            return
        }
        #expect(!gateway.permanent)
    }

    @Test func aTimeoutAfterTheRequestWasWrittenIsUncertain() async throws {
        let fake = try await FakeProvider.start()
        defer { fake.stop() }
        fake.behave(.hang)
        let sender = TelegramSender(baseURL: fake.telegramBaseURL, token: "1:secret", timeout: .milliseconds(300))
        guard case .uncertain(let reason) = await sender.send(message) else {
            Issue.record("a timeout after the write must be uncertain")
            return
        }
        #expect(!reason.contains("secret"))
        // Under load the deadline may pass before the request arrives; either way it is sent at most once.
        #expect(fake.sends.count <= 1)
    }

    @Test func noConnectionIsAFailureThatWasNotSent() async throws {
        // A port nobody listens on: bound (so no other test's server can take it meanwhile) but not listening,
        // so a connection is refused.
        let reserved = try ReservedPort()
        defer { reserved.release() }
        let port = reserved.port
        let sender = WhatsAppCloudSender(
            baseURL: "http://127.0.0.1:\(port)/v21.0", phoneNumberID: "1099", accessToken: "t", timeout: .seconds(2))
        let outcome = await sender.send(message)
        guard case .failed(let failure) = outcome else {
            Issue.record("no connection is a failure, got \(outcome)")
            return
        }
        #expect(!failure.permanent)
        #expect(failure.code == "connect")
    }

    @Test func whatsappSendsTheCloudAPIShapeAndClassifiesMetaCodes() async throws {
        let fake = try await FakeProvider.start()
        defer { fake.stop() }
        let sender = WhatsAppCloudSender(
            baseURL: fake.graphBaseURL, phoneNumberID: "1099", accessToken: "wa-token", timeout: .seconds(5))
        #expect(await sender.send(message) == .sent(providerMessageID: "wamid.fake1"))
        #expect(fake.sends.first?.credential == "wa-token")
        #expect(fake.sends.first?.text == "hi there")
        fake.behave(
            .respond(
                status: 400,
                body:
                    #"{"error":{"message":"(#131047) Re-engagement message","type":"OAuthException","code":131047,"fbtrace_id":"x"}}"#
            ))
        guard case .failed(let window) = await sender.send(message) else {
            Issue.record("131047 is a failure")
            return
        }
        #expect(window.permanent)
        #expect(window.code == "131047")
        fake.behave(
            .respond(
                status: 429,
                body: #"{"error":{"message":"(#130429) Rate limit hit","type":"OAuthException","code":130429}}"#))
        guard case .failed(let limited) = await sender.send(message) else {
            Issue.record("130429 is a failure")
            return
        }
        #expect(!limited.permanent)
    }
}

/// A loopback port bound without listening: connections to it are refused, and nothing else can bind it until
/// ``release()``.
struct ReservedPort {
    let descriptor: Int32
    let port: Int

    init() throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestTimeout(what: "a socket (errno \(errno))") }
        let fd = descriptor
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard bound == 0, named == 0 else {
            close(fd)
            throw TestTimeout(what: "a bound loopback port (errno \(errno))")
        }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    func release() { close(descriptor) }
}
