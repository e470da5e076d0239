import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// An error starting the sidecar.
public struct SidecarError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// A child process spoken to in JSON lines: commands written to its stdin, events read from its stdout, its stderr
/// logged line by line. Spawned with `posix_spawn` (no shell); reading and writing run on threads of their own, so
/// a sidecar that stops reading can block nothing but its own writer, and `kill()` ends it at once.
public final class SidecarProcess: Sendable {
    public let pid: pid_t
    /// The stdout lines (without their `\n`), finished when the process closes its stdout.
    public let lines: AsyncStream<[UInt8]>
    private let stdinFD: Int32
    private let writer = DispatchQueue(label: "switchboard.sidecar.stdin")
    private let exit = ExitWatch()

    private final class ExitWatch: Sendable {
        struct State {
            var status: Int32?
            var waiters: [CheckedContinuation<Int32, Never>] = []
        }
        let state = Mutex(State())
    }

    /// Starts `command` (`command[0]` is looked up in `PATH` when it has no `/`) with `environment` added to this
    /// process's. Lines longer than `maxLine` bytes are dropped (and logged).
    public init(
        command: [String], environment: [String: String] = [:], maxLine: Int = SidecarProtocol.maxLineBytes,
        logger: Logger, metadata: Logger.Metadata = [:]
    ) throws(SidecarError) {
        guard let executable = command.first else { throw SidecarError(message: "no sidecar command") }
        var inPipe: [Int32] = [0, 0]
        var outPipe: [Int32] = [0, 0]
        var errPipe: [Int32] = [0, 0]
        guard pipe(&inPipe) == 0, pipe(&outPipe) == 0, pipe(&errPipe) == 0 else {
            throw SidecarError(message: "pipe: errno \(errno)")
        }
        // Not inherited by other children (the dup2 copies in this child are).
        for fd in inPipe + outPipe + errPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // The child starts with default signal handling (the agent ignores SIGPIPE; node must not).
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF))

        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        let envStrings = env.map { "\($0.key)=\($0.value)" }
        var child: pid_t = 0
        let rc = withCStrings(command) { argv in
            withCStrings(envStrings) { envp in
                executable.contains("/")
                    ? posix_spawn(&child, executable, &actions, &attributes, argv, envp)
                    : posix_spawnp(&child, executable, &actions, &attributes, argv, envp)
            }
        }
        close(inPipe[0])
        close(outPipe[1])
        close(errPipe[1])
        guard rc == 0 else {
            close(inPipe[1])
            close(outPipe[0])
            close(errPipe[0])
            throw SidecarError(message: "cannot start \(executable): \(String(cString: strerror(rc)))")
        }
        let spawned = child
        pid = spawned
        stdinFD = inPipe[1]
        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream(bufferingPolicy: .unbounded)
        lines = stream
        let stdout = outPipe[0]
        let stderr = errPipe[0]
        Self.readLines(stdout, maxLine: maxLine) { line in
            if let line { continuation.yield(line) } else { continuation.finish() }
        } overlong: {
            logger.warning("whatsapp.sidecar.line_too_long", metadata: metadata)
        }
        Self.readLines(stderr, maxLine: 16 << 10) { line in
            guard let line else { return }
            var fields = metadata
            fields["sidecar.pid"] = "\(spawned)"
            logger.info("[whatsapp] sidecar: \(String(decoding: line, as: UTF8.self))", metadata: fields)
        } overlong: {
        }
        let exit = self.exit
        Thread.detachNewThread {
            var status: Int32 = 0
            while waitpid(spawned, &status, 0) == -1 && errno == EINTR {}
            let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            let waiters = exit.state.withLock { state in
                state.status = code
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume(returning: code) }
        }
    }

    deinit {
        // After the queued writes: closing first could hand the number to another file meanwhile.
        let fd = stdinFD
        writer.async { close(fd) }
    }

    /// Writes `command` (in order with the other writes; never blocks the caller).
    public func send(_ command: SidecarCommand) {
        let bytes = SidecarProtocol.line(command)
        let fd = stdinFD
        writer.async {
            var offset = 0
            while offset < bytes.count {
                let written = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
                if written < 0 {
                    if errno == EINTR { continue }
                    return  // the sidecar is gone (EPIPE): its exit is reported by `exited`
                }
                offset += written
            }
        }
    }

    /// Closes the sidecar's stdin after the queued writes (it exits when it reads the end).
    public func closeInput() {
        let fd = stdinFD
        writer.async { shutdownWrite(fd) }
    }

    /// Ends the process at once (SIGKILL).
    public func kill() { _ = Glibc.kill(pid, SIGKILL) }

    /// Whether the process has exited.
    public var hasExited: Bool { exit.state.withLock { $0.status != nil } }

    /// The exit code (128 + signal when killed by one), once the process has exited.
    public func exited() async -> Int32 {
        await withCheckedContinuation { continuation in
            let status = exit.state.withLock { state -> Int32? in
                if let status = state.status { return status }
                state.waiters.append(continuation)
                return nil
            }
            if let status { continuation.resume(returning: status) }
        }
    }

    /// Reads `fd` on a thread of its own, passing each line to `body` and `nil` at the end.
    private static func readLines(
        _ fd: Int32, maxLine: Int, _ body: @escaping @Sendable ([UInt8]?) -> Void,
        overlong: @escaping @Sendable () -> Void
    ) {
        Thread.detachNewThread {
            var buffer = [UInt8](repeating: 0, count: 64 << 10)
            var line: [UInt8] = []
            var skipping = false
            while true {
                let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { break }
                var start = 0
                for index in 0..<count where buffer[index] == UInt8(ascii: "\n") {
                    if !skipping { line.append(contentsOf: buffer[start..<index]) }
                    if !skipping && !line.isEmpty { body(line) }
                    line.removeAll(keepingCapacity: true)
                    skipping = false
                    start = index + 1
                }
                if !skipping { line.append(contentsOf: buffer[start..<count]) }
                if line.count > maxLine {
                    line.removeAll()
                    skipping = true
                    overlong()
                }
            }
            close(fd)
            body(nil)
        }
    }
}

private func shutdownWrite(_ fd: Int32) {
    // A pipe cannot be half-closed: a duplicate keeps `deinit`'s close valid while the reader sees the end.
    let placeholder = open("/dev/null", O_WRONLY | O_CLOEXEC)
    if placeholder >= 0 {
        dup2(placeholder, fd)
        close(placeholder)
    }
}

/// Calls `body` with a NULL-terminated C array of `strings`.
private func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
    var pointers = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for pointer in pointers { free(pointer) } }
    return body(pointers)
}
