import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization
import Testing

/// The browser tests: one headless Chromium at a time (each is heavy on a small machine).
@Suite("Browser", .serialized)
struct BrowserTests {}

extension BrowserTests {
    /// The harness itself, against a tiny page served here: typing, clicking, Enter, text arriving over an
    /// `EventSource`, screenshots, the console, and what a timeout reports.
    @Suite("Browser harness", .timeLimit(.minutes(3)))
    struct Harness {
        @Test func typesClicksAndSeesServerSentTextArrive() async throws {
            let server = try await EchoPageServer.start()
            defer { server.stop() }
            try await withBrowser { browser in
                try await browser.open(server.url)
                try await browser.waitFor("the page's event stream to open", "body", attributes: ["data-connected"]) {
                    $0.first?.attributes["data-connected"] == "yes" ? true : nil
                }
                try await browser.screenshot("opened")

                let composer = try await browser.find("#composer")
                try await composer.sendKeys("hello <b>world</b>")
                try await browser.find("#send").click()
                let first = try await browser.waitFor("the first echo", "#log .line") { $0.first?.text }
                #expect(first == "echo: hello <b>world</b>")
                #expect(try await composer.property("value") == "")

                // Enter sends too; the echo arrives over the same stream.
                try await composer.sendKeys("second" + Keys.enter)
                let lines = try await browser.waitFor("two echoes", "#log .line") {
                    $0.count == 2 ? $0.map(\.text) : nil
                }
                #expect(lines == ["echo: hello <b>world</b>", "echo: second"])
                // Text stays text: the server's HTML-looking payload made no element.
                #expect(try await browser.findAll("#log b").isEmpty)
                #expect(server.said == ["hello <b>world</b>", "second"])

                let shot = try await browser.screenshot("echoed")
                let png = try Data(contentsOf: shot)
                #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]))
                #expect(shot.path.contains("screenshots/typesClicksAndSeesServerSentTextArrive"))

                let console = try await browser.consoleLog()
                #expect(console.contains { $0.source == "console-api" && $0.message.contains("harness page ready") })
                #expect(!console.contains { $0.isScriptProblem }, "\(console)")
                #expect(try await browser.execute("return document.title").string == "Harness")
            }
        }

        @Test func aTimeoutSaysWhatWasLastSeen() async throws {
            let server = try await EchoPageServer.start()
            defer { server.stop() }
            try await withBrowser { browser in
                try await browser.open(server.url)
                let error = await #expect(throws: BrowserError.self) {
                    try await browser.waitFor("a line that never comes", "#log .line", timeout: .seconds(1)) {
                        $0.isEmpty ? nil : true
                    }
                }
                #expect(error?.code == .timeout)
                #expect(error?.message.contains("last seen: '#log .line' → []") == true, "\(String(describing: error))")
                #expect(error?.message.contains("screenshot") == true)
            }
        }

        @Test func aFailingTestStillEndsItsBrowserAndLeavesAScreenshot() async throws {
            struct Planned: Error {}
            let seen = Mutex<(driver: String, artifacts: URL)?>(nil)
            await #expect(throws: Planned.self) {
                try await withBrowser { browser in
                    seen.withLock { $0 = (browser.driverURL, browser.artifacts) }
                    try await browser.open("data:text/html,<p id=x>about to fail</p>")
                    try await browser.waitForElement("#x")
                    throw Planned()
                }
            }
            let (driver, artifacts) = try #require(seen.withLock { $0 })
            let files = try FileManager.default.contentsOfDirectory(atPath: artifacts.path)
            #expect(files.contains { $0.hasSuffix("-failure.png") }, "\(files)")
            // ChromeDriver is gone: its port refuses connections.
            let port = try #require(driver.split(separator: ":").last.flatMap { UInt16($0) })
            #expect(!Self.accepts(port: port))
        }

        /// Whether something accepts a TCP connection on 127.0.0.1:`port` (an immediate answer either way).
        static func accepts(port: UInt16) -> Bool {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
                }
            }
        }

        @Test func aMissingChromiumFailsWithHowToInstallIt() throws {
            let error = #expect(throws: BrowserError.self) {
                try BrowserTools.locate(environment: ["PATH": "/nonexistent"])
            }
            #expect(error?.code == .chromiumMissing)
            #expect(error?.description.contains("apt-get install chromium chromium-driver") == true)
        }
    }
}

/// A page with a composer whose text the server echoes back over an `EventSource` stream.
final class EchoPageServer: Sendable {
    private struct State {
        var said: [String] = []
        var listeners: [UUID: AsyncStream<String>.Continuation] = [:]
    }

    private let state = Mutex(State())
    private let task = Mutex<Task<Void, any Error>?>(nil)
    private let portBox = Mutex(0)

    var url: String { "http://127.0.0.1:\(portBox.withLock { $0 })/" }
    var said: [String] { state.withLock { $0.said } }

    static let page = """
        <!doctype html>
        <html><head><meta charset="utf-8"><title>Harness</title>
        <style>body{font-family:sans-serif;margin:2em} .line{padding:.2em;border-bottom:1px solid #ccc}</style>
        </head><body data-connected="no">
        <div id="log"></div>
        <textarea id="composer" rows="2" cols="40"></textarea> <button id="send">Send</button>
        <script>
        const composer = document.getElementById('composer');
        async function send() {
          const text = composer.value;
          composer.value = '';
          await fetch('/say', {method: 'POST', body: text});
        }
        document.getElementById('send').addEventListener('click', send);
        composer.addEventListener('keydown', e => {
          if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); send(); }
        });
        const events = new EventSource('/events');
        events.onopen = () => { document.body.dataset.connected = 'yes'; };
        events.addEventListener('echo', e => {
          const line = document.createElement('div');
          line.className = 'line';
          line.textContent = 'echo: ' + JSON.parse(e.data).text;
          document.getElementById('log').appendChild(line);
        });
        console.log('harness page ready');
        </script></body></html>
        """

    private func say(_ text: String) {
        let listeners = state.withLock { state in
            state.said.append(text)
            return Array(state.listeners.values)
        }
        for listener in listeners { listener.yield(text) }
    }

    private func listen() -> (UUID, AsyncStream<String>) {
        let id = UUID()
        let (stream, continuation) = AsyncStream<String>.makeStream()
        state.withLock { $0.listeners[id] = continuation }
        return (id, stream)
    }

    private func forget(_ id: UUID) { _ = state.withLock { $0.listeners.removeValue(forKey: id) } }

    static func start() async throws -> EchoPageServer {
        let server = EchoPageServer()
        let router = Router()
        router.get("/") { _, _ -> Response in
            Response(
                status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: page)))
        }
        router.post("/say") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 16)
            server.say(String(buffer: body))
            return Response(status: .noContent)
        }
        router.get("/events") { _, _ -> Response in
            let (id, stream) = server.listen()
            return Response(
                status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                body: ResponseBody { writer in
                    defer { server.forget(id) }
                    try await writer.write(ByteBuffer(string: ": open\n\n"))
                    for await text in stream {
                        let data = try JSONEncoder().encode(["text": text])
                        try await writer.write(
                            ByteBuffer(string: "event: echo\ndata: \(String(decoding: data, as: UTF8.self))\n\n"))
                    }
                    try await writer.finish(nil)
                })
        }
        let (port, task) = try await startTestServer(router, name: "echo-page")
        server.portBox.withLock { $0 = port }
        server.task.withLock { $0 = task }
        return server
    }

    func stop() {
        let listeners = state.withLock { state in
            defer { state.listeners = [:] }
            return Array(state.listeners.values)
        }
        for listener in listeners { listener.finish() }
        task.withLock { $0 }?.cancel()
    }
}

/// Starts a Hummingbird app on 127.0.0.1 with a free port; returns the port and the task running it.
func startTestServer(_ router: Router<BasicRequestContext>, name: String) async throws -> (
    port: Int, task: Task<Void, any Error>
) {
    let (ports, portContinuation) = AsyncStream<Int>.makeStream()
    let app = Application(
        router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
        onServerRunning: { channel in
            portContinuation.yield(channel.localAddress?.port ?? 0)
            portContinuation.finish()
        }, logger: Logger(label: name, factory: { _ in SwiftLogNoOpLogHandler() }))
    let task = Task { try await app.runService(gracefulShutdownSignals: []) }
    let port = try await within(30, "\(name) to listen") { () -> Int in
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw TestTimeout(what: "\(name)'s port") }
        return port
    }
    return (port, task)
}
