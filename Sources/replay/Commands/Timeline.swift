import ArgumentParser
import EventLog
import SwitchboardEvents
import Projections

struct TimelineCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "timeline", abstract: "An incident's events in order, with who held each lease at that moment.")
    @OptionGroup var options: LogOptions
    @Option(help: "From a seq or ISO-8601 time.") var from: String?
    @Option(help: "To a seq or ISO-8601 time.") var to: String?
    @Option(help: "Only events of this account (e.g. default, or whatsapp/default).") var account: String?
    @Option(help: "Only this conversation.") var conversation: String?
    @Option(help: "Only this job.") var job: String?
    @Option(help: "Only this delivery.") var delivery: String?
    @Option(help: "Only records written by, or naming, this WORKER_ID.") var worker: String?

    func run() async throws {
        let log = try options.open()
        try await log.closeAfter {
            let first = try bound(from, log, upper: false) ?? 1
            let last = try bound(to, log, upper: true) ?? log.lastSeq()
            let filter = TimelineFilter(
                account: account, conversation: conversation, job: job, delivery: delivery, worker: worker)
            let redactions = try Redactions.of(log)
            options.output(try Timeline.run(log, from: first, to: last, filter: filter, redactions: redactions)) {
                $0.map(\.description)
            }
        }
    }
}
