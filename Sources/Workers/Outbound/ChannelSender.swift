import AsyncHTTPClient
import Foundation
import NIOCore
import NIOPosix
import Projections

/// One outbound message, as a sender sees it.
public struct OutboundMessage: Sendable, Equatable {
    public var deliveryID: String
    /// The recipient: a Telegram chat id, a WhatsApp phone number (wa id).
    public var recipient: String
    public var text: String
    /// The provider id of the message this one answers, when known.
    public var replyToExternalID: String?
    /// The delivery's kind: `assistant_message`, `tool_approval_request`, `pairing_code` are texts;
    /// `typing_indicator` is shown as the channel's typing action, never as a message.
    public var kind: String

    public init(
        deliveryID: String, recipient: String, text: String, replyToExternalID: String? = nil,
        kind: String = "assistant_message"
    ) {
        self.deliveryID = deliveryID
        self.recipient = recipient
        self.text = text
        self.replyToExternalID = replyToExternalID
        self.kind = kind
    }
}

/// A failure that should stop more than the one delivery.
public enum SendPause: Sendable, Equatable {
    /// The whole channel account must not send for this long (WhatsApp 130429: the number's throughput).
    case account(Duration)
    /// The credentials were refused (Telegram 401, WhatsApp 190/401): stop sending for the account and raise an
    /// alert (`channel.disconnected` with reason `auth_failed`) until a probe send succeeds.
    case credentials
}

/// A provider refusal, or a failure known to have happened before the request was sent.
public struct SendFailure: Sendable, Equatable {
    /// Retrying cannot help (bad recipient, bad token, closed window).
    public var permanent: Bool
    /// The provider's own wait, when it gave one (Telegram `retry_after`).
    public var retryAfter: Duration?
    /// A short code: the provider's error code or `http_<status>`, `connect`.
    public var code: String
    /// What the provider said (never a secret).
    public var message: String
    /// Whether the failure stops the account's other sends too.
    public var pause: SendPause?

    public init(permanent: Bool, retryAfter: Duration? = nil, code: String, message: String, pause: SendPause? = nil) {
        self.permanent = permanent
        self.retryAfter = retryAfter
        self.code = code
        self.message = message
        self.pause = pause
    }
}

/// The outcome of one provider call.
public enum SendOutcome: Sendable, Equatable {
    /// The provider accepted the message.
    case sent(providerMessageID: String?)
    /// It was refused, or could not be sent.
    case failed(SendFailure)
    /// The request may have reached the provider (a timeout or a dropped connection after it was written):
    /// never resent silently.
    case uncertain(reason: String)
}

/// A channel's provider API.
public protocol ChannelSender: Sendable {
    /// The channel, e.g. `telegram`.
    var channel: String { get }
    /// Sends one message. Does not throw: every way a call can end is a ``SendOutcome``.
    func send(_ message: OutboundMessage) async -> SendOutcome
    /// Send-rate limits of this sender's transport, when they differ from the channel's (``Channel/rateLimits``).
    var rateLimits: RateLimits? { get }
}

extension ChannelSender {
    public var rateLimits: RateLimits? { nil }
}

/// A POST to a provider over AsyncHTTPClient, with the outcome classified by whether the request can have
/// been written.
struct ProviderCall: Sendable {
    enum Result: Sendable {
        case response(status: Int, body: [UInt8])
        /// Failed before any byte of the request could reach the provider (no connection).
        case notSent(String)
        /// Failed after the request may have been written.
        case unknown(String)
    }

    let client: HTTPClient
    let timeout: Duration

    func post(_ url: String, headers: [(String, String)], json: [UInt8]) async -> Result {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Accept", value: "application/json")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: json))
        do {
            let response = try await client.execute(
                request,
                timeout: .nanoseconds(
                    timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000))
            let body = try await response.body.collect(upTo: 1 << 20)
            return .response(status: Int(response.status.code), body: Array(buffer: body))
        } catch {
            return Self.beforeWrite(error) ? .notSent(Self.describe(error)) : .unknown(Self.describe(error))
        }
    }

    /// Only errors that prove no connection was made count as "not sent"; anything else may have reached the
    /// provider.
    static func beforeWrite(_ error: any Error) -> Bool {
        if let error = error as? HTTPClientError {
            return error == .connectTimeout || error == .invalidURL || error == .emptyHost || error == .emptyScheme
        }
        if error is NIOConnectionError { return true }
        if let error = error as? ChannelError, case .connectTimeout = error { return true }
        if let error = error as? IOError {
            return [ECONNREFUSED, ENETUNREACH, EHOSTUNREACH, EADDRNOTAVAIL].contains(error.errnoCode)
        }
        return false
    }

    static func describe(_ error: any Error) -> String { String(describing: error).prefix(300).description }
}
