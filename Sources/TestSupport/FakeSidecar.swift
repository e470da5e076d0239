import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The test's (or the bench's) side of the WhatsApp sidecar protocol. The agent runs `switchboard-test-helper sidecar-bridge` as its
/// sidecar (``command``); each bridge connects here, so each accepted connection is one sidecar process the agent
/// started, and its close is that process ending. The test reads the agent's commands and writes events, speaking
/// the documented protocol (docs/channels.md) exactly as the Node sidecar does.
public final class FakeSidecarServer: Sendable {
    public let port: UInt16
    private let listener: Int32
    private let accepted = WaitQueue<FakeSidecar>()
    /// Every sidecar connected so far, in order.
    public let all = Locked<[FakeSidecar]>([])

    public init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        listener = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var size = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, size) == 0 && listen(fd, 16) == 0 && getsockname(fd, pointer, &size) == 0
            }
        }
        guard bound else { throw FakeSidecarError("fake sidecar server: bind failed, errno \(errno)") }
        port = UInt16(bigEndian: address.sin_port)
        let listener = self.listener
        let all = self.all
        let accepted = self.accepted
        Thread.detachNewThread {
            while true {
                let fd = accept(listener, nil, nil)
                if fd < 0 {
                    if errno == EINTR { continue }
                    break
                }
                let sidecar = FakeSidecar(fd: fd)
                all.value.withLock { $0.append(sidecar) }
                accepted.put(sidecar)
            }
            accepted.finish()
        }
    }

    deinit { stop() }

    public func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    /// The agent's sidecar command line: `executable sidecar-bridge --connect 127.0.0.1:<port>` (an executable
    /// whose `sidecar-bridge` subcommand runs ``SidecarBridge/run(connect:)``).
    public func command(executable: String) -> String {
        executable + " sidecar-bridge --connect 127.0.0.1:\(port)"
    }

    /// The next sidecar the agent starts.
    public func next(within seconds: Double = 15) async throws -> FakeSidecar {
        let accepted = self.accepted
        let sidecar = try await deadline(seconds, "a sidecar to connect") { await accepted.next() }
        guard let sidecar else { throw FakeSidecarError("the fake sidecar server stopped") }
        _ = try await sidecar.pid()
        return sidecar
    }
}

/// One sidecar process as the test sees it.
public final class FakeSidecar: Sendable {
    private let fd: Int32
    private let lines = WaitQueue<String>()
    private let bridgePID = Mutex<Int32?>(nil)
    private let closedFlag = Locked(false)
    /// Every line received so far (the commands, as JSON text).
    public let received = Locked<[String]>([])

    init(fd: Int32) {
        self.fd = fd
        let lines = self.lines
        let closedFlag = self.closedFlag
        Thread.detachNewThread {
            var pending: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 64 << 10)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { break }
                pending.append(contentsOf: buffer[0..<count])
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    lines.put(String(decoding: pending[..<newline], as: UTF8.self))
                    pending.removeSubrange(...newline)
                }
            }
            closedFlag.value.withLock { $0 = true }
            lines.finish()
        }
    }

    deinit { close(fd) }

    /// The bridge process's pid (its first line).
    public func pid() async throws -> Int32 {
        if let pid = bridgePID.withLock({ $0 }) { return pid }
        guard let line = try await nextLine(within: 10), line.hasPrefix("{\"bridge\":"),
            let pid = Int32(line.dropFirst(10).prefix { $0.isNumber })
        else { throw FakeSidecarError("the bridge's hello") }
        bridgePID.withLock { $0 = pid }
        return pid
    }

    /// Writes one line (an event, as JSON text) as the sidecar would.
    public func emit(line: String) {
        var bytes = Array(line.utf8)
        bytes.append(UInt8(ascii: "\n"))
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written <= 0 { return }
            offset += written
        }
    }

    /// Writes `event` encoded as JSON (sorted keys) as one line.
    public func emit(encoding event: some Encodable) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        emit(line: (try? encoder.encode(event)).map { String(decoding: $0, as: UTF8.self) } ?? "{}")
    }

    /// The agent's next command line, or an error when none comes within `seconds` or the pipe closed.
    public func commandLine(within seconds: Double = 10) async throws -> String {
        guard let line = try await nextLine(within: seconds) else {
            throw FakeSidecarError("a command from the agent (the sidecar's stdin closed)")
        }
        received.value.withLock { $0.append(line) }
        return line
    }

    /// Waits until the sidecar process is gone (its connection closed); the commands read meanwhile are kept.
    public func closed(within seconds: Double = 10) async throws {
        while let line = try await nextLine(within: seconds) { received.value.withLock { $0.append(line) } }
    }

    /// Ends the connection from this side: the bridge exits, as a sidecar that exits by itself (after `logout`).
    public func hangUp() { shutdown(fd, Int32(SHUT_RDWR)) }

    public var isClosed: Bool { closedFlag.value.withLock { $0 } }

    private func nextLine(within seconds: Double) async throws -> String? {
        let lines = self.lines
        return try await deadline(seconds, "a line from the agent's sidecar pipe") { () -> String?? in
            .some(await lines.next())
        } ?? nil
    }
}

/// A queue one task waits on: `next()` returns the oldest item, waiting for one; `nil` once finished and empty.
public final class WaitQueue<Item: Sendable>: Sendable {
    private struct State {
        var items: [Item] = []
        var finished = false
        var waiter: CheckedContinuation<Item?, Never>?
    }

    private let state = Mutex(State())

    public init() {}

    public func put(_ item: Item) {
        let waiter = state.withLock { state -> CheckedContinuation<Item?, Never>? in
            guard let waiter = state.waiter else {
                state.items.append(item)
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume(returning: item)
    }

    public func finish() {
        let waiter = state.withLock { state -> CheckedContinuation<Item?, Never>? in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }

    public func next() async -> Item? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Item?, Never>) in
                let now = state.withLock { state -> Item?? in
                    if !state.items.isEmpty { return .some(state.items.removeFirst()) }
                    if state.finished || Task.isCancelled { return .some(nil) }
                    state.waiter = continuation
                    return .none
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(returning: nil)
        }
    }
}

/// A value behind a lock, shareable between threads (a `Mutex` cannot be copied into a closure).
public final class Locked<Value: Sendable>: Sendable {
    public let value: Mutex<Value>
    public init(_ value: Value) { self.value = Mutex(value) }
}

/// A fake sidecar's failure (a timeout, a closed pipe).
public struct FakeSidecarError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// `body`'s result, or ``FakeSidecarError`` when `seconds` pass first (`body` is cancelled).
func deadline<T: Sendable>(_ seconds: Double, _ what: String, _ body: @escaping @Sendable () async -> T) async throws
    -> T
{
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { await body() }
        group.addTask {
            try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw FakeSidecarError("timed out after \(seconds) s waiting for \(what)")
        }
        return value
    }
}
