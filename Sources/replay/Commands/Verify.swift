import ArgumentParser
import Foundation
import Projections

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Checksums, gapless seqs, and a rebuild of every projection compared with the live state and each snapshot. Exit 0 or 1."
    )
    @OptionGroup var options: LogOptions

    func run() async throws {
        let log = try options.open()
        try await log.closeAfter {
            let report = try await Verification.run(
                log, snapshots: StateSnapshots(logDirectory: options.dataDirectory),
                scratchDirectory: NSTemporaryDirectory() + "replay-verify-\(getpid())", logger: quiet)
            options.output(report) { report in
                report.problems.map { "[FAIL] \($0)" }
                    + [
                        report.ok
                            ? "[OK] \(report.records) records, seqs 1...\(report.lastSeq) gapless, checksums verified; \(report.digests)"
                            : "[FAIL] \(report.problems.count) problem(s) in \(report.lastSeq) records"
                    ]
            }
            if !report.ok { throw ExitCode(1) }
        }
    }
}
