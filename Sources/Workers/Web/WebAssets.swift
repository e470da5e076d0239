import Crypto
import Foundation
import Hummingbird
import NIOCore

/// The chat's static files, compiled into the binary (the page works offline, with no CDN): served under
/// `/assets/<name>.<content hash>.<ext>` with a year of `immutable` caching, so a new build's files get new
/// URLs.
public struct WebAssets: Sendable {
    public struct Asset: Sendable {
        /// The file name with its content hash, e.g. `chat.3f2a…​.js`.
        public let name: String
        public let contentType: String
        public let bytes: [UInt8]

        init(base: String, ext: String, contentType: String, text: String) {
            bytes = Array(text.utf8)
            let hash = SHA256.hash(data: bytes).prefix(8).map { String(format: "%02x", $0) }.joined()
            name = "\(base).\(hash).\(ext)"
            self.contentType = contentType
        }

        /// The URL path.
        public var path: String { "/assets/\(name)" }
    }

    public let script: Asset
    public let style: Asset

    public init() {
        script = Asset(base: "chat", ext: "js", contentType: "text/javascript; charset=utf-8", text: Self.chatJS)
        style = Asset(base: "chat", ext: "css", contentType: "text/css; charset=utf-8", text: Self.chatCSS)
    }

    /// The asset named `name`, if any.
    public func asset(named name: String) -> Asset? {
        [script, style].first { $0.name == name }
    }

    func response(_ asset: Asset) -> Response {
        Response(
            status: .ok,
            headers: [
                .contentType: asset.contentType, .cacheControl: "public, max-age=31536000, immutable",
                .contentLength: "\(asset.bytes.count)",
            ],
            body: .init(byteBuffer: ByteBuffer(bytes: asset.bytes)))
    }
}
