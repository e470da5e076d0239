import Assistant
import AsyncHTTPClient
import EventLog
import Foundation
import Logging
import Projections
import Prometheus
import ServiceLifecycle

/// Assembles the services of one agent process for its role.
///
/// The order matters: a `ServiceGroup` shuts services down in reverse order, each after the later ones have
/// returned. So the core stops claiming and finishes its jobs first, then the outbound loops finish the send
/// in flight, then the lease keepers release their leases (events), then the HTTP server stops, and the
/// engine records `worker.stopped` and closes the log last.
public enum AgentRuntime {
    /// The services for `settings.role`, and the status `/healthz` reports.
    public static func services(
        settings: AgentSettings, engine: Switchboard, version: String, registry: PrometheusCollectorRegistry,
        logger: Logger
    ) -> [ServiceGroupConfiguration.ServiceConfiguration] {
        let writer = engine.log.configuration.writer
        let status = WorkerStatus(
            role: settings.role.rawValue, workerID: writer.workerID, instance: writer.instanceID.uuidString)
        let metrics = WorkerMetrics()
        // The channels: lease keepers, outbound loops, webhook routes or Telegram polling, connection health.
        let channels = ChannelRuntime.make(
            settings: settings, engine: engine, status: status, metrics: metrics, logger: logger)
        // The model the core answers with; the local model's server is supervised by this process.
        let model = settings.runsCore ? ModelChoice.resolve(settings) : nil
        let modelHTTP = model.map { choice in
            choice.provider.map(OpenAICompatibleProvider.makeHTTPClient(settings:))
                ?? HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
        }
        var supervisor: ModelSupervisor?
        if let local = model?.local, let modelHTTP {
            supervisor = ModelSupervisor(
                settings: local.settings, modelPath: local.modelPath, modelName: local.modelName,
                launcher: local.launcher, port: local.port, httpClient: modelHTTP, logger: logger)
        }
        // The web chat: its routes join the HTTP server; its shutdown service (last, so stopped first) ends the
        // open event streams before the server stops.
        var web: WebChat?
        if settings.role == .web || settings.role == .all {
            do {
                let store = try SessionStore(
                    backend: settings.sessionBackend, engine: engine, directory: settings.sessionDirectory)
                var webSettings = settings.web
                webSettings.model.answering = model?.description
                let whatsapp =
                    settings.enableWhatsApp
                    ? WebWhatsApp(account: settings.whatsappAccountID, store: store, device: channels.linkedDevice)
                    : nil
                let chat = try WebChat(
                    engine: engine, settings: webSettings, sessionStore: store, modelHealth: supervisor?.health,
                    whatsapp: whatsapp, logger: logger)
                chat.announce(url: settings.web.publicURL ?? "http://\(settings.host):\(settings.port)")
                web = chat
            } catch {
                status.channelOff(Channel.web.rawValue, reason: "\(error)")
                logger.error("[web] Channel off (\(error)): serving /healthz and /metrics only")
            }
        }
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(
                service: EngineService(
                    log: engine.log, settings: settings, version: version, status: status, logger: logger)),
            .init(
                service: HTTPSurface.application(
                    host: settings.host, port: settings.port, engine: engine, status: status, registry: registry,
                    metrics: metrics, web: web, channels: channels.routes, limits: settings.httpLimits, logger: logger)),
        ]
        if settings.snapshotEvery > 0 {
            services.append(
                .init(
                    service: SnapshotService(
                        log: engine.log, every: settings.snapshotEvery, keep: settings.snapshotKeep, logger: logger)))
        }
        services += channels.keepers.map { .init(service: $0) }
        services += channels.services.map { .init(service: $0) }
        if let model, let http = modelHTTP {
            // One HTTP client for the model and Todoist, shut down after the core has finished (listed before it);
            // the local model's server is stopped after the core too.
            let sessions: SessionStore?
            do {
                sessions = try SessionStore(
                    backend: settings.sessionBackend, engine: engine, directory: settings.sessionDirectory)
            } catch {
                logger.warning("todoist.sessions.unavailable", metadata: ["error": "\(error)"])
                sessions = nil
            }
            let assistant = CoreAssistant.from(
                settings: settings, model: model, httpClient: http, sessions: sessions, logger: logger)
            logger.info("[agent] Model: \(assistant.modelDescription)")
            services.append(.init(service: HTTPClientService(client: http)))
            if let supervisor { services.append(.init(service: supervisor)) }
            services.append(
                .init(
                    service: CoreService(
                        engine: engine, concurrency: settings.coreConcurrency, assistant: assistant, metrics: metrics,
                        logger: logger)))
        }
        if let web { services.append(.init(service: WebShutdownService(web.shutdown))) }
        return services
    }
}
