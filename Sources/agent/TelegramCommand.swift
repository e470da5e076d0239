import ArgumentParser
import Foundation
import Workers

/// `agent telegram set-webhook --url …`, `agent telegram delete-webhook`, `agent telegram status`: the Bot API
/// calls around the webhook, with the token from `TELEGRAM_BOT_TOKEN` and the secret from
/// `TELEGRAM_WEBHOOK_SECRET` (never flags: flags show in `ps`).
struct TelegramCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "telegram",
        abstract: "Registers or removes the bot's webhook, or shows it.",
        subcommands: [SetWebhook.self, DeleteWebhook.self, Status.self])

    struct Bot: ParsableArguments {
        @Option(help: "TELEGRAM_API_BASE_URL: the Bot API base (default https://api.telegram.org).")
        var telegramApiBaseUrl: String?

        func api() throws -> TelegramBotAPI {
            var environment = ProcessInfo.processInfo.environment
            if let base = telegramApiBaseUrl {
                environment["TELEGRAM_API_BASE_URL"] = base
            }
            // Only the Telegram variables matter here: the mode check needs no secret for these commands.
            environment["TELEGRAM_MODE"] = "off"
            let settings: AgentSettings
            do {
                settings = try AgentSettings(environment: environment)
            } catch {
                complain("agent telegram: invalid configuration: \(error)")
                throw ExitCode(64)
            }
            guard let token = settings.telegramBotToken else {
                complain("agent telegram: TELEGRAM_BOT_TOKEN is not set")
                throw ExitCode(64)
            }
            return TelegramBotAPI(baseURL: settings.telegramAPIBaseURL, token: token, timeout: .seconds(30))
        }
    }

    struct SetWebhook: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set-webhook",
            abstract: "Points the bot at <url> (…/telegram/webhook) with TELEGRAM_WEBHOOK_SECRET as its secret token.")

        @OptionGroup var bot: Bot
        @Option(help: "The public HTTPS URL of the agent; /telegram/webhook is added when it has no path.") var url:
            String
        @Flag(help: "Drop the updates Telegram is still holding.") var dropPendingUpdates = false
        @Option(help: "Telegram's max_connections (1-100).") var maxConnections: Int?

        func run() async throws {
            let api = try bot.api()
            guard let secret = ProcessInfo.processInfo.environment["TELEGRAM_WEBHOOK_SECRET"], !secret.isEmpty else {
                complain(
                    "agent telegram: TELEGRAM_WEBHOOK_SECRET is not set (e.g. export TELEGRAM_WEBHOOK_SECRET=$(openssl rand -hex 32))"
                )
                throw ExitCode(64)
            }
            do {
                _ = try ChannelSettings(environment: ["TELEGRAM_WEBHOOK_SECRET": secret])
            } catch {
                complain("agent telegram: \(error)")
                throw ExitCode(64)
            }
            guard var components = URLComponents(string: url), components.host != nil else {
                complain("agent telegram: --url must be an absolute URL, got '\(url)'")
                throw ExitCode(64)
            }
            if components.path.isEmpty || components.path == "/" { components.path = "/telegram/webhook" }
            let target = components.string ?? url
            switch await api.setWebhook(
                url: target, secret: secret, dropPendingUpdates: dropPendingUpdates, maxConnections: maxConnections)
            {
            case .success:
                print("Webhook set: \(target) (secret token from TELEGRAM_WEBHOOK_SECRET).")
                print("Run the agent with TELEGRAM_MODE=webhook and the same TELEGRAM_WEBHOOK_SECRET.")
            case .failure(let error):
                complain("agent telegram: setWebhook failed: \(error)")
                throw ExitCode(1)
            }
        }
    }

    struct DeleteWebhook: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "delete-webhook", abstract: "Removes the webhook (needed before TELEGRAM_MODE=polling).")

        @OptionGroup var bot: Bot
        @Flag(help: "Drop the updates Telegram is still holding.") var dropPendingUpdates = false

        func run() async throws {
            switch try await bot.api().deleteWebhook(dropPendingUpdates: dropPendingUpdates) {
            case .success: print("Webhook deleted: the bot can be polled (TELEGRAM_MODE=polling).")
            case .failure(let error):
                complain("agent telegram: deleteWebhook failed: \(error)")
                throw ExitCode(1)
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Shows the bot and its webhook (getMe, getWebhookInfo).")

        @OptionGroup var bot: Bot

        func run() async throws {
            let api = try bot.api()
            switch await api.getMe() {
            case .success(let me): print("bot: @\(me.username ?? "?") (id \(me.id))")
            case .failure(let error):
                complain("agent telegram: getMe failed: \(error)")
                throw ExitCode(1)
            }
            switch await api.webhookInfo() {
            case .success(let info):
                print("webhook: \(info.url.isEmpty ? "none (polling works)" : info.url)")
                print("pending updates: \(info.pending_update_count ?? 0)")
                if let message = info.last_error_message { print("last error: \(message)") }
            case .failure(let error):
                complain("agent telegram: getWebhookInfo failed: \(error)")
                throw ExitCode(1)
            }
        }
    }
}
