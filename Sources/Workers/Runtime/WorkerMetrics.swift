import EventLog
import Foundation
import Metrics
import Synchronization

/// The metrics every role reports (swift-metrics; the agent bootstraps the Prometheus backend).
public struct WorkerMetrics: Sendable {
    public init() {}

    /// A job or delivery claimed (`kind` = `job` or `delivery`).
    func claimed(_ kind: String) {
        Counter(label: "switchboard_claims_total", dimensions: [("kind", kind)]).increment()
    }

    /// A provider call's outcome (`sent`, `failed`, `uncertain`, `skipped`).
    func sent(channel: String, outcome: String) {
        Counter(label: "switchboard_sends_total", dimensions: [("channel", channel), ("outcome", outcome)])
            .increment()
    }

    /// Jobs finished by outcome (`completed`, `failed`, `lost`).
    func job(outcome: String) {
        Counter(label: "switchboard_jobs_total", dimensions: [("outcome", outcome)]).increment()
    }

    func leaseHeld(_ resource: String, _ held: Bool) {
        Gauge(label: "switchboard_lease_held", dimensions: [("resource", resource)]).record(held ? 1 : 0)
    }

    func renewLatency(_ resource: String, _ duration: Duration) {
        Metrics.Timer(label: "switchboard_lease_renew_seconds", dimensions: [("resource", resource)])
            .recordNanoseconds(
                duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
    }

    func queueDepth(_ queue: String, _ depth: Int) {
        Gauge(label: "switchboard_queue_depth", dimensions: [("queue", queue)]).record(depth)
    }

    func tailLag(records: UInt64, seconds: Double) {
        Gauge(label: "switchboard_tail_lag_records").record(Double(records))
        Gauge(label: "switchboard_tail_lag_seconds").record(seconds)
    }
}

/// What this process reports on `/healthz`: shared by the services, read by the HTTP handler.
public final class WorkerStatus: Sendable {
    public struct Snapshot: Sendable, Codable, Equatable {
        public var role: String
        public var workerID: String
        public var instance: String
        /// The last seq this process's tail has read.
        public var processedSeq: UInt64
        /// The log time of that record.
        public var processedAt: LogTimestamp?
        /// Channel lease resources (`whatsapp/default`) and whether this process holds them now.
        public var leases: [String: Bool]
        /// Channels that are off, and why.
        public var channelsOff: [String: String]
    }

    private let state: Mutex<Snapshot>

    public init(role: String, workerID: String, instance: String) {
        state = Mutex(
            Snapshot(
                role: role, workerID: workerID, instance: instance, processedSeq: 0, processedAt: nil, leases: [:],
                channelsOff: [:]))
    }

    public var snapshot: Snapshot { state.withLock { $0 } }

    func processed(_ seq: UInt64, at time: LogTimestamp) {
        state.withLock {
            $0.processedSeq = seq
            $0.processedAt = time
        }
    }

    func lease(_ resource: String, held: Bool) { state.withLock { $0.leases[resource] = held } }

    public func channelOff(_ channel: String, reason: String) { state.withLock { $0.channelsOff[channel] = reason } }
}
