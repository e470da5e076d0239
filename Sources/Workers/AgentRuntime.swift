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
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(
                service: EngineService(
                    log: engine.log, settings: settings, version: version, status: status, logger: logger)),
            .init(
                service: HTTPSurface.application(
                    host: settings.host, port: settings.port, engine: engine, status: status, registry: registry,
                    metrics: metrics, channels: channels.routes, logger: logger)),
        ]
        if settings.snapshotEvery > 0 {
            services.append(
                .init(
                    service: SnapshotService(
                        log: engine.log, every: settings.snapshotEvery, keep: settings.snapshotKeep, logger: logger)))
        }
        if settings.role == .web || settings.role == .all {
            status.channelOff("web", reason: "the web chat is not built yet")
            logger.warning("[web] Channel off (the web chat is not built yet): serving /healthz and /metrics only")
        }
        services += channels.keepers.map { .init(service: $0) }
        services += channels.services.map { .init(service: $0) }
        if settings.runsCore {
            services.append(
                .init(
                    service: CoreService(
                        engine: engine, concurrency: settings.coreConcurrency, metrics: metrics, logger: logger)))
        }
        return services
    }
}
