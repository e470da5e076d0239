import ArgumentParser
import Projections

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Audits.", subcommands: [Duplicates.self])

    struct Duplicates: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Duplicate and unsafe sends, with evidence seqs; retries after a definite failure and uncertain deliveries in the summary. Exit 0 when clean, 1 with findings."
        )
        @OptionGroup var options: LogOptions
        @OptionGroup var at: AtOption

        func run() async throws {
            let log = try options.open()
            try await log.closeAfter {
                let report = try DuplicateAudit.run(log, upTo: try at.seq(in: log))
                options.output(report, text: Self.lines)
                if !report.clean { throw ExitCode(1) }
            }
        }

        /// The findings, the summary, then `[OK] …` or `[FINDINGS] n` as the last line.
        static func lines(_ report: AuditReport) -> [String] {
            let summary = report.summary
            var lines = report.findings.map(\.description)
            lines.append(
                "summary: \(summary.deliveries) deliveries, \(summary.attempts) provider calls, \(summary.sends) sent, "
                    + "\(summary.retriesAfterFailure) retries after a definite failure (up to seq \(summary.lastSeq))")
            if !summary.uncertain.isEmpty {
                lines.append(
                    "uncertain, for an operator to decide: \(summary.uncertain.count): "
                        + summary.uncertain.map(\.description).joined(separator: "; "))
            }
            if !summary.withoutOutcome.isEmpty {
                lines.append(
                    "calls without an outcome yet: \(summary.withoutOutcome.count): "
                        + summary.withoutOutcome.map(\.description).joined(separator: "; "))
            }
            lines.append(report.clean ? "[OK] no duplicate or unsafe sends" : "[FINDINGS] \(report.findings.count)")
            return lines
        }
    }
}
