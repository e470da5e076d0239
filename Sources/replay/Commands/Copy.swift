import ArgumentParser
import EventLog
import EventLogPostgres
import Foundation
import Projections

struct Copy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy a whole log into an empty one on either backend, then check they are equal. Exit 0 or 1.",
        discussion: """
            A log is lmdb:DIR (an LMDB directory) or postgres:URL (postgres://user:password@host:5432/db; \
            postgres: alone reads DATABASE_URL, keeping the password off the command line), its schema given by \
            --from-schema or --to-schema. Stop every writer of the source first. The target must hold no \
            records; it is created when missing. Records keep their seqs, times and writers; the target's \
            projections are made from them as appends make them. Then the record count, every record and its \
            envelope checksum, and the projection state digests are compared.
            """)

    @Option(help: "The log to copy: lmdb:DIR or postgres:URL.") var from: String
    @Option(help: "The empty log to copy into: lmdb:DIR or postgres:URL.") var to: String
    @Option(help: "With --from postgres:, the source log's schema.")
    var fromSchema = PostgresSchema.defaultName
    @Option(help: "With --to postgres:, the target log's schema.")
    var toSchema = PostgresSchema.defaultName
    @Option(help: "Records per page read and per commit into the target.") var batch = LogCopy.defaultBatch
    @Flag(help: "Print the report as one JSON object instead of text.") var json = false

    func validate() throws {
        guard batch > 0 else { throw ValidationError("--batch must be at least 1") }
    }

    func run() async throws {
        let source = CopyLocation.parse(from, option: "--from", schema: fromSchema)
        let target = CopyLocation.parse(to, option: "--to", schema: toSchema)
        let scratch = NSTemporaryDirectory() + "replay-copy-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let sourceLog = source.open(asTarget: false, scratch: scratch + "/source-local")
        let report = try await sourceLog.closeAfter {
            let targetLog = target.open(asTarget: true, scratch: scratch + "/target-local")
            return try await targetLog.closeAfter {
                do {
                    return try await LogCopy.run(
                        from: sourceLog, to: targetLog, sourceName: source.name, targetName: target.name,
                        batch: batch, scratchDirectory: scratch + "/rebuild", logger: quiet)
                } catch let error as EventLogError {
                    fail(error.message + (error.seq.map { " [seq \($0)]" } ?? ""))
                }
            }
        }
        if json {
            printJSON(report)
        } else {
            for line in Self.text(report) { print(line) }
        }
        if !report.equal { throw ExitCode(1) }
    }

    static func text(_ report: CopyReport) -> [String] {
        let seqs = report.lastSeq == 0 ? "none" : "seqs 1...\(report.lastSeq)"
        return [
            "copied \(report.records) records (\(seqs)) from \(report.source) to \(report.target) in "
                + String(format: "%.2f s", report.seconds),
            "records: \(report.identicalRecords) of \(report.lastSeq) identical (seq, time, writer, type, payload, "
                + "envelope checksum)",
            "state digest: source \(report.sourceDigest.prefix(16))… (\(report.sourceDigestFrom), "
                + "\(report.sourceEntries) entries), target \(report.targetDigest.prefix(16))… "
                + "(\(report.targetEntries) entries)",
        ] + report.problems.map { "[FAIL] \($0)" }
            + [report.equal ? "[OK] the copy equals the source" : "[FAIL] the copy differs from the source"]
    }
}

/// One end of a copy: an LMDB directory or a PostgreSQL log.
struct CopyLocation {
    enum Place {
        case lmdb(directory: String)
        case postgres(PostgresURL, schema: String)
    }

    let place: Place

    /// Parses `lmdb:DIR`, `postgres:URL` (`postgres:` alone: `DATABASE_URL`) or a bare `postgres://` URL. A bad
    /// value is one line on standard error and exit code 1, never quoting the value (it may hold a password).
    static func parse(_ text: String, option: String, schema: String) -> CopyLocation {
        let lower = text.lowercased()
        if lower.hasPrefix("lmdb:") {
            let directory = String(text.dropFirst("lmdb:".count))
            guard !directory.isEmpty else { fail("\(option): lmdb: needs a directory (lmdb:/var/lib/switchboard)") }
            return CopyLocation(place: .lmdb(directory: URL(fileURLWithPath: directory).standardizedFileURL.path))
        }
        var urlText: String
        if lower.hasPrefix("postgres://") || lower.hasPrefix("postgresql://") {
            urlText = text
        } else if let prefix = ["postgres:", "postgresql:"].first(where: lower.hasPrefix) {
            urlText = String(text.dropFirst(prefix.count))
        } else {
            fail("\(option) takes lmdb:DIR or postgres:URL")
        }
        if urlText.isEmpty {
            guard let fromEnvironment = ProcessInfo.processInfo.environment[PostgresURL.environmentKey],
                !fromEnvironment.isEmpty
            else { fail("\(option): postgres: without a URL reads DATABASE_URL, which is not set") }
            urlText = fromEnvironment
        }
        do {
            try PostgresSchema.validate(schema)
            return CopyLocation(place: .postgres(try PostgresURL(urlText), schema: schema))
        } catch {
            fail("\(option): \(error)")
        }
    }

    /// Where the log is, for messages and the report (never a password).
    var name: String {
        switch place {
        case .lmdb(let directory): "lmdb:\(directory)"
        case .postgres(let url, let schema): "postgres:\(url.redacted) schema \(schema)"
        }
    }

    /// Opens the log with the Switchboard projector: the source read as `replay` reads (it must exist; its
    /// projections are never rebuilt), the target created when missing. A failure is one line and exit code 1.
    func open(asTarget: Bool, scratch: String) -> EventLog {
        var configuration = EventLogConfiguration(
            directory: scratch, writer: WriterIdentity(role: "replay", workerID: "copy"))
        switch place {
        case .lmdb(let directory): configuration.directory = directory
        case .postgres(let url, let schema): configuration.backend = .postgres(url, schema: schema)
        }
        configuration.projector = SwitchboardProjector()
        configuration.createIfMissing = asTarget
        if !asTarget { configuration.projectionUpgrade = .leave }
        do {
            return try EventLog(configuration, logger: quiet)
        } catch let error as EventLogError where error.code == .notFound {
            fail("no event log in \(name)")
        } catch let error as EventLogError {
            fail("\(asTarget ? "the target" : "the source") \(name): \(error.message)")
        } catch {
            fail("\(asTarget ? "the target" : "the source") \(name): \(error)")
        }
    }
}
