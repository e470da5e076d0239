import ArgumentParser
import Projections

struct LeaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lease", abstract: "Lease state.", subcommands: [Get.self, Owned.self])

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The lease of a channel account (JSON: one object, or null when there is none).")
        @OptionGroup var options: LogOptions
        @OptionGroup var at: AtOption
        @Option(help: "The account id.") var account = "default"
        @Option(help: "The channel.") var channel = "whatsapp"

        func run() async throws {
            try await inspect(options, at) { reader, now in
                let lease = try Inspection.lease("\(channel)/\(account)", reader, now: now)
                options.output(lease) { [$0.map(leaseLine) ?? "no lease for \(channel)/\(account)"] }
            }
        }
    }

    struct Owned: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Leases a worker holds now (live only).")
        @OptionGroup var options: LogOptions
        @OptionGroup var at: AtOption
        @Option(help: "The WORKER_ID.") var owner: String

        func run() async throws {
            try await inspect(options, at) { reader, now in
                options.output(try Inspection.leases(ownedBy: owner, reader, now: now)) { $0.map(leaseLine) }
            }
        }
    }
}

/// `resource state owner=worker#instance token=… expiresAt=…`, tab-separated.
func leaseLine(_ lease: LeaseReport) -> String {
    "\(lease.resource)\t\(lease.state.rawValue)\towner=\(lease.owner)\ttoken=\(lease.token)\texpiresAt=\(lease.expiresAt)"
}
