import ArgumentParser
import Projections

struct StateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "state", abstract: "Every projection as it was at a point (default: now).")
    @OptionGroup var options: LogOptions
    @OptionGroup var at: AtOption

    func run() async throws {
        let log = try options.open()
        try await log.closeAfter {
            let seq = try at.seq(in: log) ?? log.lastSeq()
            try await at.withReader(log) { reader, base in
                let report = try Inspection.state(
                    reader, seq: seq, now: try clock(log, upTo: seq), rebuiltFrom: base?.seq)
                let source = at.at == nil ? "live" : "rebuilt from \(base.map { "snapshot \($0.seq)" } ?? "seq 1")"
                options.output(report) { report in
                    func counts(_ byStatus: [String: Int]) -> String {
                        byStatus.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " ")
                    }
                    return [
                        "state at seq \(report.seq) (\(report.time)), digest \(report.digest.prefix(16))… (\(source))"
                    ]
                        + ["leases:"] + report.leases.map { "  " + leaseLine($0) }
                        + [
                            "jobs: " + counts(report.jobs), "deliveries: " + counts(report.deliveries),
                            "conversations: \(report.conversations)  contacts: \(report.contacts)  "
                                + "session entries: \(report.sessionEntries)",
                        ]
                }
            }
        }
    }
}
