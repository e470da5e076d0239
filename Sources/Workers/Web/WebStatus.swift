import EventLog
import Foundation
import Projections

/// What `/status` shows and `/api/status` answers: lease holders and expiry, queue depths, dead jobs, uncertain
/// deliveries and the alert check over the last 24 hours (the same reports `replay` prints).
public struct WebStatus: Codable, Sendable {
    public struct Queues: Codable, Sendable, Equatable {
        public var jobsReady: Int
        public var jobsRunning: Int
        public var deliveriesPending: Int
        public var deliveriesInFlight: Int
        public var approvalsAwaiting: Int
    }

    /// The log time the status was read at (ISO-8601).
    public var time: String
    public var lastSeq: UInt64
    public var leases: [LeaseReport]
    public var queues: Queues
    public var deadJobs: [JobReport]
    public var uncertainDeliveries: [DeliveryReport]
    public var alerts: [AlertCheck.Line]
    /// The window the alerts cover, e.g. `24h`.
    public var alertWindow: String
    /// The local model server supervised by this process, if any.
    public var model: ModelHealth.Snapshot?

    /// Reads the status from the live state (blocking: call it off the cooperative pool, see ``read(engine:)``).
    static func readBlocking(engine: Switchboard, model: ModelHealth? = nil) throws -> WebStatus {
        let reader = engine.reader
        let now = try engine.logNow()
        let depths = try reader.queueDepths()
        let approvals = try engine.awaitingApprovals().count
        return WebStatus(
            time: now.description, lastSeq: try engine.log.lastSeq(),
            leases: try reader.leases().map { LeaseReport($0, now: now) },
            queues: Queues(
                jobsReady: depths.jobsReady, jobsRunning: depths.jobsRunning,
                deliveriesPending: depths.deliveriesPending, deliveriesInFlight: depths.deliveriesInFlight,
                approvalsAwaiting: approvals),
            deadJobs: try Inspection.jobs(.dead, reader),
            uncertainDeliveries: try Inspection.deliveries(.uncertain, reader),
            alerts: try AlertCheck.run(
                engine.log, now: now, lookback: .seconds(86_400), burstWindow: .seconds(600), threshold: 10,
                windowLabel: "10m"),
            alertWindow: "24h", model: model?.snapshot)
    }

    /// The status, read on a thread of its own (the alert check scans the log).
    static func read(engine: Switchboard, model: ModelHealth? = nil) async throws -> WebStatus {
        try await offload { try readBlocking(engine: engine, model: model) }
    }
}

/// Runs blocking work (LMDB reads, scans) on a global dispatch queue instead of the cooperative pool.
func offload<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
    }
}
