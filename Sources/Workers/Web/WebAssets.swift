import Crypto
import Foundation
import Hummingbird
import NIOCore

/// The chat's static files, compiled into the binary (the page works offline, with no CDN): served under
/// `/assets/<name>.<content hash>.<ext>` with a year of `immutable` caching, so a new build's files get new
/// URLs.
///
/// The files are under `Assets/`, embedded by SwiftPM (`.embedInCode` in Package.swift; the generated
/// `PackageResources.<file>_<ext>` are their bytes). The script is plain JavaScript, no build step, no external
/// code, served as one file made of these in order: `markdown.js` (renders Markdown as ``Markdown`` does, every
/// character of model text escaped before markup is added), `highlight.js` (`SBHighlight`: syntax highlighting of
/// code blocks, client-side only — spans around tokens, every character escaped as `markdown.js` does), `tree.js`
/// (`ChatTree`: which branch and reply versions are shown, as ``ThreadLayout`` computes it), `thread.js` (folds the
/// events as ``ThreadFold`` folds the log, and renders the thread), `controls.js` (`ChatSidebar`: the live list,
/// search, Rename, Delete) and `chat.js` (the composer, the EventSource connection, the buttons, Stop, Edit). The
/// Markdown, the fold and the layout exist on both sides; docs/web.md ("The code") says which tests compare them.
public struct WebAssets: Sendable {
    public struct Asset: Sendable {
        /// The file name with its content hash, e.g. `chat.3f2a…​.js`.
        public let name: String
        public let contentType: String
        public let bytes: [UInt8]

        init(base: String, ext: String, contentType: String, bytes: [UInt8]) {
            self.bytes = bytes
            let hash = SHA256.hash(data: bytes).prefix(8).map { String(format: "%02x", $0) }.joined()
            name = "\(base).\(hash).\(ext)"
            self.contentType = contentType
        }

        /// The URL path.
        public var path: String { "/assets/\(name)" }
    }

    public let script: Asset
    public let style: Asset
    /// The tab's icon.
    public let icon: Asset

    public init() {
        script = Asset(
            base: "chat", ext: "js", contentType: "text/javascript; charset=utf-8",
            bytes: Self.scriptParts.joined(separator: Array("\n".utf8)).map { $0 })
        style = Asset(
            base: "chat", ext: "css", contentType: "text/css; charset=utf-8", bytes: PackageResources.chat_css)
        icon = Asset(base: "icon", ext: "svg", contentType: "image/svg+xml", bytes: PackageResources.icon_svg)
    }

    /// The script's files, in the order they are served in one script.
    static let scriptParts: [[UInt8]] = [
        PackageResources.markdown_js, PackageResources.highlight_js, PackageResources.tree_js,
        PackageResources.thread_js, PackageResources.controls_js, PackageResources.chat_js,
    ]

    /// The asset named `name`, if any.
    public func asset(named name: String) -> Asset? {
        [script, style, icon].first { $0.name == name }
    }

    /// `GET /assets/<name>`: the file, or 404; `GET /favicon.ico` (what a browser asks for when a page names no
    /// icon, and some ask anyway): the icon.
    func addRoutes(to group: RouterGroup<WebRequestContext>) {
        group.get("favicon.ico") { _, _ in response(icon) }
        group.get("assets/:name") { _, context in
            guard let name = context.parameters.get("name"), let asset = asset(named: name) else {
                return Response(status: .notFound)
            }
            return response(asset)
        }
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
