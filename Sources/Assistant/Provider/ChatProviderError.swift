/// A chat provider failed: what kind of failure (``Code``), whether trying again may help, and what the server said.
public struct ChatProviderError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of failure (the classification of §5.5 of the original, with the stream's own failures).
    public enum Code: String, Sendable, Hashable, Codable {
        /// HTTP 429 or a rate-limit/quota message; `retryAfter` says how long the server asked to wait.
        case rateLimited = "rate_limited"
        /// HTTP 401/403 or an invalid key.
        case auth
        /// HTTP 402 or insufficient credits.
        case billing
        /// HTTP 400/404/422 or another rejection of the request itself.
        case badRequest = "bad_request"
        /// The prompt does not fit the model's context window.
        case contextTooLong = "context_too_long"
        /// The provider's content filter refused.
        case contentFilter = "content_filter"
        /// HTTP 5xx or an overloaded/unavailable server.
        case server
        /// No answer in time (connect, first byte, or between two chunks of the stream).
        case timeout
        /// The connection failed or broke.
        case network
        /// The stream did not follow the wire format (a chunk that is not JSON, or the wrong shape).
        case malformedStream = "malformed_stream"
        /// Anything else.
        case unknown
    }

    public var code: Code
    /// A human message: what happened, with the server's own words when it sent some. Never holds a key.
    public var message: String
    /// The HTTP status, when the failure came with one.
    public var status: Int?
    /// How long the server asked to wait (Retry-After), for `rateLimited` and `server`.
    public var retryAfter: Duration?
    /// The model the failing request was for.
    public var model: String?

    public init(_ code: Code, _ message: String, status: Int? = nil, retryAfter: Duration? = nil, model: String? = nil)
    {
        self.code = code
        self.message = message
        self.status = status
        self.retryAfter = retryAfter
        self.model = model
    }

    /// Whether trying the same request again may succeed: rate limits, timeouts, server errors and network
    /// failures are retryable; everything else fails the same way again.
    public var retryable: Bool { code.retryable }

    public var description: String {
        var text = "\(code.rawValue): \(message)"
        if let status { text += " (HTTP \(status))" }
        if let model { text += " [model \(model)]" }
        if let retryAfter { text += " retry after \(retryAfter)" }
        return text
    }
}

extension ChatProviderError.Code {
    /// Whether a failure of this kind may pass when the request is tried again.
    public var retryable: Bool {
        switch self {
        case .rateLimited, .server, .timeout, .network: true
        case .auth, .billing, .badRequest, .contextTooLong, .contentFilter, .malformedStream, .unknown: false
        }
    }
}

/// Classifies a provider failure by HTTP status, the error's `code`/`type` and its message (§5.5 of the original:
/// statuses first, then keywords, first match wins).
public enum ProviderErrorClassifier {
    /// The code for a failure with this status and these words.
    public static func classify(status: Int?, errorCode: String? = nil, message: String) -> ChatProviderError.Code {
        let words = ([errorCode ?? "", message].joined(separator: " ")).lowercased()
        // The context window is reported with 400 by every server; the words tell it apart from other 400s.
        if contains(words, contextTooLongWords) { return .contextTooLong }
        if let status {
            switch status {
            case 429: return .rateLimited
            case 401, 403: return .auth
            case 402: return .billing
            case 408: return .timeout
            case 400, 404, 405, 409, 413, 415, 422: return .badRequest
            case 500...599: return .server
            default: break
            }
        }
        if contains(words, rateLimitWords) { return .rateLimited }
        if contains(words, timeoutWords) { return .timeout }
        if contains(words, authWords) { return .auth }
        if contains(words, billingWords) { return .billing }
        if contains(words, serverWords) { return .server }
        if contains(words, networkWords) { return .network }
        if contains(words, contentFilterWords) { return .contentFilter }
        if contains(words, badRequestWords) { return .badRequest }
        return .unknown
    }

    private static func contains(_ text: String, _ words: [String]) -> Bool {
        words.contains { text.contains($0) }
    }

    private static let contextTooLongWords = [
        "context_length_exceeded", "context length", "maximum context", "too many tokens", "context window",
        "exceeds the available context", "exceed_context_size",
    ]
    private static let rateLimitWords = [
        "rate limit", "rate_limit", "too many requests", "resource_exhausted", "quota exceeded",
    ]
    private static let timeoutWords = ["timeout", "timed out", "deadline exceeded", "etimedout"]
    private static let authWords = ["invalid api key", "invalid_api_key", "unauthorized", "forbidden"]
    private static let billingWords = ["payment required", "insufficient credits", "insufficient_quota"]
    private static let serverWords = [
        "internal server error", "bad gateway", "service unavailable", "gateway timeout", "overloaded",
        "server_error",
    ]
    private static let networkWords = [
        "enotfound", "econnrefused", "econnreset", "epipe", "eai_again", "fetch failed", "network error",
        "connection reset", "connection refused",
    ]
    private static let contentFilterWords = [
        "content filtering", "content policy", "safety system", "blocked by safety", "content_filter",
    ]
    private static let badRequestWords = ["invalid request", "invalid_request", "bad request"]
}
