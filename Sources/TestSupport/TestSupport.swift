// Shared by the test targets: temporary directories and spawned processes of the built executables.
// Not part of the product.
import Foundation

/// A fresh temporary directory, removed when the value is released.
public final class TemporaryDirectory: @unchecked Sendable {  // @unchecked: immutable after init.
    /// The directory's absolute path.
    public let path: String

    public init() {
        let template = NSTemporaryDirectory() + "switchboard-test-XXXXXX"
        var bytes = Array(template.utf8CString)
        path = bytes.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    }

    /// A path inside the directory.
    public func sub(_ name: String) -> String { path + "/" + name }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// A spawned executable from the build directory whose output lines can be awaited one by one.
public final class SpawnedProcess: @unchecked Sendable {  // @unchecked: `iterator` is used by one task at a time.
    /// The running process.
    public let process = Process()
    private var iterator: AsyncStream<String>.Iterator
    /// Kept open for the life of this process: a helper exits when it reads EOF (the test process died).
    private let stdinPipe = Pipe()

    /// The directory holding the built executables (where the test bundle itself runs from).
    public static var buildDirectory: URL {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    }

    /// Starts `executable` (a product name) with `arguments`; reads stdout, or stderr when `readStandardError`.
    public init(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil,
        readStandardError: Bool = false
    ) throws {
        process.executableURL = Self.buildDirectory.appendingPathComponent(executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment
            .merging(environment ?? [:]) { $1 }
            .merging(["SWITCHBOARD_EXIT_ON_STDIN_EOF": "1"]) { $1 }
        process.standardInput = stdinPipe
        let pipe = Pipe()
        if readStandardError {
            process.standardError = pipe
            process.standardOutput = FileHandle.nullDevice
        } else {
            process.standardOutput = pipe
            process.standardError = FileHandle.standardError
        }
        let (stream, continuation) = AsyncStream<String>.makeStream()
        iterator = stream.makeAsyncIterator()
        let handle = pipe.fileHandleForReading
        try process.run()
        // A plain thread does the blocking reads and yields complete lines.
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

    /// The next output line, or `nil` when the process closed its output.
    public func nextLine() async -> String? { await iterator.next() }

    /// Reads lines until one contains `text`; returns every line read (the match last).
    public func lines(until text: String) async -> [String] {
        var seen: [String] = []
        while let line = await nextLine() {
            seen.append(line)
            if line.contains(text) { break }
        }
        return seen
    }

    /// All remaining lines, then waits for the exit.
    public func finish() async -> (status: Int32, lines: [String]) {
        var seen: [String] = []
        while let line = await nextLine() { seen.append(line) }
        process.waitUntilExit()
        return (process.terminationStatus, seen)
    }

    /// Sends `signal` and waits for the exit.
    public func kill(_ signal: Int32 = SIGKILL) {
        Glibc.kill(process.processIdentifier, signal)
        process.waitUntilExit()
    }

    /// Sends `signal` without waiting.
    public func signal(_ signal: Int32) {
        Glibc.kill(process.processIdentifier, signal)
    }

    /// Runs `executable` to completion.
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil)
        async throws -> (status: Int32, lines: [String])
    {
        try await SpawnedProcess(executable, arguments, environment: environment).finish()
    }
}

/// Flips one bit in every occurrence of `marker` in the file at `path` (LMDB is copy-on-write, so freed
/// pages may still hold stale copies of a record; every copy is hit). Returns how many were changed.
@discardableResult
public func corruptEveryOccurrence(of marker: String, in path: String, at offset: Int = 3) throws -> Int {
    let url = URL(fileURLWithPath: path)
    var bytes = try [UInt8](Data(contentsOf: url))
    let needle = Array(marker.utf8)
    var hits = 0
    var index = 0
    while index + needle.count <= bytes.count {
        if bytes[index] == needle[0] && bytes[index..<index + needle.count].elementsEqual(needle) {
            bytes[index + offset] ^= 0x20
            hits += 1
            index += needle.count
        } else {
            index += 1
        }
    }
    try Data(bytes).write(to: url)
    return hits
}

/// Runs blocking `work` (psql, pg_ctl, a blocking connection) on a thread of its own, so it does not hold one of
/// Swift concurrency's few threads.
@discardableResult
public func onThread<R: Sendable, E: Error>(_ work: @escaping @Sendable () throws(E) -> R) async throws(E) -> R {
    let result: Result<R, E> = await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: Result { () throws(E) -> R in try work() }) }.start()
    }
    return try result.get()
}
