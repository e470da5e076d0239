import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// `<executable> sidecar-bridge --connect 127.0.0.1:PORT` (`switchboard-test-helper`, `bench`): stands in for the
/// WhatsApp sidecar. The agent spawns it as its
/// sidecar command; it connects to the test's fake sidecar server and relays stdin to the socket and the socket to
/// stdout, byte for byte, so the test plays the sidecar's side of the protocol. Its first line on the socket is
/// `{"bridge":<pid>}`. It exits when either side closes — as the real sidecar exits when its stdin closes — so the
/// test sees the socket close the moment the agent kills or abandons its sidecar.
public enum SidecarBridge {
    /// Connects to `target` (`HOST:PORT`) and relays until either side closes; then exits the process.
    public static func run(connect target: String) -> Never {
        guard let colon = target.lastIndex(of: ":"), let port = UInt16(target[target.index(after: colon)...]) else {
            FileHandle.standardError.write(Data("usage: sidecar-bridge --connect HOST:PORT\n".utf8))
            exit(2)
        }
        bridge(target: target, host: String(target[..<colon]), port: port)
    }
}

private func bridge(target: String, host: String, port: UInt16) -> Never {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = inet_addr(host)
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard connected == 0 else {
        FileHandle.standardError.write(Data("sidecar-bridge: cannot connect to \(target): errno \(errno)\n".utf8))
        exit(1)
    }
    writeAll(fd, Array("{\"bridge\":\(getpid())}\n".utf8))
    FileHandle.standardError.write(Data("sidecar-bridge \(getpid()) connected\n".utf8))
    Thread.detachNewThread {
        relay(from: 0, to: fd)
        shutdown(fd, Int32(SHUT_RDWR))
        exit(0)
    }
    relay(from: fd, to: 1)
    exit(0)
}

private func relay(from source: Int32, to destination: Int32) {
    var buffer = [UInt8](repeating: 0, count: 64 << 10)
    while true {
        let count = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        if count <= 0 { return }
        writeAll(destination, Array(buffer[0..<count]))
    }
}

private func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    var offset = 0
    while offset < bytes.count {
        let written = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if written < 0 && errno == EINTR { continue }
        if written <= 0 { return }
        offset += written
    }
}
