import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import SwitchboardJSON

/// Where Todoist is and the token to call it with.
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `TODOIST_API_TOKEN` | unset: the Todoist tools are off | a personal token (OAuth per user comes with the wiring) |
/// | `TODOIST_API_BASE_URL` | `https://api.todoist.com/api/v1` | the API v1 root |
public struct TodoistSettings: Sendable, Hashable, CustomStringConvertible {
    public static let defaultBaseURL = "https://api.todoist.com/api/v1"

    public var baseURL: String
    public var token: Secret

    public init(baseURL: String = TodoistSettings.defaultBaseURL, token: Secret) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.token = token
    }

    /// Reads the settings; `nil` when `TODOIST_API_TOKEN` is unset.
    /// - Throws: ``AssistantSettingsError`` naming the bad variable.
    public static func fromEnvironment(_ environment: [String: String]) throws(AssistantSettingsError)
        -> TodoistSettings?
    {
        let base = environment["TODOIST_API_BASE_URL"]?.trimmingCharacters(in: .whitespaces) ?? ""
        if !base.isEmpty {
            guard let url = URL(string: base), let scheme = url.scheme?.lowercased(),
                scheme == "http" || scheme == "https", url.host != nil
            else {
                throw AssistantSettingsError(
                    variable: "TODOIST_API_BASE_URL", message: "expected an http(s) URL, got '\(base)'")
            }
        }
        guard let token = environment["TODOIST_API_TOKEN"]?.trimmingCharacters(in: .whitespaces), !token.isEmpty else {
            return nil
        }
        return TodoistSettings(baseURL: base.isEmpty ? defaultBaseURL : base, token: Secret(token))
    }

    public var description: String { "TodoistSettings(baseURL: \(baseURL), token: <redacted>)" }
}

/// A Todoist task (API v1), the fields the assistant shows.
public struct TodoistTask: Sendable, Hashable, Codable {
    public struct Due: Sendable, Hashable, Codable {
        public var date: String?
        public var string: String?

        public init(date: String? = nil, string: String? = nil) {
            self.date = date
            self.string = string
        }
    }

    public var id: String
    public var content: String
    public var description: String?
    public var priority: Int?
    public var checked: Bool?
    public var due: Due?

    public init(id: String, content: String, description: String? = nil, priority: Int? = nil, due: Due? = nil) {
        self.id = id
        self.content = content
        self.description = description
        self.priority = priority
        self.due = due
    }
}

/// A Todoist call failed.
public struct TodoistError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable {
        case auth
        case notFound = "not_found"
        case badRequest = "bad_request"
        case rateLimited = "rate_limited"
        case server
        case network
        /// The answer is not the JSON expected.
        case malformedResponse = "malformed_response"
    }

    public var code: Code
    public var message: String
    public var status: Int?

    public init(_ code: Code, _ message: String, status: Int? = nil) {
        self.code = code
        self.message = message
        self.status = status
    }

    /// Whether the same call may pass when sent again (with the same `X-Request-Id`).
    public var retryable: Bool { [.rateLimited, .server, .network].contains(code) }

    public var description: String {
        "\(code.rawValue): \(message)" + (status.map { " (HTTP \($0))" } ?? "")
    }
}

/// A client of Todoist's unified API v1 (`/tasks`, `/tasks/{id}/close`) with a bearer token.
///
/// Writes carry `X-Request-Id`: the caller passes one id per logical call, and retries (after a 429, a 5xx or a
/// broken connection) send the same id again, so Todoist applies the write once.
public struct TodoistClient: Sendable {
    public let settings: TodoistSettings
    private let client: HTTPClient
    private let logger: Logger
    private let retry: RetryPolicy
    private let sleep: @Sendable (Duration) async throws -> Void

    public init(
        settings: TodoistSettings, httpClient: HTTPClient, logger: Logger,
        retry: RetryPolicy = RetryPolicy(maxRetries: 2, baseDelay: .milliseconds(500), maxDelay: .seconds(5)),
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }
    ) {
        self.settings = settings
        self.client = httpClient
        self.logger = logger
        self.retry = retry
        self.sleep = sleep
    }

    /// Creates a task.
    /// - Parameter requestID: the logical call's idempotency key, sent as `X-Request-Id`.
    public func createTask(content: String, description: String? = nil, dueString: String? = nil, requestID: String)
        async throws(TodoistError) -> TodoistTask
    {
        var body: [String: JSONValue] = ["content": .string(content)]
        if let description { body["description"] = .string(description) }
        if let dueString { body["due_string"] = .string(dueString) }
        let data = try await send(.POST, "/tasks", body: .object(body), requestID: requestID)
        return try decode(TodoistTask.self, data)
    }

    /// The active tasks, at most `limit`, following `next_cursor`.
    public func listTasks(limit: Int = 50) async throws(TodoistError) -> [TodoistTask] {
        struct Page: Decodable {
            var results: [TodoistTask]
            var nextCursor: String?
            enum CodingKeys: String, CodingKey {
                case results
                case nextCursor = "next_cursor"
            }
        }
        var tasks: [TodoistTask] = []
        var cursor: String?
        repeat {
            var path = "/tasks?limit=\(min(max(limit - tasks.count, 1), 200))"
            if let cursor {
                path += "&cursor=\(cursor.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? cursor)"
            }
            let page = try decode(Page.self, try await send(.GET, path, body: nil, requestID: nil))
            tasks.append(contentsOf: page.results)
            cursor = page.nextCursor
        } while cursor != nil && tasks.count < limit
        return Array(tasks.prefix(limit))
    }

    /// Completes (closes) a task.
    public func closeTask(id: String, requestID: String) async throws(TodoistError) {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_"))
        guard !id.isEmpty, id.unicodeScalars.allSatisfy(allowed.contains) else {
            throw TodoistError(.badRequest, "'\(id)' is not a task id")
        }
        _ = try await send(.POST, "/tasks/\(id)/close", body: nil, requestID: requestID)
    }

    private func send(_ method: HTTPMethod, _ path: String, body: JSONValue?, requestID: String?)
        async throws(TodoistError) -> ByteBuffer
    {
        var attempt = 0
        while true {
            do {
                return try await sendOnce(method, path, body: body, requestID: requestID)
            } catch {
                guard error.retryable, attempt < retry.maxRetries else { throw error }
                let wait = retry.delay(retry: attempt, retryAfter: nil, jitterFraction: Double.random(in: 0...1))
                logger.info(
                    "todoist request retrying",
                    metadata: [
                        "todoist.path": "\(path)", "todoist.error.code": "\(error.code.rawValue)",
                        "todoist.retry": "\(attempt + 1)",
                    ])
                do { try await sleep(wait) } catch { throw TodoistError(.network, "cancelled") }
                attempt += 1
            }
        }
    }

    private func sendOnce(_ method: HTTPMethod, _ path: String, body: JSONValue?, requestID: String?)
        async throws(TodoistError) -> ByteBuffer
    {
        var request = HTTPClientRequest(url: settings.baseURL + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(settings.token.reveal())")
        if let requestID { request.headers.add(name: "X-Request-Id", value: requestID) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body.jsonText))
        }
        do {
            let response = try await client.execute(request, timeout: .seconds(30), logger: logger)
            let data = try await response.body.collect(upTo: 4 << 20)
            let status = Int(response.status.code)
            switch status {
            case 200..<300: return data
            case 401, 403: throw TodoistError(.auth, "Todoist refused the token", status: status)
            case 404: throw TodoistError(.notFound, "Todoist has no such task", status: status)
            case 429: throw TodoistError(.rateLimited, "Todoist rate limit", status: status)
            case 500...599:
                throw TodoistError(.server, "Todoist failed: \(String(buffer: data).prefix(200))", status: status)
            default:
                throw TodoistError(
                    .badRequest, "Todoist rejected the request: \(String(buffer: data).prefix(200))", status: status)
            }
        } catch let error as TodoistError {
            throw error
        } catch {
            throw TodoistError(.network, "Todoist could not be reached: \(error)")
        }
    }

    private func decode<T: Decodable>(_ type: T.Type, _ data: ByteBuffer) throws(TodoistError) -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(data.readableBytesView))
        } catch {
            throw TodoistError(.malformedResponse, "Todoist answered with unexpected JSON")
        }
    }
}

/// A deterministic UUID-shaped id from any text (two FNV-1a 64-bit hashes), so one logical call always sends the
/// same `X-Request-Id`.
public func stableRequestID(for text: String) -> String {
    func fnv(_ seed: UInt64) -> UInt64 {
        var hash = seed
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x100_0000_01b3
        }
        return hash
    }
    let high = fnv(0xcbf2_9ce4_8422_2325)
    let low = fnv(0x8422_2325_cbf2_9ce4)
    let hex = String(format: "%016llx%016llx", high, low)
    let characters = Array(hex)
    return [characters[0..<8], characters[8..<12], characters[12..<16], characters[16..<20], characters[20..<32]]
        .map { String($0) }.joined(separator: "-")
}

/// The Todoist tools: `todoist_create_task` and `todoist_complete_task` (side effects) and `todoist_list_tasks`.
public enum TodoistTools {
    public static func all(client: TodoistClient) -> [any Tool] {
        [CreateTask(client: client), ListTasks(client: client), CompleteTask(client: client)]
    }

    static func toolError(_ error: TodoistError) -> ToolError {
        switch error.code {
        case .auth, .notFound, .badRequest: ToolError(.rejected, error.message)
        case .rateLimited, .server, .network, .malformedResponse: ToolError(.unavailable, error.message)
        }
    }

    /// Creates a task.
    public struct CreateTask: Tool {
        public let client: TodoistClient
        public var name: String { "todoist_create_task" }
        public var description: String { "Create a task in the user's Todoist." }
        public var parameters: JSONValue {
            [
                "type": "object",
                "properties": [
                    "content": ["type": "string", "description": "the task, 1 to 500 characters"],
                    "description": ["type": "string"],
                    "due_string": ["type": "string", "description": "natural language, such as 'tomorrow at 9'"],
                ],
                "required": ["content"],
            ]
        }
        public var risk: ToolRisk { .sideEffect }

        public func run(_ arguments: JSONValue, context: ToolContext) async throws(ToolError) -> String {
            let arguments = Arguments(value: arguments)
            let content = try arguments.string("content")
            guard content.count <= 500 else {
                throw ToolError(.invalidArguments, "'content' is longer than 500 characters")
            }
            do {
                let task = try await client.createTask(
                    content: content, description: arguments.optionalString("description"),
                    dueString: arguments.optionalString("due_string"), requestID: stableRequestID(for: context.callID))
                return "Created task \(task.id): \(task.content)" + (task.due?.string.map { " (due \($0))" } ?? "")
            } catch {
                throw TodoistTools.toolError(error)
            }
        }
    }

    /// Lists the active tasks.
    public struct ListTasks: Tool {
        public let client: TodoistClient
        public var name: String { "todoist_list_tasks" }
        public var description: String { "List the user's active Todoist tasks." }
        public var parameters: JSONValue {
            ["type": "object", "properties": ["limit": ["type": "integer", "minimum": 1, "maximum": 200]]]
        }
        public var risk: ToolRisk { .read }

        public func run(_ arguments: JSONValue, context: ToolContext) async throws(ToolError) -> String {
            let limit = try Arguments(value: arguments).optionalInt("limit") ?? 50
            guard (1...200).contains(limit) else { throw ToolError(.invalidArguments, "'limit' must be 1 to 200") }
            do {
                let tasks = try await client.listTasks(limit: limit)
                if tasks.isEmpty { return "No active tasks." }
                return tasks.map { task in
                    "- [\(task.id)] \(task.content)" + (task.due?.string.map { " (due \($0))" } ?? "")
                }.joined(separator: "\n")
            } catch {
                throw TodoistTools.toolError(error)
            }
        }
    }

    /// Completes a task by id.
    public struct CompleteTask: Tool {
        public let client: TodoistClient
        public var name: String { "todoist_complete_task" }
        public var description: String { "Mark one of the user's Todoist tasks as done, by its id." }
        public var parameters: JSONValue {
            ["type": "object", "properties": ["id": ["type": "string"]], "required": ["id"]]
        }
        public var risk: ToolRisk { .sideEffect }

        public func run(_ arguments: JSONValue, context: ToolContext) async throws(ToolError) -> String {
            let id = try Arguments(value: arguments).string("id")
            do {
                try await client.closeTask(id: id, requestID: stableRequestID(for: context.callID))
                return "Completed task \(id)."
            } catch {
                throw TodoistTools.toolError(error)
            }
        }
    }
}
