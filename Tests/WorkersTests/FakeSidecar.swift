import Foundation
import Synchronization
import SwitchboardJSON
import TestSupport
import Workers

#if canImport(Glibc)
    import Glibc
#endif

/// The test's side of the WhatsApp sidecar protocol. The agent runs `switchboard-test-helper sidecar-bridge` as its
/// sidecar (``command``); each bridge connects here, so each accepted connection is one sidecar process the agent
/// started, and its close is that process ending. The test reads the agent's commands and writes events, speaking
/// the documented protocol (docs/channels.md) exactly as the Node sidecar does.
final class FakeSidecarServer: Sendable {
    let port: UInt16
    private let listener: Int32
    private let accepted = WaitQueue<FakeSidecar>()
    /// Every sidecar connected so far, in order.
    let all = Locked<[FakeSidecar]>([])

    init() throws {
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
        guard bound else { throw TestTimeout(what: "fake sidecar server: bind failed, errno \(errno)") }
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

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    /// The agent's sidecar command line.
    var command: String {
        SpawnedProcess.buildDirectory.appendingPathComponent("switchboard-test-helper").path
            + " sidecar-bridge --connect 127.0.0.1:\(port)"
    }

    /// The next sidecar the agent starts.
    func next(within seconds: Double = 15) async throws -> FakeSidecar {
        let accepted = self.accepted
        let sidecar = try await within(seconds, "a sidecar to connect") { await accepted.next() }
        guard let sidecar else { throw TestTimeout(what: "the fake sidecar server stopped") }
        _ = try await sidecar.pid()
        return sidecar
    }
}

/// One sidecar process as the test sees it.
final class FakeSidecar: Sendable {
    private let fd: Int32
    private let lines = WaitQueue<String>()
    private let bridgePID = Mutex<Int32?>(nil)
    private let closedFlag = Locked(false)
    /// Every command received so far.
    let received = Locked<[JSONValue]>([])

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
    func pid() async throws -> Int32 {
        if let pid = bridgePID.withLock({ $0 }) { return pid }
        guard let line = try await nextLine(within: 10), let json = JSONValue(parsing: line),
            let pid = json["bridge"]?.doubleValue
        else { throw TestTimeout(what: "the bridge's hello") }
        bridgePID.withLock { $0 = Int32(pid) }
        return Int32(pid)
    }

    /// Writes `event` as the sidecar would.
    func emit(_ event: SidecarEvent) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var bytes = [UInt8]((try? encoder.encode(event)) ?? Data())
        bytes.append(UInt8(ascii: "\n"))
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written <= 0 { return }
            offset += written
        }
    }

    /// The next command of the agent (its JSON), or a timeout error.
    func command(within seconds: Double = 10) async throws -> JSONValue {
        guard let line = try await nextLine(within: seconds) else {
            throw TestTimeout(what: "a command from the agent (the sidecar's stdin closed)")
        }
        guard let json = JSONValue(parsing: line) else { throw TestTimeout(what: "a JSON command, got \(line)") }
        received.value.withLock { $0.append(json) }
        return json
    }

    /// Reads commands until one of `type`; returns it.
    func command(_ type: String, within seconds: Double = 10) async throws -> JSONValue {
        while true {
            let command = try await command(within: seconds)
            if command["type"]?.stringValue == type { return command }
        }
    }

    /// Waits until the sidecar process is gone (its connection closed); the commands read meanwhile are kept.
    func closed(within seconds: Double = 10) async throws {
        while let line = try await nextLine(within: seconds) {
            if let json = JSONValue(parsing: line) { received.value.withLock { $0.append(json) } }
        }
    }

    var isClosed: Bool { closedFlag.value.withLock { $0 } }

    private func nextLine(within seconds: Double) async throws -> String? {
        let lines = self.lines
        return try await within(seconds, "a line from the agent's sidecar pipe") { () -> String?? in
            .some(await lines.next())
        } ?? nil
    }
}

/// A queue one task waits on: `next()` returns the oldest item, waiting for one; `nil` once finished and empty.
final class WaitQueue<Item: Sendable>: Sendable {
    private struct State {
        var items: [Item] = []
        var finished = false
        var waiter: CheckedContinuation<Item?, Never>?
    }

    private let state = Mutex(State())

    func put(_ item: Item) {
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

    func finish() {
        let waiter = state.withLock { state -> CheckedContinuation<Item?, Never>? in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }

    func next() async -> Item? {
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
final class Locked<Value: Sendable>: Sendable {
    let value: Mutex<Value>
    init(_ value: Value) { self.value = Mutex(value) }
}
