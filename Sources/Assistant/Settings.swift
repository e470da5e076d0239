import Foundation

/// An invalid assistant setting: which variable, what was wrong, what is accepted. Never holds a key's value.
public struct AssistantSettingsError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The environment variable at fault.
    public var variable: String
    /// What is wrong and what is accepted.
    public var message: String

    public init(variable: String, message: String) {
        self.variable = variable
        self.message = message
    }

    public var description: String { "\(variable): \(message)" }
}

/// A secret (an API key or token): its text is reachable through ``reveal()`` only, and every description of it is
/// redacted, so interpolating settings into a log line never leaks it.
public struct Secret: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    private let value: String

    public init(_ value: String) { self.value = value }

    /// The secret's text, for the one header that needs it.
    public func reveal() -> String { value }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
    /// `dump` and debuggers show no field either.
    public var customMirror: Mirror { Mirror(self, children: [:]) }
}

extension Duration {
    /// Whole milliseconds (rounded down).
    var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}

/// How to retry a retryable failure: exponential backoff with jitter (§5.5 of the original: 1 s doubling to at most
/// 30 s, plus up to 20 % jitter, 3 retries).
public struct RetryPolicy: Sendable, Hashable {
    /// Retries after the first attempt (so `maxRetries + 1` attempts per model).
    public var maxRetries: Int
    public var baseDelay: Duration
    public var maxDelay: Duration
    /// The largest share of the delay added at random (0.2 = up to +20 %).
    public var jitter: Double

    public init(
        maxRetries: Int = 3, baseDelay: Duration = .seconds(1), maxDelay: Duration = .seconds(30), jitter: Double = 0.2
    ) {
        self.maxRetries = maxRetries
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.jitter = jitter
    }

    /// The wait before retry number `retry` (0 for the first retry): `baseDelay · 2^retry`, capped at `maxDelay`,
    /// or the server's Retry-After when it asked for longer (capped too), plus `jitterFraction · jitter` of it.
    /// - Parameter jitterFraction: a number in 0...1 (random in production, fixed in tests).
    public func delay(retry: Int, retryAfter: Duration?, jitterFraction: Double) -> Duration {
        let exponential = baseDelay * (1 << min(max(retry, 0), 20))
        var wait = min(exponential, maxDelay)
        if let retryAfter, retryAfter > wait { wait = min(retryAfter, maxDelay) }
        // Whole milliseconds, so the same inputs give exactly the same wait.
        let extra = (Double(wait.wholeMilliseconds) * jitter * min(max(jitterFraction, 0), 1)).rounded()
        return wait + .milliseconds(Int64(extra))
    }
}

/// The model provider's settings, read from the environment.
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `AI_BASE_URL` | unset: the offline assistant | the OpenAI-compatible API root, with its `/v1` |
/// | `AI_API_KEY` (or `AI_GATEWAY_API_KEY`) | none | bearer key; local servers need none |
/// | `AI_MODEL` | required with `AI_BASE_URL` | the standard model |
/// | `AI_LITE_MODEL` | `AI_MODEL` | the lite model |
/// | `AI_FALLBACK_MODEL` | none | fallback models, comma-separated, tried in order |
/// | `AI_CONTEXT_WINDOW` | 200 000 | the prompt budget in (estimated) tokens |
/// | `AI_MAX_RETRIES` | 3 | retries per model on retryable failures |
/// | `AI_REQUEST_TIMEOUT_MS` | 60 000 | connect and wait for the response head |
/// | `AI_STREAM_IDLE_TIMEOUT_MS` | 60 000 | longest silence between two chunks of a stream |
/// | `AI_STREAM_USAGE` | `true` | ask for the usage chunk (`stream_options.include_usage`) |
public struct ProviderSettings: Sendable, Hashable, CustomStringConvertible {
    /// The API root, without a trailing slash (`http://127.0.0.1:8080/v1`).
    public var baseURL: String
    public var apiKey: Secret?
    public var model: String
    public var liteModel: String?
    public var fallbackModels: [String]
    public var contextWindow: Int
    public var retry: RetryPolicy
    public var requestTimeout: Duration
    public var streamIdleTimeout: Duration
    public var includeUsage: Bool

    public init(
        baseURL: String, apiKey: Secret? = nil, model: String, liteModel: String? = nil, fallbackModels: [String] = [],
        contextWindow: Int = 200_000, retry: RetryPolicy = RetryPolicy(), requestTimeout: Duration = .seconds(60),
        streamIdleTimeout: Duration = .seconds(60), includeUsage: Bool = true
    ) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.apiKey = apiKey
        self.model = model
        self.liteModel = liteModel
        self.fallbackModels = fallbackModels
        self.contextWindow = contextWindow
        self.retry = retry
        self.requestTimeout = requestTimeout
        self.streamIdleTimeout = streamIdleTimeout
        self.includeUsage = includeUsage
    }

    /// Reads the settings; `nil` when `AI_BASE_URL` is unset (no provider: the offline assistant answers).
    /// - Throws: ``AssistantSettingsError`` naming the first bad variable.
    public static func fromEnvironment(_ environment: [String: String]) throws(AssistantSettingsError)
        -> ProviderSettings?
    {
        func value(_ name: String) -> String? {
            guard let raw = environment[name]?.trimmingCharacters(in: .whitespaces), !raw.isEmpty else { return nil }
            return raw
        }
        func integer(_ name: String, default fallback: Int, range: ClosedRange<Int>) throws(AssistantSettingsError)
            -> Int
        {
            guard let raw = value(name) else { return fallback }
            guard let number = Int(raw), range.contains(number) else {
                throw AssistantSettingsError(
                    variable: name,
                    message: "expected a whole number in \(range.lowerBound)...\(range.upperBound), got '\(raw)'")
            }
            return number
        }
        guard let base = value("AI_BASE_URL") else {
            for name in ["AI_MODEL", "AI_LITE_MODEL", "AI_FALLBACK_MODEL"] where value(name) != nil {
                throw AssistantSettingsError(variable: "AI_BASE_URL", message: "required when \(name) is set")
            }
            return nil
        }
        guard let url = URL(string: base), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
            url.host != nil
        else {
            throw AssistantSettingsError(
                variable: "AI_BASE_URL",
                message: "expected an http(s) URL such as http://127.0.0.1:8080/v1, got '\(base)'")
        }
        guard let model = value("AI_MODEL") else {
            throw AssistantSettingsError(variable: "AI_MODEL", message: "required when AI_BASE_URL is set")
        }
        let key = value("AI_API_KEY") ?? value("AI_GATEWAY_API_KEY")
        let fallbacks = (value("AI_FALLBACK_MODEL") ?? "").split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let usageText = (value("AI_STREAM_USAGE") ?? "true").lowercased()
        guard ["true", "false", "1", "0"].contains(usageText) else {
            throw AssistantSettingsError(
                variable: "AI_STREAM_USAGE", message: "expected true or false, got '\(usageText)'")
        }
        return ProviderSettings(
            baseURL: base,
            apiKey: key.map(Secret.init),
            model: model,
            liteModel: value("AI_LITE_MODEL"),
            fallbackModels: fallbacks,
            contextWindow: try integer("AI_CONTEXT_WINDOW", default: 200_000, range: 1_024...10_000_000),
            retry: RetryPolicy(maxRetries: try integer("AI_MAX_RETRIES", default: 3, range: 0...10)),
            requestTimeout: .milliseconds(
                try integer("AI_REQUEST_TIMEOUT_MS", default: 60_000, range: 100...600_000)),
            streamIdleTimeout: .milliseconds(
                try integer("AI_STREAM_IDLE_TIMEOUT_MS", default: 60_000, range: 100...600_000)),
            includeUsage: usageText == "true" || usageText == "1"
        )
    }

    /// The models to try for `tier`, in order: the tier's model, then the standard model (for lite), then the
    /// fallbacks; each once.
    public func models(for tier: ModelTier) -> [String] {
        var order: [String] = []
        if tier == .lite, let liteModel { order.append(liteModel) }
        order.append(model)
        order.append(contentsOf: fallbackModels)
        var seen = Set<String>()
        return order.filter { seen.insert($0).inserted }
    }

    /// The settings with the key redacted.
    public var description: String {
        "ProviderSettings(baseURL: \(baseURL), apiKey: \(apiKey == nil ? "none" : "<redacted>"), model: \(model), "
            + "liteModel: \(liteModel ?? "none"), fallbackModels: \(fallbackModels), contextWindow: \(contextWindow))"
    }
}
