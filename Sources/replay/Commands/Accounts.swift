import ArgumentParser
import Projections

struct AccountsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "accounts", abstract: "Channel accounts.", subcommands: [List.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Channel accounts seen in the log, with their lease holder.")
        @OptionGroup var options: LogOptions
        @OptionGroup var at: AtOption

        func run() async throws {
            try await inspect(options, at) { reader, now in
                options.output(try Inspection.accounts(reader, now: now)) { accounts in
                    accounts.map { "\($0.account)\tholder=\($0.holder ?? "none")" }
                }
            }
        }
    }
}
