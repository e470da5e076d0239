import EventLog
import Foundation
import Logging
import Testing

/// A fresh temporary directory, removed when the value is released.
final class TemporaryDirectory: @unchecked Sendable {
    let path: String

    init() {
        let template = NSTemporaryDirectory() + "switchboard-test-XXXXXX"
        var bytes = Array(template.utf8CString)
        path = bytes.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    }

    func sub(_ name: String) -> String { path + "/" + name }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

let quietLogger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

func openLog(
    _ directory: String, worker: String = "tester", tables: [String] = [],
    configure: (inout EventLogConfiguration) -> Void = { _ in }
) throws -> EventLog {
    var configuration = EventLogConfiguration(
        directory: directory, writer: WriterIdentity(role: "test", workerID: worker))
    configuration.tables = tables
    configure(&configuration)
    return try EventLog(configuration, logger: quietLogger)
}

func testEvent(_ index: Int, writer: String = "tester") -> PendingEvent {
    PendingEvent(type: "test.appended", payload: Array("{\"i\":\(index),\"writer\":\"\(writer)\"}".utf8))
}

/// The payload fields the helper and `testEvent` write.
struct TestPayload: Decodable, Equatable {
    var i: Int
    var writer: String
}

func testPayload(_ record: Record) throws -> TestPayload {
    try JSONDecoder().decode(TestPayload.self, from: Data(record.payload))
}

/// A spawned `switchboard-test-helper` process whose stdout lines can be awaited one by one.
final class HelperProcess: @unchecked Sendable {
    let process = Process()
    let lines: AsyncStream<String>
    private var iterator: AsyncStream<String>.Iterator

    static var executable: URL {
        // The test bundle runs from the build directory, where SwiftPM also puts the helper executable.
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return exe.deletingLastPathComponent().appendingPathComponent("switchboard-test-helper")
    }

    init(_ arguments: [String]) throws {
        process.executableURL = Self.executable
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.standardError
        let (stream, continuation) = AsyncStream<String>.makeStream()
        lines = stream
        iterator = stream.makeAsyncIterator()
        let handle = pipe.fileHandleForReading
        try process.run()
        // A plain thread reads the pipe (blocking reads) and yields complete lines.
        let reader = Thread {
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
        }
        reader.start()
    }

    /// The next line the helper printed, or `nil` when it closed its output.
    func nextLine() async -> String? { await iterator.next() }

    /// Reads lines until one starts with `prefix`; returns every line read (the match last).
    func lines(until prefix: String) async -> [String] {
        var seen: [String] = []
        while let line = await nextLine() {
            seen.append(line)
            if line.hasPrefix(prefix) { break }
        }
        return seen
    }

    /// All remaining lines, then waits for exit.
    func finish() async -> (status: Int32, lines: [String]) {
        var seen: [String] = []
        while let line = await nextLine() { seen.append(line) }
        process.waitUntilExit()
        return (process.terminationStatus, seen)
    }

    func kill(_ signal: Int32 = SIGKILL) {
        Glibc.kill(process.processIdentifier, signal)
        process.waitUntilExit()
    }
}

/// Runs the helper to completion.
func runHelper(_ arguments: [String]) async throws -> (status: Int32, lines: [String]) {
    try await HelperProcess(arguments).finish()
}
