import ArgumentParser
import EventLog
import SwitchboardEvents
import Projections

struct Export: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print records from --from to --to as JSON lines (one object per record; nothing when none).")
    @OptionGroup var options: LogOptions
    @Option(help: "First seq or ISO-8601 time.") var from: String?
    @Option(help: "Last seq or ISO-8601 time (default: the end).") var to: String?
    @Option(help: "Output format (jsonl).") var format = "jsonl"

    func validate() throws {
        guard format == "jsonl" else { throw ValidationError("only --format jsonl is supported") }
    }

    func run() async throws {
        let log = try options.open()
        try await log.closeAfter {
            let first = try bound(from, log, upper: false) ?? 1
            let end = try bound(to, log, upper: true) ?? .max
            let redactions = try Redactions.of(log)
            try log.withSnapshot { snapshot in
                try snapshot.forEach(from: first) { record in
                    guard record.seq <= end else { return false }
                    printJSON(RecordReport(record, redactions: redactions))
                    return true
                }
            }
        }
    }
}
