import Foundation
import Synchronization

/// Why a ``PostgresCluster`` could not be made or used; the message says what to do.
public struct PostgresClusterError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "PostgresClusterError: \(message)" }
}

/// A throwaway PostgreSQL cluster for the tests: `initdb` into a temporary directory (`fsync=off`), listening on a
/// Unix socket in that directory and on 127.0.0.1 at a free port, started with `pg_ctl`. One per test process
/// (``shared()``), stopped when the process exits; each test gets its own schema (`withPostgres(_:)`).
///
/// The server's binaries are Debian's (`/usr/lib/postgresql/<version>/bin`, the newest), `pg_ctl`'s directory on
/// `PATH`, or `SWITCHBOARD_TEST_PG_BIN`. Without them every test that asks for the cluster fails with a message
/// saying so: the PostgreSQL tests are never skipped. As root, the server runs as the `postgres` user (`initdb`
/// and `postgres` refuse root).
public final class PostgresCluster: Sendable {
    /// The cluster's directory: `data/`, the socket, `server.log`.
    public let directory: String
    /// The TCP port on 127.0.0.1, also the number in the socket file's name.
    public let port: Int
    /// The directory of `initdb`, `pg_ctl`, `pg_isready` and `psql`.
    public let bin: String
    /// `postgres` when we are root, else nil (ourselves).
    private let user: String?

    private static let tools = ["initdb", "pg_ctl", "pg_isready", "psql"]
    private static let prefix = "switchboard-pg-"
    private static let state = Mutex<Result<PostgresCluster, PostgresClusterError>?>(nil)

    /// The process's cluster, made and started on first use (a few seconds), stopped at exit. A failure is kept:
    /// every later call throws it at once.
    public static func shared() throws -> PostgresCluster {
        try state.withLock { state in
            if let state { return try state.get() }
            let made: Result<PostgresCluster, PostgresClusterError>
            do {
                made = .success(try PostgresCluster())
                atexit { PostgresCluster.stopShared() }
            } catch let error as PostgresClusterError {
                made = .failure(error)
            } catch {
                made = .failure(PostgresClusterError("\(error)"))
            }
            state = made
            return try made.get()
        }
    }

    /// The async form of ``shared()``: the first use's `initdb` and start (seconds, on a busy machine) run on a thread
    /// of their own. Waiting for them on the concurrency pool (two threads on a two-core machine: the test waiting
    /// and the one blocked on the lock) stalled every other test in the process, their heartbeats and deadlines too.
    public static func shared() async throws -> PostgresCluster {
        try await onThread { try shared() }
    }

    private static func stopShared() {
        if case .success(let cluster) = state.withLock({ $0 }) { cluster.stop() }
    }

    /// Runs `body` with the URL of the shared cluster's `postgres` database (over its Unix socket) and a schema name
    /// no other test uses; drops that schema afterwards, whether `body` threw or not.
    public static func withPostgres<R>(_ body: (_ url: String, _ schema: String) throws -> R) throws -> R {
        let cluster = try shared()
        let schema = uniqueSchemaName()
        defer { cluster.dropSchema(schema) }
        return try body(cluster.url(), schema)
    }

    /// The async form of `withPostgres(_:)`; no step blocks a thread of the concurrency pool.
    public static func withPostgres<R>(_ body: (_ url: String, _ schema: String) async throws -> R) async throws -> R {
        let cluster = try await shared()
        let schema = uniqueSchemaName()
        let result: Result<R, any Error>
        do { result = .success(try await body(cluster.url(), schema)) } catch { result = .failure(error) }
        await cluster.dropSchema(schema)
        return try result.get()
    }

    /// `t_` and 12 random hex digits: a valid schema name.
    public static func uniqueSchemaName() -> String {
        "t_" + String(UInt64.random(in: 0..<(1 << 48)), radix: 16).leftPadded(to: 12)
    }

    /// Makes and starts a new cluster (the tests use ``shared()``).
    public init() throws {
        guard let bin = Self.locate() else {
            throw PostgresClusterError(
                "PostgreSQL's server programs (\(Self.tools.joined(separator: ", "))) were not found under "
                    + "/usr/lib/postgresql/*/bin, on PATH or in SWITCHBOARD_TEST_PG_BIN. Install Debian's "
                    + "postgresql package (apt-get install postgresql; .ci/run does): the PostgreSQL tests need it.")
        }
        self.bin = bin
        user = geteuid() == 0 ? "postgres" : nil
        // Short: a socket path must fit in 107 bytes.
        let parent = NSTemporaryDirectory().count <= 60 ? NSTemporaryDirectory() : "/tmp/"
        Self.removeAbandoned(in: parent, bin: bin, user: user)
        var template = Array((parent + Self.prefix + "XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ $0.baseAddress.flatMap { mkdtemp($0) } }) else {
            throw PostgresClusterError("mkdtemp in \(parent): errno \(errno)")
        }
        directory = String(cString: made)
        try "\(getpid())".write(toFile: directory + "/owner.pid", atomically: true, encoding: .utf8)
        if let user {
            guard let account = getpwnam(user) else {
                throw PostgresClusterError("running as root and there is no \(user) user to run the server as")
            }
            guard chown(directory, account.pointee.pw_uid, account.pointee.pw_gid) == 0 else {
                throw PostgresClusterError("chown \(directory): errno \(errno)")
            }
        }
        port = try Self.freeLoopbackPort()
        try run(
            "initdb",
            ["-D", "\(directory)/data", "--auth=trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"])
        let settings = """

            # PostgresCluster (tests): throwaway, so no durability.
            listen_addresses = '127.0.0.1'
            port = \(port)
            unix_socket_directories = '\(directory)'
            fsync = off
            synchronous_commit = off
            full_page_writes = off
            max_connections = 200

            """
        let configuration = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(directory)/data/postgresql.conf"))
        try configuration.seekToEnd()
        try configuration.write(contentsOf: Data(settings.utf8))
        try configuration.close()
        try run("pg_ctl", ["-D", "\(directory)/data", "-l", "\(directory)/server.log", "-w", "-t", "60", "start"])
        try waitUntilReady()
    }

    /// A URL of `database` for `PostgresURL`: over the Unix socket, or over TCP to 127.0.0.1 (`sslmode=disable`).
    public func url(database: String = "postgres", overTCP: Bool = false) -> String {
        overTCP
            ? "postgres://postgres@127.0.0.1:\(port)/\(database)?sslmode=disable"
            : "postgres://postgres@/\(database)?host=\(directory)&port=\(port)"
    }

    /// Runs `sql` with `psql` as the superuser and returns its unaligned output.
    @discardableResult
    public func psql(_ sql: String, database: String = "postgres") throws -> String {
        try run(
            "psql",
            [
                "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", directory, "-p", "\(port)", "-U", "postgres",
                "-d", database, "-c", sql,
            ], asServerUser: false)
    }

    /// Drops `schema` and everything in it; reports a failure on standard error (a test's connection still holding
    /// a lock on it, say) instead of throwing.
    public func dropSchema(_ schema: String) {
        do {
            try psql("SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS \"\(schema)\" CASCADE")
        } catch {
            FileHandle.standardError.write(Data("PostgresCluster: dropping schema \(schema) failed: \(error)\n".utf8))
        }
    }

    /// The async form of `dropSchema(_:)`, on a thread of its own: the drop may wait up to its lock timeout.
    public func dropSchema(_ schema: String) async {
        await onThread { () throws(Never) in self.dropSchema(schema) }
    }

    /// Restarts the server (`pg_ctl restart -m fast`): every session is ended, the server shuts down cleanly and
    /// starts again on the same port and socket. For tests of a restart, on a cluster of their own (``init()``):
    /// the shared one serves suites running in parallel.
    public func restart() throws {
        try run(
            "pg_ctl",
            ["-D", "\(directory)/data", "-l", "\(directory)/server.log", "-m", "fast", "-w", "-t", "60", "restart"])
        try waitUntilReady()
    }

    /// Stops the server at once (`pg_ctl -m immediate`) and removes the directory.
    public func stop() {
        _ = try? run("pg_ctl", ["-D", "\(directory)/data", "-m", "immediate", "-w", "stop"])
        try? FileManager.default.removeItem(atPath: directory)
    }

    // MARK: - Starting

    /// Polls `pg_isready` until the server accepts connections (at most 60 s).
    private func waitUntilReady() throws {
        let deadline = Date().addingTimeInterval(60)
        while true {
            let output = directory + "/isready.out"
            let status = try Self.spawn(
                "\(bin)/pg_isready", ["-q", "-h", directory, "-p", "\(port)", "-U", "postgres"], user: nil,
                output: output)
            if status == 0 { return }
            guard Date() < deadline else {
                throw PostgresClusterError("PostgreSQL not ready within 60 s: \(tail(of: directory + "/server.log"))")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    /// Runs one of the tools, as the server's user unless `asServerUser` is false; returns its output.
    @discardableResult
    private func run(_ tool: String, _ arguments: [String], asServerUser: Bool = true) throws -> String {
        let output = directory + "/.\(tool)-\(UUID().uuidString).out"
        defer { try? FileManager.default.removeItem(atPath: output) }
        let status = try Self.spawn("\(bin)/\(tool)", arguments, user: asServerUser ? user : nil, output: output)
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        guard status == 0 else {
            let log = tool == "pg_ctl" ? "; server.log: " + tail(of: directory + "/server.log") : ""
            throw PostgresClusterError("\(tool) exited with \(status): \(text.suffix(800))\(log)")
        }
        return text
    }

    private func tail(of path: String) -> String {
        String(((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").suffix(800))
    }

    /// Runs `executable` (through `runuser -u user` when given) with standard output and error in `output`, and
    /// waits for it. `posix_spawn`, not Foundation's `Process`: `pg_ctl` leaves the server running in the
    /// background, and that daemon must inherit no descriptor of ours (Process's exit-notification socket, other
    /// tests' pipes), so every descriptor above 2 is closed in the child.
    private static func spawn(_ executable: String, _ arguments: [String], user: String?, output: String) throws
        -> Int32
    {
        var argv = [executable] + arguments
        if let user {
            guard
                let runuser = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"].first(where: {
                    FileManager.default.isExecutableFile(atPath: $0)
                })
            else { throw PostgresClusterError("runuser not found: needed to run \(executable) as \(user)") }
            argv = [runuser, "-u", user, "--"] + argv
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        closeInheritedDescriptors(&actions)
        let cArguments = argv.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, argv[0], &actions, nil, cArguments, environ)
        guard spawned == 0 else { throw PostgresClusterError("cannot start \(argv[0]): errno \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else { throw PostgresClusterError("waitpid \(argv[0]): errno \(errno)") }
        }
        // WIFEXITED / WEXITSTATUS, which Swift does not import (macros).
        return status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
    }

    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34+), which Swift's Glibc module does not import.
    private static let addCloseFrom: AddCloseFrom? = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np").map {
        unsafeBitCast($0, to: AddCloseFrom.self)
    }

    /// Adds the closing of every descriptor above 2 to `actions`: at once with `addclosefrom_np`, else one by one
    /// as /proc/self/fd lists them now.
    private static func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) {
        if let addCloseFrom {
            _ = addCloseFrom(&actions, 3)
            return
        }
        let open = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap {
            Int32($0)
        }
        for descriptor in open where descriptor > 2 { posix_spawn_file_actions_addclose(&actions, descriptor) }
    }

    /// The newest Debian `/usr/lib/postgresql/<version>/bin` with all the tools, else `SWITCHBOARD_TEST_PG_BIN`, else
    /// the directory of `pg_ctl` on `PATH`.
    private static func locate() -> String? {
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [])
            .compactMap { name in Double(name).map { (name, $0) } }
            .sorted { $0.1 > $1.1 }
        var candidates = versions.map { "\(root)/\($0.0)/bin" }
        let environment = ProcessInfo.processInfo.environment
        if let configured = environment["SWITCHBOARD_TEST_PG_BIN"] { candidates.insert(configured, at: 0) }
        for directory in (environment["PATH"] ?? "").split(separator: ":").map(String.init)
        where FileManager.default.isExecutableFile(atPath: directory + "/pg_ctl") {
            candidates.append(
                URL(fileURLWithPath: directory + "/pg_ctl").resolvingSymlinksInPath().deletingLastPathComponent().path)
        }
        return candidates.first { bin in
            tools.allSatisfy { FileManager.default.isExecutableFile(atPath: "\(bin)/\($0)") }
        }
    }

    /// Stops and removes the clusters of test processes that died without stopping theirs (SIGKILL, a crash).
    private static func removeAbandoned(in parent: String, bin: String, user: String?) {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? []
        for entry in entries where entry.hasPrefix(prefix) {
            let directory = (parent.hasSuffix("/") ? parent : parent + "/") + entry
            guard let text = try? String(contentsOfFile: directory + "/owner.pid", encoding: .utf8),
                let owner = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)),
                kill(owner, 0) == -1, errno == ESRCH
            else { continue }
            if FileManager.default.fileExists(atPath: directory + "/data/postmaster.pid") {
                _ = try? spawn(
                    "\(bin)/pg_ctl", ["-D", directory + "/data", "-m", "immediate", "-w", "stop"], user: user,
                    output: "/dev/null")
            }
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    /// A TCP port on 127.0.0.1 that was free a moment ago.
    private static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw PostgresClusterError("no socket (errno \(errno))") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard bound == 0, named == 0 else { throw PostgresClusterError("no loopback port (errno \(errno))") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
