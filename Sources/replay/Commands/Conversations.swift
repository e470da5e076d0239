import ArgumentParser
import Projections

struct ConversationsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conversations", abstract: "Conversations.", subcommands: [Show.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every conversation, or one conversation's history.")
        @OptionGroup var options: LogOptions
        @OptionGroup var at: AtOption
        @Option(help: "A conversation id: print its messages.") var id: String?
        @Option(help: "How many messages.") var limit = 50

        func run() async throws {
            try await inspect(options, at) { reader, _ in
                if let id {
                    options.output(try Inspection.history(id, limit: limit, reader)) { $0.lines }
                } else {
                    options.output(try Inspection.conversations(reader)) { conversations in
                        conversations.map {
                            "\($0.conversationID)\tmessages=\($0.messages)\tcontact=\($0.contactStatus ?? "?")"
                                + "\tlastSeq=\($0.lastSeq)" + ($0.title.map { "\ttitle=\($0)" } ?? "")
                                + ($0.deleted.map { "\tdeleted at \($0.at) by \($0.by)" } ?? "")
                        }
                    }
                }
            }
        }
    }
}
