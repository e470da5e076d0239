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
        @Option(help: "Which store: log (entries as events, the default) or local (files in --session-dir).")
        var store = "log"
        @Option(help: "The local store's folder (default <data-dir>/sessions).") var sessionDir: String?

        func run() async throws {
            let namespace = account.map { "\(channel)/\($0)" }
            let lines: ([SessionEntryReport]) -> [String] = { entries in
                entries.map { "\($0.namespace)\t\($0.key)\t\($0.bytes) bytes\($0.encrypted ? "\tencrypted" : "")" }
            }
            switch store {
            case "log":
                try await inspect(options, at) { reader, _ in
                    options.output(try Inspection.sessionEntries(namespace: namespace, reader), text: lines)
                }
            case "local":
                let directory = sessionDir ?? options.dataDirectory + "/sessions"
                options.output(
                    try Inspection.localSessionEntries(directory: directory, namespace: namespace), text: lines)
            default:
                fail("--store takes log or local, got '\(store)'")
            }
        }
    }
}
