// The Switchboard agent: one process per role (AGENT_ROLE), or every role in one process (`all`).
import EventLog
import SwitchboardEvents
import Foundation
import Logging
import Projections
import ServiceLifecycle
import Workers

let version = "0.1.0-engine"

LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
    return handler
}
let logger = Logger(label: "agent")

let settings: AgentSettings
do {
    settings = try AgentSettings(environment: ProcessInfo.processInfo.environment)
} catch {
    FileHandle.standardError.write(Data("agent: invalid configuration: \(error)\n".utf8))
    exit(64)
}

var configuration = EventLogConfiguration(
    directory: settings.dataDirectory,
    writer: WriterIdentity(role: settings.role.rawValue, workerID: settings.workerID))
configuration.durability = settings.durability
let engine: Switchboard
do {
    engine = try Switchboard(
        configuration, settings: try settings.engineSettings(), sessionKeyBase64: settings.sessionKeyBase64,
        logger: logger)
} catch {
    FileHandle.standardError.write(
        Data("agent: cannot open the event log at \(settings.dataDirectory): \(error)\n".utf8))
    exit(70)
}

// The roles arrive with their issues; until then this build runs the event-log engine only, and says so.
let missing = (settings.role == .all ? [AgentRole.core, .whatsapp, .telegram, .web] : [settings.role]).map(\.rawValue)
logger.warning(
    "agent.roles.not_built",
    metadata: [
        "roles": "\(missing.joined(separator: ","))",
        "detail": "this build runs the event-log engine only; the role workers are not built yet",
    ])
let service = EngineService(log: engine.log, settings: settings, version: version, logger: logger)
// Shut down in reverse order: the snapshot service stops before the engine closes the log.
var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: service)]
if settings.snapshotEvery > 0 {
    services.append(
        .init(
            service: SnapshotService(
                log: engine.log, every: settings.snapshotEvery, keep: settings.snapshotKeep, logger: logger)))
}
let group = ServiceGroup(
    configuration: ServiceGroupConfiguration(
        services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
logger.info(
    "[main] Agent is running (role: \(settings.role.rawValue))", metadata: ["worker.id": "\(settings.workerID)"])
try await group.run()
