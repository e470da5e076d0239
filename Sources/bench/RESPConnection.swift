import ArgumentParser
import EventLog
import Foundation
import Projections
import Synchronization

/// A Redis connection over a loopback TCP socket: blocking one command at a time (`call`), or non-blocking
/// (`send`, `receiveAvailable`, `next`) for the event loop. Replies are parsed from a buffer.
final class RESPConnection {
    let descriptor: Int32
    private var buffer = [UInt8](repeating: 0, count: 16 * 1024)
    private var start = 0
    private var end = 0

    init(port: UInt16) throws {
        descriptor = socket(AF_INET, socketStream, 0)
        guard descriptor >= 0 else { throw BenchError("socket: errno \(errno)") }
        var address = loopbackAddress(port: port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            let code = errno
            closeDescriptor(descriptor)
            throw BenchError("connect to 127.0.0.1:\(port): errno \(code)")
        }
        var one: Int32 = 1
        setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    func close() { closeDescriptor(descriptor) }

    func setNonBlocking() throws {
        let flags = fcntl(descriptor, F_GETFL)
        guard flags >= 0, fcntl(descriptor, F_SETFL, flags | O_NONBLOCK) == 0 else {
            throw BenchError("fcntl: errno \(errno)")
        }
    }

    static func encode(_ arguments: [[UInt8]]) -> [UInt8] {
        var bytes = Array("*\(arguments.count)\r\n".utf8)
        for argument in arguments {
            bytes += Array("$\(argument.count)\r\n".utf8)
            bytes += argument
            bytes += [13, 10]
        }
        return bytes
    }

    func call(_ arguments: [String]) throws -> RESP {
        try call(encoded: RESPConnection.encode(arguments.map { Array($0.utf8) }))
    }

    /// Sends a command and waits for its reply (blocking socket).
    func call(encoded: [UInt8]) throws -> RESP {
        try send(encoded)
        while true {
            if let reply = try next() { return reply }
            guard try receive() else { throw BenchError("redis closed the connection") }
        }
    }

    /// Writes a whole command (a few hundred bytes: the socket buffer takes it at once, blocking or not).
    func send(_ encoded: [UInt8]) throws {
        var sent = 0
        while sent < encoded.count {
            let n = encoded.withUnsafeBytes { write(descriptor, $0.baseAddress! + sent, $0.count - sent) }
            guard n > 0 else { throw BenchError("write: errno \(errno)") }
            sent += n
        }
    }

    /// One read of what the socket has (non-blocking socket) into the buffer: poll reports it again if more is left.
    func receiveAvailable() throws {
        try receive()
    }

    /// One read into the buffer; false at would-block, throws at end of stream or an error.
    @discardableResult
    private func receive() throws -> Bool {
        if start == end {
            start = 0
            end = 0
        } else if end == buffer.count {
            if start > 0 {
                buffer.replaceSubrange(0..<(end - start), with: buffer[start..<end])
                end -= start
                start = 0
            } else {
                buffer += [UInt8](repeating: 0, count: buffer.count)
            }
        }
        let n = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress! + end, $0.count - end) }
        if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return false }
        guard n > 0 else { throw BenchError(n == 0 ? "redis closed the connection" : "read: errno \(errno)") }
        end += n
        return true
    }

    /// The next complete reply in the buffer, consumed; nil if it has not all arrived.
    func next() throws -> RESP? {
        var cursor = start
        guard let reply = try value(&cursor) else { return nil }
        start = cursor
        if case .error(let message) = reply { throw BenchError("redis: \(message)") }
        return reply
    }

    /// The bytes from `cursor` up to the next CRLF, nil if there is none yet; `cursor` moves past the CRLF.
    private func line(_ cursor: inout Int) -> ArraySlice<UInt8>? {
        var scanned = cursor
        while scanned + 1 < end {
            if buffer[scanned] == 13 && buffer[scanned + 1] == 10 {
                let line = buffer[cursor..<scanned]
                cursor = scanned + 2
                return line
            }
            scanned += 1
        }
        return nil
    }

    private func value(_ cursor: inout Int) throws -> RESP? {
        guard let header = line(&cursor) else { return nil }
        guard let kind = header.first else { throw BenchError("empty RESP line") }
        let text = String(decoding: header.dropFirst(), as: UTF8.self)
        switch kind {
        case UInt8(ascii: "+"): return .simple(text)
        case UInt8(ascii: "-"): return .error(text)
        case UInt8(ascii: ":"):
            guard let number = Int(text) else { throw BenchError("bad RESP integer \(text)") }
            return .integer(number)
        case UInt8(ascii: "$"):
            guard let length = Int(text) else { throw BenchError("bad RESP length \(text)") }
            if length < 0 { return .bulk(nil) }
            guard end - cursor >= length + 2 else { return nil }
            let bytes = Array(buffer[cursor..<(cursor + length)])
            cursor += length + 2
            return .bulk(bytes)
        case UInt8(ascii: "*"):
            guard let count = Int(text) else { throw BenchError("bad RESP count \(text)") }
            if count < 0 { return .array(nil) }
            var items: [RESP] = []
            items.reserveCapacity(count)
            for _ in 0..<count {
                guard let item = try value(&cursor) else { return nil }
                items.append(item)
            }
            return .array(items)
        default:
            throw BenchError("unknown RESP type \(kind)")
        }
    }
}
