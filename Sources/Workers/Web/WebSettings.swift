import Foundation

/// The web chat's settings, read from the environment with the agent's other settings.
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `WEB_PASSWORD` | unset: a random owner token in `<DATA_DIR>/web/owner-token` | the owner's secret (8+ characters) |
/// | `WEB_PUBLIC_URL` | unset | the address people open; `https://…` makes the session cookie `Secure` |
/// | `WEB_SESSION_HOURS` | 168 | how long a login lasts |
/// | `WEB_LOGIN_FAILURES_PER_MINUTE` | 5 | failed logins a client may make in a minute before it gets 429 |
/// | `TODOIST_CLIENT_ID`, `TODOIST_CLIENT_SECRET` | unset | the Todoist app; without both, Todoist connect is off |
/// | `TODOIST_OAUTH_REDIRECT_URI` | `<WEB_PUBLIC_URL or http://HOST:PORT>/oauth/todoist/callback` | registered callback |
/// | `TODOIST_OAUTH_AUTHORIZE_URL` | `https://todoist.com/oauth/authorize` | where connect sends the browser |
/// | `TODOIST_OAUTH_TOKEN_URL` | `https://todoist.com/oauth/access_token` | where the code is exchanged |
/// | `TODOIST_OAUTH_SCOPE` | `data:read_write` | the scope asked for |
public struct WebSettings: Sendable, Equatable {
    /// The Todoist OAuth client, when configured.
    public struct TodoistOAuth: Sendable, Equatable {
        public var clientID: String
        /// Never logged or shown.
        public var clientSecret: String
        public var redirectURI: String
        public var authorizeURL: String
        public var tokenURL: String
        public var scope: String
    }

    /// What the settings page says about the model (read from the provider's variables, never a key).
    public struct ModelDisplay: Sendable, Equatable {
        /// `AI_MODEL`, or `nil` when no provider is configured (the offline assistant answers).
        public var model: String?
        /// The provider's host (from `AI_BASE_URL`).
        public var providerHost: String?
        public var liteModel: String?
        public var fallbackModels: [String]
        /// Which model answers, as the core of this process resolved it (`nil` in a process without the core:
        /// the variables above are then all it knows).
        public var answering: String?
    }

    /// `WEB_PASSWORD`; never logged.
    public var password: String?
    /// `WEB_PUBLIC_URL`, without a trailing slash.
    public var publicURL: String?
    /// Where the owner token and the cookie key live: `<DATA_DIR>/web`.
    public var directory: String
    /// `WEB_SESSION_HOURS`.
    public var sessionLifetime: Duration
    /// `WEB_LOGIN_FAILURES_PER_MINUTE`.
    public var loginFailuresPerMinute: Int
    /// The Todoist client, or `nil` with ``todoistMissing`` naming what is not set.
    public var todoist: TodoistOAuth?
    /// The variables Todoist connect still needs (empty when configured).
    public var todoistMissing: [String]
    /// The callback path (from `TODOIST_OAUTH_REDIRECT_URI`, default `/oauth/todoist/callback`).
    public var todoistCallbackPath: String
    /// Whether `TODOIST_API_TOKEN` is set (it overrides the connected account for the core).
    public var todoistTokenOverride: Bool
    public var model: ModelDisplay

    /// Whether cookies carry `Secure` (the public URL is https).
    public var secureCookies: Bool { publicURL?.lowercased().hasPrefix("https://") ?? false }

    /// Reads the web settings. `host` and `port` make the default redirect URI.
    public init(environment: [String: String], dataDirectory: String, host: String, port: Int) throws(SettingsError) {
        let env = EnvironmentReader(environment)
        // Not trimmed: a password may start or end with a space.
        if let password = environment["WEB_PASSWORD"], !password.isEmpty {
            // The message names the variable and the rule, never the value.
            guard password.count >= 8 else {
                throw SettingsError(variable: "WEB_PASSWORD", message: "must be at least 8 characters")
            }
            self.password = password
        } else {
            password = nil
        }
        publicURL = try env.value("WEB_PUBLIC_URL").map { raw throws(SettingsError) in
            try env.url("WEB_PUBLIC_URL", raw)
        }
        directory = dataDirectory + "/web"
        sessionLifetime = .seconds(3600 * (try env.integer("WEB_SESSION_HOURS", default: 168, range: 1...8760)))
        loginFailuresPerMinute = try env.integer("WEB_LOGIN_FAILURES_PER_MINUTE", default: 5, range: 1...1000)

        let base = publicURL ?? "http://\(host.contains(":") ? "[\(host)]" : host):\(port)"
        let redirect = try env.url(
            "TODOIST_OAUTH_REDIRECT_URI", env.value("TODOIST_OAUTH_REDIRECT_URI") ?? base + "/oauth/todoist/callback")
        let path = URL(string: redirect)?.path ?? ""
        todoistCallbackPath = path.isEmpty || path == "/" ? "/oauth/todoist/callback" : path
        let authorize = try env.url(
            "TODOIST_OAUTH_AUTHORIZE_URL",
            env.value("TODOIST_OAUTH_AUTHORIZE_URL") ?? "https://todoist.com/oauth/authorize"
        )
        let token = try env.url(
            "TODOIST_OAUTH_TOKEN_URL", env.value("TODOIST_OAUTH_TOKEN_URL") ?? "https://todoist.com/oauth/access_token")
        var missing: [String] = []
        if env.value("TODOIST_CLIENT_ID") == nil { missing.append("TODOIST_CLIENT_ID") }
        if env.value("TODOIST_CLIENT_SECRET") == nil { missing.append("TODOIST_CLIENT_SECRET") }
        todoistMissing = missing
        if let id = env.value("TODOIST_CLIENT_ID"), let secret = env.value("TODOIST_CLIENT_SECRET") {
            todoist = TodoistOAuth(
                clientID: id, clientSecret: secret, redirectURI: redirect, authorizeURL: authorize, tokenURL: token,
                scope: env.value("TODOIST_OAUTH_SCOPE") ?? "data:read_write")
        } else {
            todoist = nil
        }
        todoistTokenOverride = env.value("TODOIST_API_TOKEN") != nil

        model = ModelDisplay(
            model: env.value("AI_BASE_URL") == nil ? nil : env.value("AI_MODEL"),
            providerHost: env.value("AI_BASE_URL").flatMap { URL(string: $0)?.host },
            liteModel: env.value("AI_BASE_URL") == nil ? nil : env.value("AI_LITE_MODEL"),
            fallbackModels: (env.value("AI_FALLBACK_MODEL") ?? "").split(separator: ",")
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }, answering: nil)
    }

    /// Non-secret settings, for `worker.started`.
    public var summary: [String: String] {
        [
            "webAuth": password == nil ? "owner-token" : "WEB_PASSWORD",
            "webPublicURL": publicURL ?? "unset",
            "webSessionHours": "\(sessionLifetime.components.seconds / 3600)",
            "todoistOAuth": todoist == nil ? "off" : "on",
        ]
    }
}
