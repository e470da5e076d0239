// replay: how operators read the log. Read-only (it never appends), so it is safe against a live log — except
// `copy`, which writes only into an empty target log.
import ArgumentParser

@main
struct Replay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read the Switchboard event log: inspect state, replay incidents, audit sends, check alerts.",
        subcommands: [
            LeaseCommand.self, AccountsCommand.self, SessionCommand.self, JobsCommand.self, DeliveriesCommand.self,
            ConversationsCommand.self, StateCommand.self, SnapshotsCommand.self, TimelineCommand.self,
            AuditCommand.self,
            Verify.self,
            Alerts.self, Export.self, Tail.self, Copy.self,
        ])
}
