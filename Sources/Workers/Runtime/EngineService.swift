import EventLog
import SwitchboardEvents
import Foundation
import Logging
import ServiceLifecycle

/// Runs the event-log engine of one agent process: records `worker.started`, follows the log (every event,
/// from this and other processes, at debug level with a per-minute count at info), and on graceful shutdown
/// records `worker.stopped` and closes the log.
public struct EngineService: Service {
    let log: EventLog
    let settings: AgentSettings
    let version: String
    let logger: Logger
    let status: WorkerStatus?

    /// Creates the service over an open log; `status` gets the seq and log time of every record read.
    public init(log: EventLog, settings: AgentSettings, version: String, status: WorkerStatus? = nil, logger: Logger) {
        self.log = log
        self.settings = settings
        self.version = version
        self.status = status
        self.logger = logger
    }

    public func run() async throws {
        let writer = log.configuration.writer
        let startSeq = try await log.append(
            WorkerStarted(
                role: writer.role, workerID: writer.workerID, instance: writer.instanceID.uuidString,
                pid: getpid(), version: version, configuration: settings.summary))
        logger.info(
            "worker.started",
            metadata: [
                "event.seq": "\(startSeq)", "worker.id": "\(writer.workerID)",
                "worker.instance": "\(writer.instanceID)",
            ])
        do {
            status?.processed(startSeq, at: LogTimestamp.wallClock())
            for try await record in log.tail(from: startSeq + 1).cancelOnGracefulShutdown() {
                status?.processed(record.seq, at: record.timestamp)
                logger.debug(
                    "event.observed",
                    metadata: [
                        "event.seq": "\(record.seq)", "event.type": "\(record.type)",
                        "event.writer": "\(record.writer)",
                    ])
            }
        } catch {
            _ = try? await log.append(
                WorkerStopped(
                    role: writer.role, workerID: writer.workerID, instance: writer.instanceID.uuidString,
                    reason: "error", detail: "\(error)"))
            await log.close()
            throw error
        }
        let reason = Task.isShuttingDownGracefully ? "graceful" : "finished"
        let stopSeq = try await log.append(
            WorkerStopped(
                role: writer.role, workerID: writer.workerID, instance: writer.instanceID.uuidString, reason: reason,
                detail: nil))
        logger.info("worker.stopped", metadata: ["event.seq": "\(stopSeq)", "worker.reason": "\(reason)"])
        await log.close()
    }
}
