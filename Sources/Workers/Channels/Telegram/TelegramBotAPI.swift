import AsyncHTTPClient
import Foundation

/// A Bot API call that did not return `ok: true`.
public struct TelegramAPIError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable, Equatable {
        /// Telegram answered `ok: false` (or a non-2xx status): see ``status``, ``errorCode``, ``message``.
        case refused
        /// No connection was made: the request cannot have reached Telegram.
        case notSent = "not_sent"
        /// The request may have reached Telegram (timeout or dropped connection after the write).
        case uncertain
        /// A 2xx answer whose body is not the expected JSON.
        case badResponse = "bad_response"
    }

    public var code: Code
    /// The HTTP status, for ``Code/refused``.
    public var status: Int?
    /// Telegram's `error_code`.
    public var errorCode: Int?
    /// Telegram's `description`, or what went wrong (the bot token is never part of it).
    public var message: String
    /// `parameters.retry_after`, seconds.
    public var retryAfter: Int?
    /// `parameters.migrate_to_chat_id`.
    public var migrateToChatID: Int64?

    public var description: String {
        "TelegramAPIError(\(code.rawValue)\(status.map { ", HTTP \($0)" } ?? "")): \(message)"
    }
}

/// The Bot API methods the channel uses, over AsyncHTTPClient: `POST <base>/bot<token>/<method>` with a JSON
/// body, answered by `{"ok":…,"result":…}` or `{"ok":false,"error_code":…,"description":…,"parameters":…}`.
public struct TelegramBotAPI: Sendable {
    let baseURL: String
    let token: String
    let client: HTTPClient
    let timeout: Duration

    public init(baseURL: String, token: String, timeout: Duration, client: HTTPClient = .shared) {
        self.baseURL = baseURL
        self.token = token
        self.client = client
        self.timeout = timeout
    }

    /// The bot's numeric id: the part of the token before `:`.
    public var botID: String? { token.split(separator: ":").first.map(String.init) }

    struct Envelope<Result: Decodable>: Decodable {
        struct Parameters: Decodable {
            var retry_after: Int?
            var migrate_to_chat_id: Int64?
        }
        var ok: Bool
        var result: Result?
        var description: String?
        var error_code: Int?
        var parameters: Parameters?
    }

    /// Calls `method` with `body`; `timeout` overrides the default (long polls wait longer).
    public func call<Body: Encodable & Sendable, Result: Decodable & Sendable>(
        _ method: String, _ body: Body, as: Result.Type, timeout: Duration? = nil
    ) async -> Swift.Result<Result, TelegramAPIError> {
        guard let json = try? JSONEncoder().encode(body) else {
            return .failure(TelegramAPIError(code: .badResponse, message: "the request could not be encoded"))
        }
        let call = ProviderCall(client: client, timeout: timeout ?? self.timeout)
        switch await call.post("\(baseURL)/bot\(token)/\(method)", headers: [], json: Array(json)) {
        case .notSent(let reason):
            return .failure(TelegramAPIError(code: .notSent, message: redact(reason)))
        case .unknown(let reason):
            return .failure(TelegramAPIError(code: .uncertain, message: redact(reason)))
        case .response(let status, let bytes):
            let envelope = try? JSONDecoder().decode(Envelope<Result>.self, from: Data(bytes))
            if (200..<300).contains(status), let envelope, envelope.ok, let result = envelope.result {
                return .success(result)
            }
            if (200..<300).contains(status), envelope?.ok != false {
                return .failure(
                    TelegramAPIError(
                        code: .badResponse, status: status, message: "HTTP \(status) with an unreadable body"))
            }
            return .failure(
                TelegramAPIError(
                    code: .refused, status: status, errorCode: envelope?.error_code ?? status,
                    message: redact(envelope?.description ?? "HTTP \(status)"),
                    retryAfter: envelope?.parameters?.retry_after,
                    migrateToChatID: envelope?.parameters?.migrate_to_chat_id))
        }
    }

    // MARK: Methods

    struct Empty: Encodable, Sendable {}

    public struct BotUser: Codable, Sendable, Equatable {
        public var id: Int64
        public var username: String?
        public var first_name: String?
    }

    /// `getMe`: who the token belongs to.
    public func getMe() async -> Swift.Result<BotUser, TelegramAPIError> {
        await call("getMe", Empty(), as: BotUser.self)
    }

    struct GetUpdates: Encodable, Sendable {
        var offset: Int64?
        var timeout: Int
        var limit = 100
        var allowed_updates: [String]
    }

    /// The update kinds the bot asks for (others are never served).
    public static let allowedUpdates = ["message", "edited_message", "channel_post", "edited_channel_post"]

    /// `getUpdates` long polling from `offset`, waiting up to `timeout` seconds (an update whose message does not
    /// decode is still returned, marked ``TelegramUpdate/malformed``, so its id is confirmed).
    public func getUpdates(offset: Int64?, timeout: Int) async -> Swift.Result<[TelegramUpdate], TelegramAPIError> {
        await call(
            "getUpdates", GetUpdates(offset: offset, timeout: timeout, allowed_updates: Self.allowedUpdates),
            as: [TelegramUpdate].self, timeout: .seconds(timeout + 15))
    }

    struct SetWebhook: Encodable, Sendable {
        var url: String
        var secret_token: String
        var allowed_updates: [String]
        var drop_pending_updates: Bool
        var max_connections: Int?
    }

    /// `setWebhook` with the secret token Telegram will send in `X-Telegram-Bot-Api-Secret-Token`.
    public func setWebhook(url: String, secret: String, dropPendingUpdates: Bool, maxConnections: Int? = nil) async
        -> Swift.Result<Bool, TelegramAPIError>
    {
        await call(
            "setWebhook",
            SetWebhook(
                url: url, secret_token: secret, allowed_updates: Self.allowedUpdates,
                drop_pending_updates: dropPendingUpdates, max_connections: maxConnections), as: Bool.self)
    }

    struct DeleteWebhook: Encodable, Sendable { var drop_pending_updates: Bool }

    /// `deleteWebhook` (needed before `getUpdates` works).
    public func deleteWebhook(dropPendingUpdates: Bool) async -> Swift.Result<Bool, TelegramAPIError> {
        await call("deleteWebhook", DeleteWebhook(drop_pending_updates: dropPendingUpdates), as: Bool.self)
    }

    public struct WebhookInfo: Codable, Sendable, Equatable {
        public var url: String
        public var pending_update_count: Int?
        public var last_error_date: Int64?
        public var last_error_message: String?
    }

    /// `getWebhookInfo`.
    public func webhookInfo() async -> Swift.Result<WebhookInfo, TelegramAPIError> {
        await call("getWebhookInfo", Empty(), as: WebhookInfo.self)
    }

    func redact(_ text: String) -> String {
        token.isEmpty ? text : text.replacingOccurrences(of: token, with: "<token>")
    }
}
