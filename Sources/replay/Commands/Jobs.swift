import ArgumentParser
import Projections

struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "jobs", abstract: "Jobs.", subcommands: [List.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Jobs, optionally by status (pending, running, completed, dead).")
        @OptionGroup var options: LogOptions
        @OptionGroup var at: AtOption
        @Option(help: "pending, running, completed or dead.") var status: String?

        func run() async throws {
            let wanted = try status.map { text -> JobStatus in
                guard let s = JobStatus(rawValue: text) else {
                    throw ValidationError("--status must be pending, running, completed or dead")
                }
                return s
            }
            try await inspect(options, at) { reader, _ in
                options.output(try Inspection.jobs(wanted, reader)) { $0.map(Self.line) }
            }
        }

        static func line(_ job: JobReport) -> String {
            "\(job.jobID)\t\(job.status.rawValue)\tconv=\(job.conversationID)\tattempt=\(job.attempt)/\(job.maxAttempts)"
                + "\ttoken=\(job.token)\t\(job.lastReason.map { "last=\($0)" } ?? "")"
        }
    }
}
