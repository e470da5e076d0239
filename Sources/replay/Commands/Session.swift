import ArgumentParser
import Projections

struct SessionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "session", abstract: "Session entries.", subcommands: [List.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Session keys and sizes (never the values).")
        @OptionGroup var options: LogOptions
        @OptionGroup var at: AtOption
        @Option(help: "Only this account (namespace <channel>/<account>).") var account: String?
        @Option(help: "The channel of --account.") var channel = "whatsapp"

        func run() async throws {
            try await inspect(options, at) { reader, _ in
                let entries = try Inspection.sessionEntries(namespace: account.map { "\(channel)/\($0)" }, reader)
                options.output(entries) { entries in
                    entries.map { "\($0.namespace)\t\($0.key)\t\($0.bytes) bytes\($0.encrypted ? "\tencrypted" : "")" }
                }
            }
        }
    }
}
