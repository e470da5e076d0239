import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The local model server's state, for `/healthz`, the status page and the startup lines.
public final class ModelHealth: Sendable {
    public enum State: String, Codable, Sendable {
        /// Started, loading the model; not answering yet.
        case starting
        /// Its `/health` answered 200.
        case healthy
        /// It exited or never became healthy; restarting after a backoff.
        case restarting
        /// Stopped with the agent.
        case stopped
    }

    public struct Snapshot: Codable, Sendable, Equatable {
        public var state: State
        /// Which model it serves (a name for people).
        public var model: String
        /// The OpenAI-compatible API root it serves on.
        public var baseURL: String
        /// The child's process id while it runs.
        public var pid: Int32?
        /// Restarts since the agent started.
        public var restarts: Int
        public var lastError: String?
    }

    private struct Waiter {
        var id: UInt64
        var predicate: @Sendable (Snapshot) -> Bool
        var continuation: CheckedContinuation<Snapshot, Never>
    }

    private struct Guarded {
        var snapshot: Snapshot
        var waiters: [Waiter]
        var nextWaiter: UInt64 = 0
        /// Waiters cancelled before they were registered.
        var cancelled: Set<UInt64> = []
    }

    private let state: Mutex<Guarded>

    public init(model: String, baseURL: String) {
        state = Mutex(
            Guarded(
                snapshot: Snapshot(
                    state: .starting, model: model, baseURL: baseURL, pid: nil, restarts: 0, lastError: nil),
                waiters: []))
    }

    public var snapshot: Snapshot { state.withLock { $0.snapshot } }

    /// Waits until the state satisfies `predicate` (at once when it does now); returns that state. A cancelled
    /// wait returns the state as it is then, which the caller checks.
    public func wait(until predicate: @escaping @Sendable (Snapshot) -> Bool) async -> Snapshot {
        let id = state.withLock { guarded in
            defer { guarded.nextWaiter += 1 }
            return guarded.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let ready: Snapshot? = state.withLock { guarded in
                    let cancelled = guarded.cancelled.remove(id) != nil
                    if cancelled || predicate(guarded.snapshot) { return guarded.snapshot }
                    guarded.waiters.append(Waiter(id: id, predicate: predicate, continuation: continuation))
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            let (waiter, snapshot): (Waiter?, Snapshot) = state.withLock { guarded in
                guard let index = guarded.waiters.firstIndex(where: { $0.id == id }) else {
                    guarded.cancelled.insert(id)
                    return (nil, guarded.snapshot)
                }
                return (guarded.waiters.remove(at: index), guarded.snapshot)
            }
            waiter?.continuation.resume(returning: snapshot)
        }
    }

    func update(_ body: (inout Snapshot) -> Void) {
        let (snapshot, ready) = state.withLock { guarded in
            body(&guarded.snapshot)
            let snapshot = guarded.snapshot
            var ready: [CheckedContinuation<Snapshot, Never>] = []
            guarded.waiters.removeAll { waiter in
                guard waiter.predicate(snapshot) else { return false }
                ready.append(waiter.continuation)
                return true
            }
            return (snapshot, ready)
        }
        for continuation in ready { continuation.resume(returning: snapshot) }
    }
}

/// Runs the local model server (`scripts/llm-server.py` in the model's virtual environment) as a child process on
/// a loopback port: waits for its `/health`, restarts it with backoff when it exits, and stops it (SIGTERM, then
/// SIGKILL after a grace period) on graceful shutdown. The agent talks to it only over its OpenAI-compatible HTTP
/// API, as to any provider; while it restarts, provider calls fail as network errors and jobs retry.
public final class ModelSupervisor: Service, Sendable {
    public let settings: LocalModelSettings
    /// The GGUF served.
    public let modelPath: String
    /// The name the API reports (the bundled model's name, or the GGUF's file name).
    public let modelName: String
    public let launcher: String
    public let port: Int
    public let health: ModelHealth
    let httpClient: HTTPClient
    let logger: Logger
    /// How long a start may take before it counts as failed (loading a model on a busy machine is slow).
    let startupTimeout: Duration
    private let child = Mutex<Int32?>(nil)
    private let stopping = Mutex(false)

    /// The API root the core's provider uses.
    public var baseURL: String { "http://127.0.0.1:\(port)/v1" }

    public init(
        settings: LocalModelSettings, modelPath: String, modelName: String, launcher: String, port: Int,
        httpClient: HTTPClient, startupTimeout: Duration = .seconds(180), logger: Logger
    ) {
        self.settings = settings
        self.modelPath = modelPath
        self.modelName = modelName
        self.launcher = launcher
        self.port = port
        self.httpClient = httpClient
        self.startupTimeout = startupTimeout
        self.logger = logger
        self.health = ModelHealth(model: modelName, baseURL: "http://127.0.0.1:\(port)/v1")
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            await supervise()
        } onGracefulShutdown: {
            self.stopping.withLock { $0 = true }
            guard let pid = self.child.withLock({ $0 }) else { return }
            kill(pid, SIGTERM)
            // A child that ignores SIGTERM is killed after a grace period.
            Task {
                try? await Task.sleep(for: .seconds(5))
                if self.child.withLock({ $0 }) == pid { kill(pid, SIGKILL) }
            }
        }
        health.update { $0.state = .stopped }
    }

    private var isStopping: Bool { stopping.withLock { $0 } || Task.isCancelled }

    private func supervise() async {
        var failures = 0
        while !isStopping {
            let exited: AsyncStream<Int32>
            let pid: Int32
            do {
                (pid, exited) = try spawn()
            } catch {
                health.update {
                    $0.state = .restarting
                    $0.lastError = "\(error)"
                }
                logger.error("model.start.failed", metadata: ["error": "\(error)"])
                failures += 1
                await backoff(failures)
                continue
            }
            health.update {
                $0.state = .starting
                $0.pid = pid
            }
            logger.info("[model] Starting the local model server", metadata: ["model.pid": "\(pid)"])
            let status = await watch(pid: pid, exited: exited)
            child.withLock { $0 = nil }
            if isStopping { break }
            failures += 1
            health.update {
                $0.state = .restarting
                $0.pid = nil
                $0.restarts += 1
                $0.lastError = "exited with status \(status)"
            }
            logger.warning(
                "[model] Local model server exited; restarting", metadata: ["model.status": "\(status)"])
            await backoff(failures)
        }
    }

    /// Waits for the child to become healthy and then to exit; returns its exit status. Kills a child that does
    /// not become healthy within ``startupTimeout``.
    private func watch(pid: Int32, exited: AsyncStream<Int32>) async -> Int32 {
        await withTaskGroup(of: Int32?.self) { group in
            group.addTask {
                for await status in exited { return status }
                return -1
            }
            group.addTask {
                if await self.waitHealthy() {
                    self.health.update {
                        $0.state = .healthy
                        $0.lastError = nil
                    }
                    self.logger.info(
                        "[model] Local model ready: \(self.modelName) at \(self.baseURL)",
                        metadata: ["model.pid": "\(pid)"])
                } else if !self.isStopping {
                    self.logger.error("model.unhealthy", metadata: ["model.pid": "\(pid)"])
                    kill(pid, SIGKILL)
                }
                return nil
            }
            var status: Int32 = -1
            for await result in group {
                if let result {
                    status = result
                    break
                }
            }
            group.cancelAll()
            return status
        }
    }

    /// Polls `/health` until it answers 200 (the child has no other way to say it is ready).
    private func waitHealthy() async -> Bool {
        let deadline = ContinuousClock.now + startupTimeout
        while ContinuousClock.now < deadline, !isStopping {
            if child.withLock({ $0 }) == nil { return false }
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/health")
            request.method = .GET
            if let response = try? await httpClient.execute(request, timeout: .seconds(2)), response.status == .ok {
                return true
            }
            try? await Task.sleep(for: .milliseconds(250))
        }
        return false
    }

    /// Waits 1, 2, 4 … 30 s after consecutive failures; a graceful shutdown ends the wait.
    private func backoff(_ failures: Int) async {
        let seconds = min(30, 1 << min(failures - 1, 5))
        try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(seconds)) }
    }

    /// Starts the launcher with the virtual environment's interpreter; its exit status arrives on the stream.
    private func spawn() throws -> (Int32, AsyncStream<Int32>) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: settings.venvPython)
        process.arguments =
            [
                launcher, "--model", modelPath, "--port", "\(port)", "--host", "127.0.0.1", "--ctx",
                "\(settings.contextTokens)", "--alias", modelName, "--parent", "\(getpid())",
            ] + (settings.threads > 0 ? ["--threads", "\(settings.threads)"] : [])
        let logFile = settings.home + "/server.log"
        _ = FileManager.default.createFile(atPath: logFile, contents: nil)
        let log = FileHandle(forWritingAtPath: logFile)
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        let (stream, continuation) = AsyncStream<Int32>.makeStream()
        process.terminationHandler = { process in
            continuation.yield(process.terminationStatus)
            continuation.finish()
        }
        try process.run()
        let pid = process.processIdentifier
        child.withLock { $0 = pid }
        return (pid, stream)
    }

    /// A free TCP port on 127.0.0.1 (bound and released; the child binds it next).
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LocalModelError(.notHealthy, "cannot open a socket (errno \(errno))") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else { throw LocalModelError(.notHealthy, "cannot bind a loopback port (errno \(errno))") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw LocalModelError(.notHealthy, "getsockname failed (errno \(errno))") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
