import ArgumentParser
import Projections

struct SnapshotsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshots",
        abstract: "Copies of all projection state at points of the log, which `--at` rebuilds from.",
        subcommands: [List.self, Take.self])

    static func line(_ entry: StateSnapshots.Entry) -> String {
        "\(entry.seq)\t\(entry.time ?? "-")\t\(entry.format)\tentries=\(entry.entries)\tbytes=\(entry.bytes)\t\(entry.path)"
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The snapshots on disk, oldest first.")
        @OptionGroup var options: LogOptions

        func run() async throws {
            try options.requireLog()
            options.output(StateSnapshots(logDirectory: options.dataDirectory).list()) {
                $0.map(SnapshotsCommand.line)
            }
        }
    }

    struct Take: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Copy the live projections into a new snapshot now (the agent takes them every SNAPSHOT_EVERY events). Writes only under <data-dir>/snapshots."
        )
        @OptionGroup var options: LogOptions

        func run() async throws {
            let log = try options.open()
            let entry = try await log.closeAfter {
                try StateSnapshots(logDirectory: options.dataDirectory).take(of: log, logger: quiet)
            }
            guard let entry else { fail("no snapshot taken: another process is taking one, or one exists at this seq") }
            options.output(entry) { [SnapshotsCommand.line($0)] }
        }
    }
}
