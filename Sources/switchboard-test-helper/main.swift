// A separate process for the EventLog tests: appends, tails, holds a write transaction until killed, and
// opens logs under hostile conditions. Output is line-oriented so the tests can await each line.
import EventLog
import Foundation
import Logging


struct Options {
    var values: [String: String] = [:]
    init(_ args: ArraySlice<String>) {
        var iterator = args.makeIterator()
        while let arg = iterator.next() {
            guard arg.hasPrefix("--") else { continue }
            values[String(arg.dropFirst(2))] = iterator.next() ?? ""
        }
    }
    subscript(_ key: String) -> String? { values[key] }
    func int(_ key: String, _ fallback: Int) -> Int { values[key].flatMap(Int.init) ?? fallback }
}

/// Writes one line straight to fd 1 (unbuffered, so a SIGKILL loses nothing already said).
func say(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    bytes.withUnsafeBytes { _ = write(1, $0.baseAddress, $0.count) }
}

func openLog(_ options: Options, worker: String) throws -> EventLog {
    var configuration = EventLogConfiguration(
        directory: options["dir"]!, writer: WriterIdentity(role: "test", workerID: worker))
    if let size = options["initial-map-size"].flatMap(Int.init) { configuration.initialMapSize = size }
    if let size = options["max-map-size"].flatMap(Int.init) { configuration.maxMapSize = size }
    if options["durability"] == "relaxed" { configuration.durability = .relaxed }
    return try EventLog(configuration, logger: Logger(label: "helper", factory: { _ in SwiftLogNoOpLogHandler() }))
}

func payload(writer: String, index: Int, padding: Int = 0) -> [UInt8] {
    Array("{\"i\":\(index),\"pad\":\"\(String(repeating: "x", count: padding))\",\"writer\":\"\(writer)\"}".utf8)
}

func describe(_ error: any Error) -> String {
    if let error = error as? EventLogError { return "error \(error.code) \(error.message)" }
    return "error other \(error)"
}

// Die with the test process: a crashed test run must not leave helpers holding its output pipes open. The
// tests keep a pipe on our stdin; it reads EOF when the test process is gone.
if ProcessInfo.processInfo.environment["SWITCHBOARD_EXIT_ON_STDIN_EOF"] == "1" {
    Thread {
        var byte: UInt8 = 0
        while read(0, &byte, 1) > 0 {}
        _exit(3)
    }.start()
}

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    say("usage: switchboard-test-helper COMMAND --dir DIR ...")
    exit(2)
}
let command = arguments[1]
let options = Options(arguments.dropFirst(2))
let worker = options["writer"] ?? "helper"

do {
    switch command {
    case "append":
        // Appends --count events in batches of --batch, each awaited, so this process's order is its own order.
        let log = try openLog(options, worker: worker)
        let count = options.int("count", 100)
        let batch = max(1, options.int("batch", 1))
        var index = 0
        while index < count {
            let n = min(batch, count - index)
            let events = (0..<n).map {
                PendingEvent(type: "test.appended", payload: payload(writer: worker, index: index + $0))
            }
            try await log.append(events)
            index += n
        }
        log.close()
        say("done \(count)")

    case "append-acked":
        // Prints each seq once its append has returned (committed), then holds a write transaction open
        // when --hold is given, printing "in-txn" so the test can SIGKILL it there.
        let log = try openLog(options, worker: worker)
        for index in 0..<options.int("count", 10) {
            let seq = try await log.append([
                PendingEvent(type: "test.appended", payload: payload(writer: worker, index: index))
            ]).lowerBound
            say("acked \(seq)")
        }
        if options["hold"] != nil {
            _ = try await log.transact { context in
                try context.append(PendingEvent(type: "test.never-committed", payload: Array("{}".utf8)))
                say("in-txn")
                while true { pause() }
            }
        }
        log.close()
        say("done")

    case "tail":
        // Prints "seq writer-payload" for --count records, from --from or resuming after --checkpoint.
        let log = try openLog(options, worker: worker)
        let count = options.int("count", 10)
        let name = options["checkpoint"]
        let tail = try name.map { try log.tail(resumingAfter: $0) } ?? log.tail(from: UInt64(options.int("from", 1)))
        say("ready")
        var received = 0
        for try await record in tail {
            say("record \(record.seq) \(record.payloadText)")
            if let name { try await log.saveCheckpoint(name, seq: record.seq) }
            received += 1
            if received == count { break }
        }
        log.close()
        say("done \(received)")

    case "open":
        // Opens the log (optionally as another user) and appends one event: "ok" or the error code.
        if let user = options["as-user"] {
            guard let entry = getpwnam(user) else {
                say("error other no user \(user)")
                exit(3)
            }
            guard setgid(entry.pointee.pw_gid) == 0, setuid(entry.pointee.pw_uid) == 0 else {
                say("error other cannot become \(user)")
                exit(3)
            }
        }
        let log = try openLog(options, worker: worker)
        try await log.append([PendingEvent(type: "test.appended", payload: payload(writer: worker, index: 0))])
        log.close()
        say("ok")

    case "fill-disk":
        // Appends --record-size records until the filesystem refuses (RLIMIT_FSIZE caps data.mdb at --limit
        // bytes), printing each acknowledged seq, then the error.
        let log = try openLog(options, worker: worker)
        signal(SIGXFSZ, SIG_IGN)
        let limit = rlim_t(options.int("limit", 4 << 20))
        var rl = rlimit(rlim_cur: limit, rlim_max: limit)
        guard setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &rl) == 0 else {
            say("error other setrlimit failed")
            exit(3)
        }
        let size = options.int("record-size", 64 << 10)
        var index = 0
        while true {
            do {
                let seq = try await log.append([
                    PendingEvent(type: "test.appended", payload: payload(writer: worker, index: index, padding: size))
                ]).lowerBound
                say("acked \(seq)")
                index += 1
            } catch {
                say(describe(error))
                break
            }
        }
        // The process can still append after the failure once the file may grow again.
        rl = rlimit(rlim_cur: rlim_t.max, rlim_max: rlim_t.max)
        _ = setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &rl)
        let seq = try await log.append([PendingEvent(type: "test.appended", payload: payload(writer: worker, index: -1))])
        say("after \(seq.lowerBound)")
        log.close()
        say("done")

    default:
        say("error other unknown command \(command)")
        exit(2)
    }
} catch {
    say(describe(error))
    exit(3)
}
