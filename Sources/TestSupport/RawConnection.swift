import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A TCP connection to 127.0.0.1 driven byte by byte, for hostile HTTP clients (the tests and `bench
/// webhook-abuse`): half-sent bodies, heads that never end, connections never closed by the client.
public final class RawConnection: @unchecked Sendable {  // @unchecked: used by one task at a time.
    public let fd: Int32
    public private(set) var isClosed = false
    /// Whether the server ended the connection (EOF or a reset), as seen by ``awaitClosed(_:until:)``.
    public private(set) var closedByServer = false
    private var received: [UInt8] = []

    /// Connects (blocking) and makes the socket non-blocking.
    public init(port: Int) throws {
        #if canImport(Glibc)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
            let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw RawConnectionError(what: "socket", errno: errno) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            let code = errno
            Glibc.close(fd)
            throw RawConnectionError(what: "connect", errno: code)
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        self.fd = fd
    }

    deinit { close() }

    /// Writes as much of `bytes` as the socket takes now; returns how much that was (0 once the peer is gone).
    @discardableResult
    public func send(_ bytes: [UInt8]) -> Int {
        guard !isClosed else { return 0 }
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if written <= 0 { break }
            offset += written
        }
        return offset
    }

    /// Writes `text`'s UTF-8 as far as the socket takes it now.
    @discardableResult
    public func send(_ text: String) -> Int { send(Array(text.utf8)) }

    /// Reads until the response's status line has arrived, or `deadline`; returns its status code.
    public func readStatus(until deadline: ContinuousClock.Instant) -> Int? {
        var open = !isClosed
        while true {
            if let end = received.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: received[..<end], as: UTF8.self)
                let parts = line.split(separator: " ")
                return parts.count >= 2 ? Int(parts[1]) : nil
            }
            guard open, wait(events: Int16(POLLIN), until: deadline) else { return nil }
            open = readAvailable()
        }
    }

    /// Everything read so far, as text.
    public var receivedText: String { String(decoding: received, as: UTF8.self) }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        Glibc.close(fd)
    }

    /// Waits until the server has ended every connection in `connections` (each read to EOF or a reset, the
    /// data read discarded), or `deadline`; returns how many it ended. The client's side stays open (an attacker
    /// need not close it): ``close()`` it when done.
    public static func awaitClosed(_ connections: [RawConnection], until deadline: ContinuousClock.Instant) -> Int {
        var open = connections.filter { !$0.isClosed && !$0.closedByServer }
        while !open.isEmpty {
            let left = deadline - .now
            guard left > .zero else { break }
            var fds = open.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&fds, nfds_t(fds.count), Int32(min(left.components.seconds * 1000 + 1, 1000)))
            guard ready > 0 else { continue }
            for (index, entry) in fds.enumerated() where entry.revents != 0 {
                let connection = open[index]
                if !connection.readAvailable(keep: false) { connection.closedByServer = true }
            }
            open.removeAll { $0.closedByServer }
        }
        return connections.filter(\.closedByServer).count
    }

    /// Reads what is there; `false` at EOF or an error other than "try again".
    private func readAvailable(keep: Bool = true) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                if keep { received += buffer[..<count] }
                continue
            }
            if count == 0 { return false }
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR
        }
    }

    private func wait(events: Int16, until deadline: ContinuousClock.Instant) -> Bool {
        let left = deadline - .now
        guard left > .zero else { return false }
        var entry = pollfd(fd: fd, events: events, revents: 0)
        let milliseconds = Int32(
            min(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1, 60_000))
        return poll(&entry, 1, milliseconds) > 0
    }
}

/// A socket call that failed.
public struct RawConnectionError: Error, CustomStringConvertible {
    public var what: String
    public var errno: Int32
    public var description: String { "\(what) failed: \(String(cString: strerror(errno)))" }
}

/// Process figures read from `/proc/<pid>`: open file descriptors and resident memory.
public struct ProcessFigures: Sendable, Equatable, Codable {
    public var fileDescriptors: Int
    public var residentKiB: Int

    public static func of(_ pid: Int32) throws -> ProcessFigures {
        let fds = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        let rss =
            status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
            .flatMap { $0.split(separator: " ").dropFirst().first.flatMap { Int($0) } } ?? 0
        return ProcessFigures(fileDescriptors: fds, residentKiB: rss)
    }
}
