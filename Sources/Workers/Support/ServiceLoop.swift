import Logging
import ServiceLifecycle

/// The run skeleton every long-running loop of an agent shares: its helpers (a follower of the log tail, a side
/// lane) run beside the loop as child tasks; a graceful shutdown (SIGTERM, SIGINT) sets `stopping`, runs
/// `onShutdown` and rings `wakeup`, so the loop finishes what it is doing and returns; then the helpers are
/// cancelled. Structured all the way: nothing outlives `run`.
struct ServiceLoop: Sendable {
    /// A task that runs beside the loop until the loop returns.
    struct Helper: Sendable {
        /// Names the helper in the log when it fails (`service.helper`).
        var name: String
        var body: @Sendable () async throws -> Void
    }

    let stopping: Flag
    let wakeup: Wakeup
    let logger: Logger

    func run(
        beside helpers: [Helper] = [], onShutdown: @escaping @Sendable () -> Void = {},
        _ loop: @escaping @Sendable () async -> Void
    ) async {
        await withTaskGroup(of: Void.self) { group in
            for helper in helpers {
                group.addTask {
                    do {
                        try await helper.body()
                    } catch is CancellationError {
                        return
                    } catch {
                        logger.error(
                            "service.helper.failed",
                            metadata: ["service.helper": "\(helper.name)", "error": "\(error)"])
                    }
                }
            }
            await withGracefulShutdownHandler {
                await loop()
            } onGracefulShutdown: {
                stopping.set()
                onShutdown()
                wakeup.signal()
            }
            group.cancelAll()
        }
    }
}
