// replay: reads the event log for operators. Read-only: safe against a live log while workers run.
import ArgumentParser
import EventLog
import Foundation
import Logging

@main
struct Replay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read the Switchboard event log: verify it, export it, follow it.",
        subcommands: [Verify.self, Export.self, Tail.self])
}

struct LogOptions: ParsableArguments {
    @Option(name: .customLong("data-dir"), help: "The log directory.")
    var dataDirectory = "./data"

    @Flag(help: "Print JSON (one object per line) instead of text.")
    var json = false

    func open() throws -> EventLog {
        var configuration = EventLogConfiguration(
            directory: dataDirectory, writer: WriterIdentity(role: "replay", workerID: "replay"))
        configuration.createIfMissing = false
        return try EventLog(configuration, logger: Logger(label: "replay", factory: { _ in SwiftLogNoOpLogHandler() }))
    }
}

/// One record as a JSON object (payload inlined when it is JSON).
func jsonLine(_ record: Record) -> String {
    var object: [String: Any] = [
        "seq": record.seq, "time": record.timestamp.description, "type": record.type,
        "schemaVersion": record.schemaVersion, "writer": record.writer.description,
        "role": record.writer.role, "workerID": record.writer.workerID,
        "instance": record.writer.instanceID.uuidString.lowercased(),
    ]
    if let correlation = record.correlationID { object["correlationID"] = correlation }
    if let causation = record.causationID { object["causationID"] = causation }
    if let payload = try? JSONSerialization.jsonObject(with: Data(record.payload), options: [.fragmentsAllowed]) {
        object["payload"] = payload
    } else {
        object["payloadBase64"] = Data(record.payload).base64EncodedString()
    }
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
    return String(decoding: data, as: UTF8.self)
}

func textLine(_ record: Record) -> String {
    var line = "\(record.seq)\t\(record.timestamp)\t\(record.type)\t\(record.writer)"
    if let correlation = record.correlationID { line += "\tcorr=\(correlation)" }
    if let causation = record.causationID { line += "\tcause=\(causation)" }
    return line + "\t" + record.payloadText
}

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every record's checksum and that seqs are gapless. Exit 0 when clean, 1 otherwise.")
    @OptionGroup var options: LogOptions

    func run() async throws {
        let log = try options.open()
        defer { log.close() }
        var expected: UInt64 = 1
        var problems: [String] = []
        var count = 0
        try log.withSnapshot { snapshot in
            let last = try snapshot.lastSeq
            // Read record by record so one corrupt record is reported and the scan goes on past it.
            while expected <= last {
                do {
                    if let record = try snapshot.record(at: expected) {
                        count += 1
                        _ = record
                    } else {
                        problems.append("seq \(expected): missing (gap)")
                    }
                } catch let error as EventLogError {
                    problems.append("seq \(expected): \(error.code): \(error.message)")
                }
                expected += 1
            }
        }
        if options.json {
            let object: [String: Any] = ["records": count, "lastSeq": expected - 1, "problems": problems, "ok": problems.isEmpty]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            for problem in problems { print("[FAIL] \(problem)") }
            print(problems.isEmpty ? "[OK] \(count) records, seqs 1...\(expected - 1) gapless, checksums verified" : "[FAIL] \(problems.count) problem(s) in \(expected - 1) records")
        }
        if !problems.isEmpty { throw ExitCode(1) }
    }
}

struct Export: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print records from --from to --to as JSON lines.")
    @OptionGroup var options: LogOptions
    @Option(help: "First seq.") var from: UInt64 = 1
    @Option(help: "Last seq (default: the end).") var to: UInt64?
    @Option(help: "Output format (jsonl).") var format = "jsonl"

    func validate() throws {
        guard format == "jsonl" else { throw ValidationError("only --format jsonl is supported") }
    }

    func run() async throws {
        let log = try options.open()
        defer { log.close() }
        let end = to ?? .max
        try log.withSnapshot { snapshot in
            try snapshot.forEach(from: from) { record in
                guard record.seq <= end else { return false }
                print(jsonLine(record))
                return true
            }
        }
    }
}

struct Tail: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the last records; with --follow, keep printing new ones.")
    @OptionGroup var options: LogOptions
    @Option(name: .shortAndLong, help: "How many of the last records to print first.") var lines: UInt64 = 10
    @Flag(name: .shortAndLong, help: "Keep printing records as they are committed.") var follow = false

    func run() async throws {
        let log = try options.open()
        defer { log.close() }
        let last = try log.lastSeq()
        let start = last > lines ? last - lines + 1 : 1
        if follow {
            for try await record in log.tail(from: start) {
                print(options.json ? jsonLine(record) : textLine(record))
                fflush(nil)
            }
        } else {
            for record in try log.records(from: start) {
                print(options.json ? jsonLine(record) : textLine(record))
            }
        }
    }
}
