import AsyncHTTPClient
import Foundation
import NIOCore
import Synchronization

// A small W3C WebDriver client for the browser tests: ChromeDriver as a child process, one headless Chromium
// session, and the few commands the web chat's tests need. Test code, not part of the product.

/// A failure of the browser harness (not of the page under test, which `#expect` reports).
struct BrowserError: Error, CustomStringConvertible {
    enum Code: String, Sendable {
        /// Chromium or ChromeDriver is not installed.
        case chromiumMissing = "chromium_missing"
        /// ChromeDriver did not start or did not become ready.
        case driverStart = "driver_start"
        /// A WebDriver command answered an error.
        case webDriver = "webdriver"
        /// A condition did not hold before its deadline.
        case timeout
    }

    var code: Code
    var message: String

    var description: String { "browser \(code.rawValue): \(message)" }
}

/// A JSON value as WebDriver sends and receives it.
enum WebValue: Codable, Sendable, Equatable, CustomStringConvertible, ExpressibleByStringLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByDictionaryLiteral, ExpressibleByArrayLiteral
{
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([WebValue])
    case object([String: WebValue])

    init(stringLiteral value: String) { self = .string(value) }
    init(booleanLiteral value: Bool) { self = .bool(value) }
    init(dictionaryLiteral elements: (String, WebValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { $1 }))
    }
    init(arrayLiteral elements: WebValue...) { self = .array(elements) }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([WebValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: WebValue].self))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    subscript(key: String) -> WebValue? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    var string: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    var bool: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    var number: Double? {
        if case .number(let value) = self { return value }
        return nil
    }

    var array: [WebValue]? {
        if case .array(let value) = self { return value }
        return nil
    }

    var description: String {
        guard let data = try? JSONEncoder().encode(self) else { return "?" }
        return String(decoding: data, as: UTF8.self)
    }
}

/// Where ChromeDriver and Chromium are; throws a message saying how to install them when they are missing.
struct BrowserTools: Sendable {
    var driver: String
    var chromium: String

    static let installHint =
        "the browser tests drive Chromium through ChromeDriver: install them with "
        + "`sudo apt-get install chromium chromium-driver` (Debian; .ci/run installs them), or point CHROMEDRIVER "
        + "and CHROMIUM_BINARY at them"

    /// `CHROMEDRIVER` / `CHROMIUM_BINARY` when set, else the first of the usual names on `PATH`.
    static func locate(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> BrowserTools {
        let path = (environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":").map(String.init)
        func find(_ override: String, _ names: [String]) -> String? {
            if let explicit = environment[override], !explicit.isEmpty {
                return FileManager.default.isExecutableFile(atPath: explicit) ? explicit : nil
            }
            for directory in path {
                for name in names where FileManager.default.isExecutableFile(atPath: directory + "/" + name) {
                    return directory + "/" + name
                }
            }
            return nil
        }
        let driver = find("CHROMEDRIVER", ["chromedriver"])
        let chromium = find(
            "CHROMIUM_BINARY", ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"])
        guard let driver, let chromium else {
            let missing = [driver == nil ? "chromedriver" : nil, chromium == nil ? "chromium" : nil].compactMap { $0 }
            throw BrowserError(
                code: .chromiumMissing, message: "\(missing.joined(separator: " and ")) not found: \(installHint)")
        }
        return BrowserTools(driver: driver, chromium: chromium)
    }
}

/// ChromeDriver as a child process listening on a port the kernel picked (`--port=0`; it prints the port).
///
/// It runs under a small shell that stops it when the shell's standard input closes, so it ends with the test
/// process however that ends; Chromium talks to it over `--remote-debugging-pipe`, so Chromium ends with it.
final class ChromeDriverProcess: Sendable {
    let port: Int
    private let child: ChildProcess

    private init(port: Int, child: ChildProcess) {
        self.port = port
        self.child = child
    }

    var baseURL: String { "http://127.0.0.1:\(port)" }

    /// The watcher: starts ChromeDriver, and stops it (SIGTERM, then waits) when its own input ends.
    private static let watcher =
        #"d="$1"; shift; "$d" "$@" </dev/null & c=$!; while read -r _; do :; done; kill "$c"; wait "$c""#

    /// Starts ChromeDriver on a port of its choosing. It picks the port itself, and one taken meanwhile by another
    /// process (a spawned agent, a fake server) leaves it without a listening socket and silent (seen in CI:
    /// `bind() failed: Address already in use`): then it is started again, up to three times.
    static func start(_ tools: BrowserTools, logPath: String) async throws -> ChromeDriverProcess {
        var attempt = 1
        while true {
            do {
                return try await startOnce(tools, logPath: logPath)
            } catch let error as BrowserError where error.code == .driverStart && attempt < 3 {
                attempt += 1
            }
        }
    }

    private static func startOnce(_ tools: BrowserTools, logPath: String) async throws -> ChromeDriverProcess {
        let child: ChildProcess
        do {
            child = try ChildProcess(
                "/bin/sh", ["-c", watcher, "sh", tools.driver, "--port=0", "--log-path=\(logPath)"])
        } catch {
            throw BrowserError(code: .driverStart, message: "could not run \(tools.driver): \(error)")
        }
        let started = "ChromeDriver was started successfully on port "
        let output = child.output
        let seen = try? await within(30, "ChromeDriver's start line") { () -> [String] in
            var seen: [String] = []
            while let line = await output.next() {
                seen.append(line)
                if line.contains(started) { break }
            }
            return seen
        }
        guard let line = seen?.last(where: { $0.contains(started) }),
            let port = Int(line.components(separatedBy: started).last?.prefix { $0.isNumber } ?? "")
        else {
            await child.stop()
            throw BrowserError(
                code: .driverStart,
                message: "ChromeDriver did not report its port within 30 s; it printed: \(seen ?? []) "
                    + "(see \(logPath))")
        }
        let driver = ChromeDriverProcess(port: port, child: child)
        // The port is bound once the line is printed; /status says whether it accepts sessions.
        do {
            let status = try await WebDriverHTTP(base: driver.baseURL).send(.GET, "/status")
            guard status["ready"]?.bool == true else {
                throw BrowserError(code: .driverStart, message: "ChromeDriver is not ready: \(status)")
            }
        } catch {
            await driver.stop()
            throw error
        }
        return driver
    }

    func stop() async { await child.stop() }
}

/// A child process spawned with a clean signal state (the test process's threads block most signals, and a
/// child spawned through Foundation inherits that mask: ChromeDriver would not stop on SIGTERM, a shell would
/// not see its children exit), a pipe to its standard input and its standard output and error read as lines.
final class ChildProcess: Sendable {
    let pid: pid_t
    let output: LineReader
    private let input: FileHandle

    struct SpawnError: Error, CustomStringConvertible {
        var call: String
        var code: Int32
        var description: String { "\(call) failed: \(String(cString: strerror(code)))" }
    }

    init(_ path: String, _ arguments: [String]) throws {
        var inputPipe: [Int32] = [-1, -1]
        var outputPipe: [Int32] = [-1, -1]
        guard pipe(&inputPipe) == 0 else { throw SpawnError(call: "pipe", code: errno) }
        guard pipe(&outputPipe) == 0 else { throw SpawnError(call: "pipe", code: errno) }
        // Not inherited by anything else the test process spawns (dup2 into the child clears the flag).
        for fd in inputPipe + outputPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inputPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, outputPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, outputPipe[1], 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        // A process group of its own, so a child that does not stop can be killed with everything it started.
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let environment = ProcessInfo.processInfo.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in environment { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, path, &actions, &attributes, argv, environment)
        close(inputPipe[0])
        close(outputPipe[1])
        guard spawned == 0 else {
            close(inputPipe[1])
            close(outputPipe[0])
            throw SpawnError(call: "posix_spawn \(path)", code: spawned)
        }
        self.pid = pid
        input = FileHandle(fileDescriptor: inputPipe[1], closeOnDealloc: true)
        output = LineReader(FileHandle(fileDescriptor: outputPipe[0], closeOnDealloc: true))
    }

    /// Closes its input, waits until its output closes (it and its children exited), then reaps it; after 20 s
    /// its process group is SIGKILLed.
    func stop() async {
        try? input.close()
        let output = output
        let closed =
            (try? await within(20, "the child process to exit") { () -> Bool in
                while await output.next() != nil {}
                return true
            }) ?? false
        if !closed { kill(-pid, SIGKILL) }
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
    }
}

/// Lines of a pipe, read by a plain thread.
final class LineReader: @unchecked Sendable {  // @unchecked: `iterator` is used by one task at a time.
    private var iterator: AsyncStream<String>.Iterator

    init(_ handle: FileHandle) {
        let (stream, continuation) = AsyncStream<String>.makeStream()
        iterator = stream.makeAsyncIterator()
        Thread {
            var pending = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    continuation.yield(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
                    pending.removeSubrange(pending.startIndex...newline)
                }
            }
            if !pending.isEmpty { continuation.yield(String(decoding: pending, as: UTF8.self)) }
            continuation.finish()
        }.start()
    }

    func next() async -> String? { await iterator.next() }
}

/// The JSON-over-HTTP exchange of the WebDriver protocol: every answer is `{"value": …}`, an error's value has
/// `error` and `message`.
struct WebDriverHTTP: Sendable {
    enum Method: String, Sendable {
        case GET, POST, DELETE
    }

    let base: String

    func send(_ method: Method, _ path: String, _ body: WebValue? = nil) async throws -> WebValue {
        var request = HTTPClientRequest(url: base + path)
        switch method {
        case .GET: request.method = .GET
        case .POST: request.method = .POST
        case .DELETE: request.method = .DELETE
        }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
            request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(body)))
        } else if method == .POST {
            request.headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
            request.body = .bytes(ByteBuffer(string: "{}"))
        }
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.execute(request, timeout: .seconds(120))
        } catch {
            throw BrowserError(code: .webDriver, message: "\(method) \(path): \(error)")
        }
        let bytes = try await response.body.collect(upTo: 256 << 20)
        let answer = try? JSONDecoder().decode(WebValue.self, from: Data(bytes.readableBytesView))
        let value = answer?["value"] ?? .null
        if response.status.code >= 400 || value["error"]?.string != nil {
            let error = value["error"]?.string ?? "HTTP \(response.status.code)"
            let message =
                value["message"]?.string.map { String($0.prefix(2000)) } ?? String(String(buffer: bytes).prefix(500))
            throw BrowserError(code: .webDriver, message: "\(method) \(path): \(error): \(message)")
        }
        return value
    }
}

/// An element found in the page (a WebDriver element reference).
struct Element: Sendable, CustomStringConvertible {
    static let key = "element-6066-11e4-a52e-4f735466cecf"

    let id: String
    /// The CSS selector it was found by, for messages.
    let selector: String
    fileprivate let browser: Browser

    var description: String { "element '\(selector)'" }

    var reference: WebValue { [Self.key: .string(id)] }

    func click() async throws { _ = try await browser.command(.POST, "/element/\(id)/click") }

    /// Types `text` into the element (`Keys.enter` and friends for special keys).
    func sendKeys(_ text: String) async throws {
        _ = try await browser.command(.POST, "/element/\(id)/value", ["text": .string(text)])
    }

    func clear() async throws { _ = try await browser.command(.POST, "/element/\(id)/clear") }

    /// The rendered text.
    func text() async throws -> String { try await browser.command(.GET, "/element/\(id)/text").string ?? "" }

    /// A DOM property (`value` of a text field is its current text).
    func property(_ name: String) async throws -> WebValue {
        try await browser.command(.GET, "/element/\(id)/property/\(name)")
    }

    func attribute(_ name: String) async throws -> String? {
        try await browser.command(.GET, "/element/\(id)/attribute/\(name)").string
    }
}

/// WebDriver's codes for special keys (sent inside `sendKeys` text).
enum Keys {
    static let enter = "\u{E007}"
    static let shift = "\u{E008}"
    static let escape = "\u{E00C}"
}

/// What one look at an element matching a selector saw: its rendered text and the attributes asked for.
struct ElementSnapshot: Sendable, Equatable, CustomStringConvertible {
    var text: String
    var attributes: [String: String]

    var description: String {
        let attributes = attributes.sorted { $0.key < $1.key }.map { "\($0.key)=\"\($0.value)\"" }
        return "<\(attributes.joined(separator: " "))> \(text.debugDescription)"
    }
}

/// One entry of the browser console.
struct ConsoleEntry: Sendable, CustomStringConvertible {
    /// `SEVERE`, `WARNING`, `INFO`, `DEBUG`.
    var level: String
    /// `javascript` (an uncaught error), `console-api` (`console.log` and friends), `network`, `security` (a
    /// content security policy violation), …
    var source: String
    var message: String

    var description: String { "\(level) [\(source)] \(message)" }

    /// An uncaught script error, a `console.error`, or a blocked script/style/resource (CSP).
    var isScriptProblem: Bool {
        source == "javascript" || source == "security" || (source == "console-api" && level == "SEVERE")
    }
}

/// One look while waiting: the result once the condition holds (`nil` before), and what was seen, reported if the
/// deadline passes.
struct Look<T: Sendable>: Sendable {
    var value: T?
    var seen: String
}

/// One headless Chromium session. Made by ``withBrowser(_:_:)``, which also ends it.
final class Browser: Sendable {
    /// The default deadline of a step (generous: the machine is loaded and Chromium is slow to start).
    static let stepTimeout: Duration = .seconds(30)

    let test: String
    /// Where this test's screenshots go.
    let artifacts: URL
    /// ChromeDriver's address.
    var driverURL: String { http.base }
    private let http: WebDriverHTTP
    private let session: String
    private let shots = Mutex(0)

    fileprivate init(test: String, artifacts: URL, http: WebDriverHTTP, session: String) {
        self.test = test
        self.artifacts = artifacts
        self.http = http
        self.session = session
    }

    /// The root of the test artifacts: `$SWITCHBOARD_TEST_ARTIFACTS`, else `.build/test-artifacts`.
    static var artifactsRoot: URL {
        if let root = ProcessInfo.processInfo.environment["SWITCHBOARD_TEST_ARTIFACTS"], !root.isEmpty {
            return URL(fileURLWithPath: root)
        }
        // The test bundle runs from .build/<triple>/debug.
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return exe.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("test-artifacts")
    }

    fileprivate func command(_ method: WebDriverHTTP.Method, _ path: String, _ body: WebValue? = nil) async throws
        -> WebValue
    {
        try await http.send(method, "/session/\(session)" + path, body)
    }

    // MARK: Navigation

    func open(_ url: String) async throws { _ = try await command(.POST, "/url", ["url": .string(url)]) }

    func currentURL() async throws -> String { try await command(.GET, "/url").string ?? "" }

    func title() async throws -> String { try await command(.GET, "/title").string ?? "" }

    /// Resizes the window: the viewport the page's media queries see (390 × 844 is a phone).
    func setWindowSize(width: Int, height: Int) async throws {
        _ = try await command(
            .POST, "/window/rect", ["width": .number(Double(width)), "height": .number(Double(height))])
    }

    // MARK: Elements

    /// The first element matching `css`; throws when there is none.
    func find(_ css: String) async throws -> Element {
        let found = try await command(.POST, "/element", ["using": "css selector", "value": .string(css)])
        guard let id = found[Element.key]?.string else {
            throw BrowserError(code: .webDriver, message: "no element reference for '\(css)': \(found)")
        }
        return Element(id: id, selector: css, browser: self)
    }

    /// Every element matching `css` (possibly none).
    func findAll(_ css: String) async throws -> [Element] {
        let found = try await command(.POST, "/elements", ["using": "css selector", "value": .string(css)])
        return (found.array ?? []).compactMap { $0[Element.key]?.string }.map {
            Element(id: $0, selector: css, browser: self)
        }
    }

    /// Runs `script` (a function body: `return …`; `arguments[i]` are `args`) in the page; returns its JSON result.
    @discardableResult
    func execute(_ script: String, _ args: [WebValue] = []) async throws -> WebValue {
        try await command(.POST, "/execute/sync", ["script": .string(script), "args": .array(args)])
    }

    /// Every element matching `css`, read in one script (no stale references): its rendered text (or that of its
    /// first descendant matching `textOf`) and `attributes`.
    func snapshot(_ css: String, attributes: [String] = [], textOf: String? = nil) async throws -> [ElementSnapshot] {
        let value = try await execute(
            """
            const names = arguments[1], inner = arguments[2];
            const text = e => e ? ((e.innerText === undefined ? e.textContent : e.innerText) || '') : '';
            return Array.from(document.querySelectorAll(arguments[0])).map(e => ({
                text: text(inner ? e.querySelector(inner) : e),
                attributes: Object.fromEntries(names.filter(n => e.hasAttribute(n)).map(n => [n, e.getAttribute(n)]))
            }));
            """, [.string(css), .array(attributes.map { .string($0) }), textOf.map { .string($0) } ?? .null])
        return (value.array ?? []).map { item in
            var read: [String: String] = [:]
            if case .object(let object) = item["attributes"] ?? .null {
                for (name, value) in object { read[name] = value.string ?? "" }
            }
            return ElementSnapshot(text: item["text"]?.string ?? "", attributes: read)
        }
    }

    // MARK: Waiting

    /// Looks every `interval` until `look` returns a value, failing after `timeout` with what was last seen (and a
    /// screenshot). Polling is the one way here: the page has no channel to the test.
    @discardableResult
    func waitUntil<T: Sendable>(
        _ what: String, timeout: Duration = Browser.stepTimeout, interval: Duration = .milliseconds(100),
        _ look: () async throws -> Look<T>
    ) async throws -> T {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var seen = "nothing yet"
        while true {
            do {
                let current = try await look()
                if let value = current.value { return value }
                seen = current.seen
            } catch let error as BrowserError where error.code == .webDriver {
                seen = "an error: \(error.message)"
            }
            if clock.now >= deadline { break }
            try await Task.sleep(for: interval)
        }
        let shot = try? await screenshot("timeout")
        throw BrowserError(
            code: .timeout,
            message: "\(what): not within \(timeout); last seen: \(seen)"
                + (shot.map { " (screenshot \($0.path))" } ?? ""))
    }

    /// Waits until the elements matching `css` satisfy `condition` (given their snapshots); returns its value.
    @discardableResult
    func waitFor<T: Sendable>(
        _ what: String, _ css: String, attributes: [String] = [], textOf: String? = nil,
        timeout: Duration = Browser.stepTimeout, _ condition: @escaping ([ElementSnapshot]) -> T?
    ) async throws -> T {
        try await waitUntil(what, timeout: timeout) {
            let elements = try await snapshot(css, attributes: attributes, textOf: textOf)
            return Look(value: condition(elements), seen: "'\(css)' → \(elements)")
        }
    }

    /// Waits until an element matches `css`; returns it.
    @discardableResult
    func waitForElement(_ css: String, timeout: Duration = Browser.stepTimeout) async throws -> Element {
        try await waitUntil("an element '\(css)'", timeout: timeout) {
            let found = try await findAll(css)
            return Look(value: found.first, seen: "\(found.count) elements '\(css)'")
        }
    }

    // MARK: Artifacts

    /// Saves a PNG of the viewport as `<artifacts>/<nn>-<step>.png` (numbered in the order taken); returns its URL.
    @discardableResult
    func screenshot(_ step: String) async throws -> URL {
        let encoded = try await command(.GET, "/screenshot").string ?? ""
        guard let png = Data(base64Encoded: encoded) else {
            throw BrowserError(code: .webDriver, message: "the screenshot is not base64")
        }
        let number = shots.withLock { count -> Int in
            count += 1
            return count
        }
        try FileManager.default.createDirectory(at: artifacts, withIntermediateDirectories: true)
        let file = artifacts.appendingPathComponent(String(format: "%02d-", number) + Self.fileName(step) + ".png")
        try png.write(to: file)
        return file
    }

    /// The browser console's entries since the last call (ChromeDriver's log endpoint).
    func consoleLog() async throws -> [ConsoleEntry] {
        let entries = try await command(.POST, "/se/log", ["type": "browser"])
        return (entries.array ?? []).map {
            ConsoleEntry(
                level: $0["level"]?.string ?? "", source: $0["source"]?.string ?? "",
                message: $0["message"]?.string ?? "")
        }
    }

    /// `text` as a file name: a test's `name()` without its parentheses, other characters outside `[A-Za-z0-9-_.]`
    /// as `-`.
    static func fileName(_ text: String) -> String {
        let text = text.hasSuffix("()") ? String(text.dropLast(2)) : text
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
        let name = String(text.map { allowed.contains($0) ? $0 : "-" })
        return name.isEmpty ? "step" : String(name.prefix(80))
    }

    // MARK: Session

    fileprivate static func start(test: String, driver: ChromeDriverProcess, userDataDir: String) async throws
        -> Browser
    {
        let http = WebDriverHTTP(base: driver.baseURL)
        let args: [WebValue] = [
            "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900",
            .string("--user-data-dir=\(userDataDir)"), "--remote-debugging-pipe", "--no-first-run",
            "--disable-extensions", "--lang=en-US",
        ]
        var options: [String: WebValue] = ["args": .array(args)]
        if let binary = ProcessInfo.processInfo.environment["CHROMIUM_BINARY"], !binary.isEmpty {
            options["binary"] = .string(binary)
        }
        let capabilities: WebValue = [
            "capabilities": [
                "alwaysMatch": [
                    "browserName": "chrome", "goog:chromeOptions": .object(options),
                    "goog:loggingPrefs": ["browser": "ALL"],
                    "timeouts": ["pageLoad": .number(60_000), "script": .number(30_000), "implicit": .number(0)],
                ]
            ]
        ]
        let created = try await http.send(.POST, "/session", capabilities)
        guard let session = created["sessionId"]?.string else {
            throw BrowserError(code: .webDriver, message: "no session id in \(created)")
        }
        return Browser(
            test: test, artifacts: artifactsRoot.appendingPathComponent("screenshots/\(fileName(test))"), http: http,
            session: session)
    }

    fileprivate func quit() async throws { _ = try await http.send(.DELETE, "/session/\(session)") }
}

/// Runs `body` with a fresh headless Chromium (its own ChromeDriver, a temporary profile), then quits the session
/// and stops ChromeDriver whatever happened. On a failure it saves a `failure` screenshot and prints the browser
/// console, then rethrows. Fails with a message saying how to install Chromium when it is missing.
func withBrowser<T: Sendable>(
    _ test: String = #function, _ body: (Browser) async throws -> T
) async throws -> T {
    let tools = try BrowserTools.locate()
    let profile = TemporaryBrowserProfile()
    let artifactsRoot = Browser.artifactsRoot
    try FileManager.default.createDirectory(at: artifactsRoot, withIntermediateDirectories: true)
    let driverLog = artifactsRoot.appendingPathComponent("chromedriver-\(Browser.fileName(test)).log").path
    let driver = try await ChromeDriverProcess.start(tools, logPath: driverLog)
    let browser: Browser
    do {
        browser = try await Browser.start(test: test, driver: driver, userDataDir: profile.path)
    } catch {
        await driver.stop()
        throw error
    }
    let result: Result<T, any Error>
    do {
        result = .success(try await body(browser))
    } catch {
        result = .failure(error)
    }
    // Cleanup runs in a task of its own, so a cancelled test still ends its browser.
    await Task {
        if case .failure(let error) = result {
            let shot = try? await browser.screenshot("failure")
            let console = (try? await browser.consoleLog()) ?? []
            print(
                "[browser \(browser.test)] failed: \(error)\n  screenshot: \(shot?.path ?? "none")\n  console: "
                    + console.map(\.description).joined(separator: "\n    ") + "\n  chromedriver log: \(driverLog)")
        }
        try? await browser.quit()
        await driver.stop()
    }.value
    withExtendedLifetime(profile) {}
    return try result.get()
}

/// A temporary Chromium profile directory, removed when released.
private final class TemporaryBrowserProfile: Sendable {
    let path: String

    init() {
        path = NSTemporaryDirectory() + "switchboard-chromium-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}
