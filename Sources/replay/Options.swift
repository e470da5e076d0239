// Options and helpers shared by every replay command.
import ArgumentParser
import EventLog
import EventLogPostgres
import SwitchboardEvents
import Foundation
import Logging
import Projections

let quiet = Logger(label: "replay", factory: { _ in SwiftLogNoOpLogHandler() })

struct LogOptions: ParsableArguments {
    @Option(name: .customLong("data-dir"), help: "The log directory (LMDB; with --database-url, the local folder).")
    var dataDirectory = "./data"

    @Option(
        name: .customLong("database-url"),
        help: "A log on PostgreSQL instead of LMDB: postgres://user:password@host:5432/db (or DATABASE_URL).")
    var databaseURL: String?

    @Option(help: "With --database-url, the log's schema.")
    var schema = PostgresSchema.defaultName

    @Flag(help: "Print JSON instead of text: one object for a report, an array for a list (`[]` when empty).")
    var json = false

    /// The log directory as an absolute path, for messages.
    var absoluteDirectory: String { URL(fileURLWithPath: dataDirectory).standardizedFileURL.path }

    /// The PostgreSQL log named by `--database-url`, or by `DATABASE_URL` with `EVENTLOG_BACKEND=postgres`.
    var postgres: PostgresURL? {
        get throws {
            let environment = ProcessInfo.processInfo.environment
            let text =
                databaseURL
                ?? (environment["EVENTLOG_BACKEND"]?.lowercased() == "postgres" ? environment["DATABASE_URL"] : nil)
            guard let text else { return nil }
            do {
                return try PostgresURL(text)
            } catch {
                fail("--database-url: \(error)")
            }
        }
    }

    /// Where the log is, for messages.
    var location: String {
        guard let url = try? postgres else { return absoluteDirectory }
        return "\(url.redacted) schema \(schema)"
    }

    /// Opens the log read-only. A directory without a log is one line on standard error and exit code 1.
    func open() throws -> EventLog {
        var configuration = EventLogConfiguration(
            directory: dataDirectory, writer: WriterIdentity(role: "replay", workerID: "replay"))
        if let url = try postgres { configuration.backend = .postgres(url, schema: schema) }
        configuration.createIfMissing = false
        configuration.projector = SwitchboardProjector()
        configuration.projectionUpgrade = .leave  // read-only: never rebuild the live tables
        do {
            return try EventLog(configuration, logger: quiet)
        } catch let error as EventLogError where error.code == .notFound {
            fail("no event log in \(location) — start the agent (scripts/run.sh) or pass --data-dir")
        }
    }

    /// Exits with code 1 when the directory has no log (for commands that do not open it).
    func requireLog() throws { try open().close() }

    /// Prints `value` as JSON (`--json`) or `text(value)` as lines.
    func output<Value: Encodable>(_ value: Value, text: (Value) -> [String]) {
        if json {
            printJSON(value)
        } else {
            for line in text(value) { print(line) }
        }
    }
}

/// Writes `replay: <message>` as one line to standard error and exits with code 1.
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("replay: \(message)\n".utf8))
    Foundation.exit(1)
}

/// `--at` as a seq or an ISO-8601 time.
struct AtOption: ParsableArguments {
    @Option(help: "Show state as of a seq (e.g. 1200) or an ISO-8601 time (e.g. 2026-11-29T05:00:00Z).")
    var at: String?

    func seq(in log: EventLog) throws -> UInt64? {
        guard let at else { return nil }
        if let seq = UInt64(at) { return min(seq, try log.lastSeq()) }  // past the end: the state now
        guard let time = parseTime(at) else { throw ValidationError("--at takes a seq or an ISO-8601 time, got \(at)") }
        return try log.lastSeq(atOrBefore: time)
    }

    @Flag(help: "With --at, rebuild from seq 1 instead of from the nearest snapshot.")
    var noSnapshots = false

    /// Runs `body` with a reader over live state, or over state rebuilt up to `--at` (from the nearest
    /// snapshot) and the snapshot it started from; then closes the rebuilt copy and removes it.
    func withReader<R>(
        _ log: EventLog, _ body: (StateReader, StateSnapshots.Entry?) async throws -> R
    ) async throws -> R {
        guard let seq = try seq(in: log) else { return try await body(try StateReader.live(log), nil) }
        let scratch = NSTemporaryDirectory() + "replay-state-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let snapshots = noSnapshots ? nil : StateSnapshots(logDirectory: log.configuration.directory)
        let (reader, base) = try await Rebuild.state(
            of: log, upTo: seq, snapshots: snapshots, scratchDirectory: scratch, logger: quiet)
        return try await reader.log.closeAfter { try await body(reader, base) }
    }
}

/// Opens the log, builds the reader for `--at` (live state, or state rebuilt up to that point) and the log clock
/// at that point, runs `body`, and cleans up.
func inspect(_ options: LogOptions, _ at: AtOption, _ body: (StateReader, LogTimestamp) throws -> Void) async throws {
    let log = try options.open()
    try await log.closeAfter {
        let seq = try at.seq(in: log)
        try await at.withReader(log) { reader, _ in try body(reader, try clock(log, upTo: seq)) }
    }
}

/// Parses ISO-8601 `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` exactly, to the microsecond (the form replay prints).
func parseTime(_ text: String) -> LogTimestamp? {
    let chars = Array(text.utf8)
    func number(_ from: Int, _ count: Int) -> Int? {
        guard from + count <= chars.count else { return nil }
        var value = 0
        for c in chars[from..<from + count] {
            guard c >= 48 && c <= 57 else { return nil }
            value = value * 10 + Int(c - 48)
        }
        return value
    }
    guard chars.count >= 20, chars[4] == UInt8(ascii: "-"), chars[7] == UInt8(ascii: "-"),
        chars[10] == UInt8(ascii: "T") || chars[10] == UInt8(ascii: " "), chars[13] == UInt8(ascii: ":"),
        chars[16] == UInt8(ascii: ":"),
        let year = number(0, 4), let month = number(5, 2), let day = number(8, 2), let hour = number(11, 2),
        let minute = number(14, 2), let second = number(17, 2)
    else { return nil }
    var index = 19
    var micros = 0
    if index < chars.count, chars[index] == UInt8(ascii: ".") {
        index += 1
        var digits = 0
        while index < chars.count, chars[index] >= 48, chars[index] <= 57 {
            if digits < 6 { micros = micros * 10 + Int(chars[index] - 48) }
            digits += 1
            index += 1
        }
        guard digits > 0 else { return nil }
        for _ in digits..<max(digits, 6) { micros *= 10 }
    }
    var offset = 0
    if index < chars.count, chars[index] == UInt8(ascii: "Z") {
        index += 1
    } else if index + 6 <= chars.count, chars[index] == UInt8(ascii: "+") || chars[index] == UInt8(ascii: "-"),
        let h = number(index + 1, 2), let m = number(index + 4, 2)
    {
        offset = (h * 3600 + m * 60) * (chars[index] == UInt8(ascii: "-") ? -1 : 1)
        index += 6
    } else {
        return nil
    }
    guard index == chars.count, (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
    else { return nil }
    var parts = tm()
    parts.tm_year = Int32(year - 1900)
    parts.tm_mon = Int32(month - 1)
    parts.tm_mday = Int32(day)
    parts.tm_hour = Int32(hour)
    parts.tm_min = Int32(minute)
    parts.tm_sec = Int32(second)
    let seconds = Int64(timegm(&parts)) - Int64(offset)
    return LogTimestamp(microseconds: seconds * 1_000_000 + Int64(micros))
}

/// `10m`, `24h`, `30s`, `500ms`, `2d`.
func parseDuration(_ text: String) -> Duration? {
    let units: [(String, Duration)] = [
        ("ms", .milliseconds(1)), ("s", .seconds(1)), ("m", .seconds(60)), ("h", .seconds(3600)),
        ("d", .seconds(86400)),
    ]
    for (suffix, unit) in units where text.hasSuffix(suffix) {
        if let n = Int(text.dropLast(suffix.count)), n >= 0 { return unit * n }
    }
    return nil
}

/// Prints `value` as compact JSON with sorted keys, on one line.
func printJSON<Value: Encodable>(_ value: Value) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    guard let data = try? encoder.encode(value) else { fail("cannot encode the output as JSON") }
    print(String(decoding: data, as: UTF8.self))
}

/// The log clock at the point being shown: the time of the last record included.
func clock(_ log: EventLog, upTo seq: UInt64?) throws -> LogTimestamp {
    let last = try seq ?? log.lastSeq()
    return try log.record(at: max(1, last))?.timestamp ?? LogTimestamp(microseconds: 0)
}

/// A `--from` / `--to` bound as a seq: a seq as given, or the first (`upper: false`) or last (`upper: true`) seq
/// at an ISO-8601 time.
func bound(_ text: String?, _ log: EventLog, upper: Bool) throws -> UInt64? {
    guard let text else { return nil }
    if let seq = UInt64(text) { return seq }
    guard let time = parseTime(text) else {
        throw ValidationError("expected a seq or an ISO-8601 time, got \(text)")
    }
    let seq = try log.lastSeq(atOrBefore: upper ? time : time.advanced(by: .microseconds(-1)))
    return upper ? seq : seq + 1
}
