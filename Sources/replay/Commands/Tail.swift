import ArgumentParser
import EventLog
import SwitchboardEvents
import Foundation
import Projections

struct Tail: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Print the last records (JSON: an array); with --follow, keep printing new ones (JSON: one object per line)."
    )
    @OptionGroup var options: LogOptions
    @Option(name: [.customShort("n"), .long], help: "How many of the last records to print first.") var lines: UInt64 =
        10
    @Flag(name: .shortAndLong, help: "Keep printing records as they are committed.") var follow = false

    func run() async throws {
        let log = try options.open()
        try await log.closeAfter {
            let last = try log.lastSeq()
            var redactions = try Redactions.of(log)
            let start = last > lines ? last - lines + 1 : 1
            if follow {
                // A stream has no end to close an array at: JSON lines.
                for try await record in log.tail(from: start) {
                    try redactions.note(record)
                    let report = RecordReport(record, redactions: redactions)
                    if options.json { printJSON(report) } else { print(report.description) }
                    fflush(nil)
                }
            } else {
                let records =
                    last == 0 ? [] : try log.records(from: start).map { RecordReport($0, redactions: redactions) }
                options.output(records) { $0.map(\.description) }
            }
        }
    }
}
