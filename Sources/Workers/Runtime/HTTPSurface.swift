import EventLog
import Foundation
import Hummingbird
import Logging
import NIOCore
import Projections
import Prometheus

/// The HTTP surface every agent process serves: `GET /healthz` and `GET /metrics` (Prometheus text), in the
/// `web` and `all` roles the web chat (``WebChat``), and the channels' webhook routes (``ChannelRoutes``).
public enum HTTPSurface {
    /// What `/healthz` answers.
    public struct Health: Codable, Sendable, Equatable {
        public var status: String
        public var role: String
        public var workerID: String
        public var instance: String
        /// The log's last seq, or `nil` when the log cannot be read (then the status is 503).
        public var lastSeq: UInt64?
        /// The last seq this process's tail has read.
        public var processedSeq: UInt64
        /// Lease resources and whether this process holds them.
        public var leases: [String: Bool]
        /// Whether this process holds any channel lease.
        public var leaseHeld: Bool
        public var channelsOff: [String: String]
        public var error: String?
    }

    /// The health of this process: 200 and `ok`, or 503 when the log cannot be read.
    public static func health(engine: Switchboard, status: WorkerStatus) -> (code: Int, body: Health) {
        let snapshot = status.snapshot
        var health = Health(
            status: "ok", role: snapshot.role, workerID: snapshot.workerID, instance: snapshot.instance, lastSeq: nil,
            processedSeq: snapshot.processedSeq, leases: snapshot.leases,
            leaseHeld: snapshot.leases.values.contains(true), channelsOff: snapshot.channelsOff, error: nil)
        do {
            health.lastSeq = try engine.log.lastSeq()
            return (200, health)
        } catch {
            health.status = "unavailable"
            health.error = "\(error)"
            return (503, health)
        }
    }

    /// Builds the server (a `Service`), with the web chat's routes when `web` is given. `onListening` gets the
    /// bound port (useful with port 0).
    public static func application(
        host: String, port: Int, engine: Switchboard, status: WorkerStatus, registry: PrometheusCollectorRegistry,
        metrics: WorkerMetrics = WorkerMetrics(), web: WebChat? = nil, channels: ChannelRoutes? = nil,
        limits: ConnectionLimits = ConnectionLimits(), onListening: (@Sendable (Int) -> Void)? = nil, logger: Logger
    ) -> some ApplicationProtocol {
        let router = Router(context: WebRequestContext.self)
        router.get("healthz") { _, _ -> Response in
            let (code, body) = health(engine: engine, status: status)
            let json = (try? JSONEncoder().encode(body)) ?? Data("{}".utf8)
            return Response(
                status: .init(code: code), headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(bytes: json)))
        }
        router.get("metrics") { _, _ -> Response in
            refresh(engine: engine, status: status, metrics: metrics)
            var buffer: [UInt8] = []
            registry.emit(into: &buffer)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: buffer)))
        }
        web?.addRoutes(to: router)
        channels?.add(to: router)
        return Application(
            router: router,
            server: .http1(configuration: .init(additionalChannelHandlers: [ConnectionGuard(limits: limits)])),
            configuration: .init(
                address: .hostname(host, port: port), serverName: nil,
                availableConnectionsDelegate: .maximum(limits.maxConnections, logger: logger)),
            onServerRunning: { channel in
                let bound = channel.localAddress?.port ?? port
                logger.info("http.listening", metadata: ["http.host": "\(host)", "http.port": "\(bound)"])
                onListening?(bound)
            },
            logger: logger)
    }

    /// Gauges read at scrape time: queue depths (from the live indexes) and the tail lag.
    static func refresh(engine: Switchboard, status: WorkerStatus, metrics: WorkerMetrics) {
        if let depths = try? engine.reader.queueDepths() {
            metrics.queueDepth("jobs_ready", depths.jobsReady)
            metrics.queueDepth("jobs_running", depths.jobsRunning)
            metrics.queueDepth("deliveries_pending", depths.deliveriesPending)
            metrics.queueDepth("deliveries_in_flight", depths.deliveriesInFlight)
        }
        let snapshot = status.snapshot
        if let last = try? engine.log.lastSeq() {
            let lagSeconds = snapshot.processedAt.map { at -> Double in
                last > snapshot.processedSeq
                    ? Double(LogTimestamp.wallClock().microseconds - at.microseconds) / 1_000_000 : 0
            }
            metrics.tailLag(records: last - min(last, snapshot.processedSeq), seconds: max(0, lagSeconds ?? 0))
        }
    }
}
