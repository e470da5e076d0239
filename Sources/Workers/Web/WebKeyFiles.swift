import Crypto
import Foundation

/// The web chat's files under `<DATA_DIR>/web`: the generated owner token (when `WEB_PASSWORD` is not set) and
/// the key that signs session cookies. Both are created once, mode 0600, and read on later starts.
public struct WebKeyFiles: Sendable {
    /// Where the owner's secret comes from, and whether this start made it.
    public enum SecretSource: Sendable, Equatable {
        /// `WEB_PASSWORD`.
        case password
        /// The token stored at `path`, made by this start (`created`) or an earlier one.
        case tokenFile(path: String, created: Bool)
    }

    /// The owner's secret; never logged.
    public let secret: String
    public let source: SecretSource
    /// The HMAC key of session cookies, CSRF tokens and OAuth states.
    public let cookieKey: SymmetricKey

    /// Loads (or creates) the files for `settings`.
    /// - Throws: ``WebError`` when the directory or a file cannot be made or read.
    public init(settings: WebSettings) throws {
        try Self.makeDirectory(settings.directory)
        if let password = settings.password {
            secret = password
            source = .password
        } else {
            let path = settings.directory + "/owner-token"
            let (bytes, created) = try Self.readOrCreate(path, make: { Array(Self.base64URL(Self.random(32)).utf8) })
            let token = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard token.count >= 8 else {
                throw WebError(.setup, "\(path) holds no usable token; delete it to make a new one")
            }
            secret = token
            source = .tokenFile(path: path, created: created)
        }
        let keyPath = settings.directory + "/cookie-key"
        let (key, _) = try Self.readOrCreate(keyPath, make: { Self.random(32) })
        guard key.count >= 32 else {
            throw WebError(.setup, "\(keyPath) is shorter than 32 bytes; delete it to make a new one")
        }
        cookieKey = SymmetricKey(data: key)
    }

    static func random(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    static func base64URL(_ bytes: some Sequence<UInt8>) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    private static func makeDirectory(_ path: String) throws {
        var info = stat()
        if stat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFDIR else { throw WebError(.setup, "\(path) is not a directory") }
            return
        }
        guard mkdir(path, 0o700) == 0 || errno == EEXIST else {
            throw WebError(.setup, "cannot create \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// The file's bytes, or new ones written with `O_CREAT | O_EXCL` and mode 0600 (two processes starting at
    /// once agree: the second reads what the first wrote).
    private static func readOrCreate(_ path: String, make: () -> [UInt8]) throws -> ([UInt8], created: Bool) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        if fd >= 0 {
            defer { close(fd) }
            let bytes = make()
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard written == bytes.count, fsync(fd) == 0 else {
                unlink(path)
                throw WebError(.setup, "cannot write \(path): \(String(cString: strerror(errno)))")
            }
            return (bytes, true)
        }
        guard errno == EEXIST else {
            throw WebError(.setup, "cannot create \(path): \(String(cString: strerror(errno)))")
        }
        // A concurrent creator may not have written yet: a few short waits before calling it empty.
        for _ in 0..<50 {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw WebError(.setup, "cannot read \(path)")
            }
            if !data.isEmpty { return ([UInt8](data), false) }
            usleep(10_000)
        }
        throw WebError(.setup, "\(path) is empty; delete it to make a new one")
    }
}
