import Assistant
import AsyncHTTPClient
import Foundation
import Logging

/// The model this process's core answers with, resolved once at start from `AI_PROVIDER`, `AI_BASE_URL` and the
/// local model's installation.
public struct ModelChoice: Sendable {
    /// The OpenAI-compatible provider, `nil` for the offline assistant.
    public var provider: ProviderSettings?
    /// The local model server to supervise, when the local model answers.
    public var local: (settings: LocalModelSettings, modelPath: String, modelName: String, launcher: String, port: Int)?
    /// Which model answers and how to switch, for the startup line and the web pages.
    public var description: String
    /// Whether the model's own turns are offered tools (`AI_TOOLS`).
    public var offerTools: Bool
    public var turn: TurnSettings

    /// Resolves the settings; `port` picks the local server's loopback port (a free one by default).
    public static func resolve(
        _ settings: AgentSettings, port: () throws -> Int = { try ModelSupervisor.freePort() }
    ) -> ModelChoice {
        var turn = TurnSettings()
        turn.temperature = settings.aiTemperature ?? 0.7
        switch settings.aiProvider {
        case .openai:
            guard let provider = settings.provider else { return offline(settings, turn, reason: nil) }
            turn.maxTokens = settings.aiMaxTokens ?? 2_048
            turn.budget = ContextBudget(window: provider.contextWindow)
            return ModelChoice(
                provider: provider, local: nil, description: "\(provider.model) at \(provider.baseURL)",
                offerTools: settings.aiTools != .off, turn: turn)
        case .offline:
            return offline(settings, turn, reason: "AI_PROVIDER=offline")
        case .local:
            let status = LocalModel.status(settings.localModel)
            guard status.ready, let model = LocalModel.model(settings.localModel),
                let launcher = LocalModel.launcher(settings.localModel)
            else { return offline(settings, turn, reason: status.summary) }
            let chosenPort: Int
            do {
                chosenPort = try port()
            } catch {
                return offline(settings, turn, reason: "no loopback port for the local model: \(error)")
            }
            let name =
                model.source == "bundled"
                ? LocalModel.bundledModelName
                : URL(fileURLWithPath: model.path).deletingPathExtension().lastPathComponent
            // A small model: short replies (a reply stops at its limit and is recorded as truncated), and a
            // budget that leaves room for the reply in the server's context.
            turn.maxTokens = settings.aiMaxTokens ?? 512
            // At 0.7 the 135M model wanders off ("Le Grand Parisis…"); at 0.3 it answers plain questions plainly.
            turn.temperature = settings.aiTemperature ?? 0.3
            turn.budget = ContextBudget(window: max(512, settings.localModel.contextTokens - (turn.maxTokens ?? 512)))
            let provider = ProviderSettings(
                baseURL: "http://127.0.0.1:\(chosenPort)/v1", model: name,
                contextWindow: settings.localModel.contextTokens,
                retry: RetryPolicy(maxRetries: 2), requestTimeout: .seconds(120), streamIdleTimeout: .seconds(60),
                includeUsage: true)
            let description =
                model.source == "bundled"
                ? "local \(name) (llama.cpp, bundled; set AI_BASE_URL for another model)"
                : "local \(model.path) (llama.cpp; set AI_BASE_URL for a remote model)"
            return ModelChoice(
                provider: provider,
                local: (settings.localModel, model.path, name, launcher, chosenPort),
                description: description, offerTools: settings.aiTools == .on, turn: turn)
        }
    }

    private static func offline(_ settings: AgentSettings, _ turn: TurnSettings, reason: String?) -> ModelChoice {
        let why = reason.map { " — \($0)" } ?? ""
        return ModelChoice(
            provider: nil, local: nil,
            description: "offline assistant\(why) (set AI_BASE_URL to use a model)", offerTools: true, turn: turn)
    }

    /// The provider the core streams from: the model behind the offline assistant's explicit commands, or the
    /// offline assistant alone.
    public func chatProvider(httpClient: HTTPClient, logger: Logger) -> any ChatProvider {
        guard let provider else { return OfflineAssistant() }
        return CommandFirstProvider(
            model: OpenAICompatibleProvider(settings: provider, httpClient: httpClient, logger: logger),
            commands: OfflineAssistant(), offerToolsToModel: offerTools)
    }
}
