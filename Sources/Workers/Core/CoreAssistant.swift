import Assistant
import AsyncHTTPClient
import Foundation
import Logging
import Projections
import ServiceLifecycle

/// Where the core's Todoist token comes from, read at each job: `TODOIST_API_TOKEN` when set, otherwise the
/// session store's namespace `todoist`, key `access_token` (written by the web role's OAuth flow).
public struct TodoistAccess: Sendable {
    /// The session store namespace and key of the OAuth token.
    public static let namespace = "todoist"
    public static let tokenKey = "access_token"

    /// The API root (`TODOIST_API_BASE_URL` or `TODOIST_BASE_URL`).
    public var baseURL: String
    /// `TODOIST_API_TOKEN`, which overrides the stored token.
    public var environmentToken: Secret?
    /// The session store holding the OAuth token, if any.
    public var sessions: SessionStore?

    public init(
        baseURL: String = TodoistSettings.defaultBaseURL, environmentToken: Secret? = nil, sessions: SessionStore? = nil
    ) {
        self.baseURL = baseURL
        self.environmentToken = environmentToken
        self.sessions = sessions
    }

    /// The token now, or `nil` when Todoist is not connected.
    public func token(logger: Logger) -> Secret? {
        if let environmentToken { return environmentToken }
        guard let sessions else { return nil }
        do {
            guard let data = try sessions.value(Self.tokenKey, namespace: Self.namespace) else { return nil }
            let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            return text.isEmpty ? nil : Secret(text)
        } catch {
            logger.warning("todoist.token.unreadable", metadata: ["error": "\(error)"])
            return nil
        }
    }
}

/// What the core answers with: the model provider (or the offline assistant), the turn's limits, how long an
/// approval waits, and the Todoist access.
public struct CoreAssistant: Sendable {
    public var provider: any ChatProvider
    public var turn: TurnSettings
    /// How long a tool call waits for the user's approval (`APPROVAL_TTL_SECONDS`, default 300 s).
    public var approvalTTL: Duration
    public var todoist: TodoistAccess
    /// The client Todoist calls go through; `nil` turns the Todoist tools off.
    public var httpClient: HTTPClient?
    /// Which model answers, for the startup line.
    public var modelDescription: String
    /// How many unaddressed group lines a group reply sees (`GROUP_CONTEXT_MESSAGES`).
    public var groupContextMessages = GroupContext.defaultLimit

    public init(
        provider: any ChatProvider, turn: TurnSettings = TurnSettings(), approvalTTL: Duration = .seconds(300),
        todoist: TodoistAccess = TodoistAccess(), httpClient: HTTPClient? = nil, modelDescription: String? = nil
    ) {
        self.provider = provider
        self.turn = turn
        self.approvalTTL = approvalTTL
        self.todoist = todoist
        self.httpClient = httpClient
        self.modelDescription = modelDescription ?? provider.name
    }

    /// The offline assistant with no Todoist.
    public static func offline() -> CoreAssistant {
        CoreAssistant(provider: OfflineAssistant(), modelDescription: Self.offlineDescription)
    }

    static let offlineDescription = "offline assistant (set AI_BASE_URL to use a model)"

    /// The assistant the settings ask for, answering with `model`, calling out through `httpClient` (its owner
    /// shuts it down).
    public static func from(
        settings: AgentSettings, model: ModelChoice, httpClient: HTTPClient, sessions: SessionStore?, logger: Logger
    ) -> CoreAssistant {
        var assistant = CoreAssistant(
            provider: model.chatProvider(httpClient: httpClient, logger: logger), turn: model.turn,
            approvalTTL: settings.approvalTTL,
            todoist: TodoistAccess(
                baseURL: settings.todoistBaseURL, environmentToken: settings.todoistToken, sessions: sessions),
            httpClient: httpClient, modelDescription: model.description)
        assistant.groupContextMessages = settings.groupContextMessages
        return assistant
    }

    /// The tools for one job: the standard ones, and Todoist's when a token is there now.
    func tools(logger: Logger) -> ToolRegistry {
        guard let httpClient, let token = todoist.token(logger: logger) else { return .standard(todoist: nil) }
        let client = TodoistClient(
            settings: TodoistSettings(baseURL: todoist.baseURL, token: token), httpClient: httpClient, logger: logger)
        return .standard(todoist: client)
    }
}

/// Owns an `HTTPClient` for the process: shuts it down on graceful shutdown, after the services listed after it
/// (the core) have finished.
public struct HTTPClientService: Service {
    let client: HTTPClient

    public init(client: HTTPClient) { self.client = client }

    public func run() async throws {
        try? await gracefulShutdown()
        try await client.shutdown()
    }
}
