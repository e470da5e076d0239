import ArgumentParser
import Projections

struct DeliveriesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deliveries", abstract: "Outbound deliveries.", subcommands: [List.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Deliveries, optionally by status (pending, claimed, attempting, sent, failed, uncertain).")
        @OptionGroup var options: LogOptions
        @OptionGroup var at: AtOption
        @Option(help: "pending, claimed, attempting, sent, failed or uncertain.") var status: String?

        func run() async throws {
            let wanted = try status.map { text -> DeliveryStatus in
                guard let s = DeliveryStatus(rawValue: text) else {
                    throw ValidationError("--status must be pending, claimed, attempting, sent, failed or uncertain")
                }
                return s
            }
            try await inspect(options, at) { reader, _ in
                options.output(try Inspection.deliveries(wanted, reader)) { $0.map(Self.line) }
            }
        }

        static func line(_ d: DeliveryReport) -> String {
            "\(d.deliveryID)\t\(d.status.rawValue)\t\(d.account)\tto=\(d.recipient)\tattempt=\(d.attempt)"
                + "\ttoken=\(d.token)\t\(d.lastError.map { "error=\($0)" } ?? "")"
        }
    }
}
