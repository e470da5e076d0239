// replay: how operators read the log. Read-only (it never appends), so it is safe against a live log.
import ArgumentParser
import EventLog
import Foundation
import Logging
import Projections

@main
struct Replay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read the Switchboard event log: inspect state, replay incidents, audit sends, check alerts.",
        subcommands: [
            LeaseCommand.self, AccountsCommand.self, SessionCommand.self, JobsCommand.self, DeliveriesCommand.self,
            ConversationsCommand.self, StateCommand.self, SnapshotsCommand.self, Timeline.self, AuditCommand.self,
            Verify.self,
            Alerts.self, Export.self, Tail.self,
        ])
}

let quiet = Logger(label: "replay", factory: { _ in SwiftLogNoOpLogHandler() })

struct LogOptions: ParsableArguments {
    @Option(name: .customLong("data-dir"), help: "The log directory.")
    var dataDirectory = "./data"

    @Flag(help: "Print JSON (one object per line) instead of text.")
    var json = false

    func open() throws -> EventLog {
        var configuration = EventLogConfiguration(
            directory: dataDirectory, writer: WriterIdentity(role: "replay", workerID: "replay"))
        configuration.createIfMissing = false
        configuration.projector = SwitchboardProjector()
        configuration.projectionUpgrade = .leave  // read-only: never rebuild the live tables
        return try EventLog(configuration, logger: quiet)
    }
}

/// `--at` as a seq or an ISO-8601 time.
struct AtOption: ParsableArguments {
    @Option(help: "Show state as of a seq (e.g. 1200) or an ISO-8601 time (e.g. 2026-11-29T05:00:00Z).")
    var at: String?

    func seq(in log: EventLog) throws -> UInt64? {
        guard let at else { return nil }
        if let seq = UInt64(at) { return min(seq, try log.lastSeq()) }  // past the end: the state now
        guard let time = parseTime(at) else { throw ValidationError("--at takes a seq or an ISO-8601 time, got \(at)") }
        return try log.lastSeq(atOrBefore: time)
    }

    @Flag(help: "With --at, rebuild from seq 1 instead of from the nearest snapshot.")
    var noSnapshots = false

    /// Runs `body` with a reader over live state, or over state rebuilt up to `--at` (from the nearest
    /// snapshot) and the snapshot it started from; the scratch copy is closed and removed afterwards.
    func withReader<R>(_ log: EventLog, _ body: (StateReader, StateSnapshots.Entry?) async throws -> R)
        async throws -> R
    {
        guard let seq = try seq(in: log) else { return try await body(try StateReader.live(log), nil) }
        let scratch = NSTemporaryDirectory() + "replay-state-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let snapshots = noSnapshots ? nil : StateSnapshots(logDirectory: log.configuration.directory)
        let (reader, base) = try await Rebuild.state(
            of: log, upTo: seq, snapshots: snapshots, scratchDirectory: scratch, logger: quiet)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        return try await reader.log.closeAfter { try await body(reader, base) }
    }
}

/// Opens the log, builds the reader for `--at` (live state, or state rebuilt up to that point) and the log clock
/// at that point, runs `body`, and cleans up.
func inspect(_ options: LogOptions, _ at: AtOption, _ body: (StateReader, LogTimestamp) throws -> Void) async throws {
    let log = try options.open()
    try await log.closeAfter {
        let seq = try at.seq(in: log)
        try await at.withReader(log) { reader, _ in try body(reader, try clock(log, upTo: seq)) }
    }
}

/// Parses ISO-8601 `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` exactly, to the microsecond (the form replay prints).
func parseTime(_ text: String) -> LogTimestamp? {
    let chars = Array(text.utf8)
    func number(_ from: Int, _ count: Int) -> Int? {
        guard from + count <= chars.count else { return nil }
        var value = 0
        for c in chars[from..<from + count] {
            guard c >= 48 && c <= 57 else { return nil }
            value = value * 10 + Int(c - 48)
        }
        return value
    }
    guard chars.count >= 20, chars[4] == UInt8(ascii: "-"), chars[7] == UInt8(ascii: "-"),
        chars[10] == UInt8(ascii: "T") || chars[10] == UInt8(ascii: " "), chars[13] == UInt8(ascii: ":"),
        chars[16] == UInt8(ascii: ":"),
        let year = number(0, 4), let month = number(5, 2), let day = number(8, 2), let hour = number(11, 2),
        let minute = number(14, 2), let second = number(17, 2)
    else { return nil }
    var index = 19
    var micros = 0
    if index < chars.count, chars[index] == UInt8(ascii: ".") {
        index += 1
        var digits = 0
        while index < chars.count, chars[index] >= 48, chars[index] <= 57 {
            if digits < 6 { micros = micros * 10 + Int(chars[index] - 48) }
            digits += 1
            index += 1
        }
        guard digits > 0 else { return nil }
        for _ in digits..<max(digits, 6) { micros *= 10 }
    }
    var offset = 0
    if index < chars.count, chars[index] == UInt8(ascii: "Z") {
        index += 1
    } else if index + 6 <= chars.count, chars[index] == UInt8(ascii: "+") || chars[index] == UInt8(ascii: "-"),
        let h = number(index + 1, 2), let m = number(index + 4, 2)
    {
        offset = (h * 3600 + m * 60) * (chars[index] == UInt8(ascii: "-") ? -1 : 1)
        index += 6
    } else {
        return nil
    }
    guard index == chars.count, (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
    else { return nil }
    var parts = tm()
    parts.tm_year = Int32(year - 1900)
    parts.tm_mon = Int32(month - 1)
    parts.tm_mday = Int32(day)
    parts.tm_hour = Int32(hour)
    parts.tm_min = Int32(minute)
    parts.tm_sec = Int32(second)
    let seconds = Int64(timegm(&parts)) - Int64(offset)
    return LogTimestamp(microseconds: seconds * 1_000_000 + Int64(micros))
}

/// `10m`, `24h`, `30s`, `500ms`, `2d`.
func parseDuration(_ text: String) -> Duration? {
    let units: [(String, Duration)] = [
        ("ms", .milliseconds(1)), ("s", .seconds(1)), ("m", .seconds(60)), ("h", .seconds(3600)),
        ("d", .seconds(86400)),
    ]
    for (suffix, unit) in units where text.hasSuffix(suffix) {
        if let n = Int(text.dropLast(suffix.count)), n >= 0 { return unit * n }
    }
    return nil
}

func printJSON(_ object: Any) {
    let data =
        (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
    print(String(decoding: data, as: UTF8.self))
}

func time(_ t: LogTimestamp?) -> String { t.map { "\($0)" } ?? "-" }

func leaseObject(_ lease: LeaseState, now: LogTimestamp) -> [String: Any] {
    [
        "resource": lease.resource, "ownerWorkerID": lease.owner.workerID, "ownerInstance": lease.owner.instance,
        "token": lease.token, "acquiredAt": "\(lease.acquiredAt)", "expiresAt": "\(lease.expiresAt)",
        "held": lease.held, "live": lease.isLive(at: now),
    ]
}

func leaseLine(_ lease: LeaseState, now: LogTimestamp) -> String {
    let state = lease.isLive(at: now) ? "held" : (lease.held ? "expired" : "released")
    return
        "\(lease.resource)\t\(state)\towner=\(lease.owner.workerID)#\(lease.owner.instance.prefix(8).lowercased())\ttoken=\(lease.token)\texpiresAt=\(lease.expiresAt)"
}

/// The log clock at the point being shown: the time of the last record included.
func clock(_ log: EventLog, upTo seq: UInt64?) throws -> LogTimestamp {
    let last = try seq ?? log.lastSeq()
    return try log.record(at: max(1, last))?.timestamp ?? LogTimestamp(microseconds: 0)
}

// MARK: Inspection

struct LeaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lease", abstract: "Lease state.", subcommands: [Get.self, Owned.self])

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The lease of a channel account.")
        @OptionGroup var options: LogOptions
        @OptionGroup var at: AtOption
        @Option(help: "The account id.") var account = "default"
        @Option(help: "The channel.") var channel = "whatsapp"

        func run() async throws {
            try await inspect(options, at) { reader, now in
                guard let lease = try reader.lease("\(channel)/\(account)") else {
                    if options.json { print("null") } else { print("no lease for \(channel)/\(account)") }
                    return
                }
                if options.json { printJSON(leaseObject(lease, now: now)) } else { print(leaseLine(lease, now: now)) }
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
                for lease in try reader.leases() where lease.owner.workerID == owner && lease.isLive(at: now) {
                    if options.json {
                        printJSON(leaseObject(lease, now: now))
                    } else {
                        print(leaseLine(lease, now: now))
                    }
                }
            }
        }
    }
}

struct AccountsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "accounts", abstract: "Channel accounts.", subcommands: [List.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Channel accounts seen in the log, with their lease holder.")
        @OptionGroup var options: LogOptions
        @OptionGroup var at: AtOption

        func run() async throws {
            try await inspect(options, at) { reader, now in
                var accounts: Set<String> = []
                for lease in try reader.leases() { accounts.insert(lease.resource) }
                for delivery in try reader.deliveries() { accounts.insert(delivery.leaseResource) }
                for conversation in try reader.conversations() {
                    accounts.insert("\(conversation.channel)/\(conversation.accountID)")
                }
                for account in accounts.sorted() {
                    let lease = try reader.lease(account)
                    let holder = lease.flatMap {
                        $0.isLive(at: now) ? "\($0.owner.workerID)#\($0.owner.instance.prefix(8).lowercased())" : nil
                    }
                    if options.json {
                        printJSON([
                            "account": account, "holder": holder as Any? ?? NSNull(),
                            "token": lease?.token as Any? ?? NSNull(),
                        ])
                    } else {
                        print("\(account)\tholder=\(holder ?? "none")")
                    }
                }
            }
        }
    }
}

struct SessionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "session", abstract: "Session entries.", subcommands: [List.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Session keys and sizes (never the values).")
        @OptionGroup var options: LogOptions
        @OptionGroup var at: AtOption
        @Option(help: "Only this account (namespace <channel>/<account>).") var account: String?
        @Option(help: "The channel of --account.") var channel = "whatsapp"

        func run() async throws {
            try await inspect(options, at) { reader, _ in
                for entry in try reader.sessionEntries(namespace: account.map { "\(channel)/\($0)" }) {
                    if options.json {
                        printJSON([
                            "namespace": entry.namespace, "key": entry.key, "bytes": entry.bytes,
                            "encrypted": entry.encrypted,
                        ])
                    } else {
                        print(
                            "\(entry.namespace)\t\(entry.key)\t\(entry.bytes) bytes\(entry.encrypted ? "\tencrypted" : "")"
                        )
                    }
                }
            }
        }
    }
}

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
                for job in try reader.jobs(wanted) {
                    if options.json {
                        printJSON([
                            "jobID": job.jobID, "status": job.status.rawValue, "conversationID": job.conversationID,
                            "attempt": job.attempt,
                            "maxAttempts": job.maxAttempts, "token": job.token,
                            "claimedBy": job.claimedBy?.description ?? NSNull(),
                            "visibleUntil": job.visibleUntil.map { "\($0)" } ?? NSNull(),
                            "notBefore": "\(job.notBefore)",
                            "lastReason": job.lastReason ?? NSNull(), "lastMessage": job.lastMessage ?? NSNull(),
                        ])
                    } else {
                        print(
                            "\(job.jobID)\t\(job.status.rawValue)\tconv=\(job.conversationID)\tattempt=\(job.attempt)/\(job.maxAttempts)\ttoken=\(job.token)\t\(job.lastReason.map { "last=\($0)" } ?? "")"
                        )
                    }
                }
            }
        }
    }
}

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
                for d in try reader.deliveries(wanted) {
                    if options.json {
                        printJSON([
                            "deliveryID": d.deliveryID, "status": d.status.rawValue, "account": d.leaseResource,
                            "recipient": d.recipient,
                            "attempt": d.attempt, "token": d.token, "leaseToken": d.leaseToken ?? NSNull(),
                            "providerMessageID": d.providerMessageID ?? NSNull(), "lastError": d.lastError ?? NSNull(),
                            "idempotencyKey": d.idempotencyKey,
                        ])
                    } else {
                        print(
                            "\(d.deliveryID)\t\(d.status.rawValue)\t\(d.leaseResource)\tto=\(d.recipient)\tattempt=\(d.attempt)\ttoken=\(d.token)\t\(d.lastError.map { "error=\($0)" } ?? "")"
                        )
                    }
                }
            }
        }
    }
}

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
                    for message in try reader.history(id, limit: limit) {
                        if options.json {
                            printJSON([
                                "seq": message.seq, "time": "\(message.time)", "role": message.role,
                                "text": message.text,
                            ])
                        } else {
                            print("\(message.seq)\t\(message.time)\t\(message.role)\t\(message.text)")
                        }
                    }
                    return
                }
                for c in try reader.conversations() {
                    let contact = try reader.contact(channel: c.channel, accountID: c.accountID, contactID: c.contactID)
                    if options.json {
                        printJSON([
                            "conversationID": c.conversationID, "channel": c.channel, "accountID": c.accountID,
                            "contactID": c.contactID,
                            "messages": c.messageCount, "firstSeq": c.firstSeq, "lastSeq": c.lastSeq,
                            "contactStatus": contact?.status ?? NSNull(),
                        ])
                    } else {
                        print(
                            "\(c.conversationID)\tmessages=\(c.messageCount)\tcontact=\(contact?.status ?? "?")\tlastSeq=\(c.lastSeq)"
                        )
                    }
                }
            }
        }
    }
}

struct StateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "state", abstract: "Every projection as it was at a point (default: now).")
    @OptionGroup var options: LogOptions
    @OptionGroup var at: AtOption

    func run() async throws {
        let log = try options.open()
        try await log.closeAfter {
            let seq = try at.seq(in: log) ?? log.lastSeq()
            try await at.withReader(log) { reader, base in try report(log, seq: seq, reader: reader, base: base) }
        }
    }

    func report(_ log: EventLog, seq: UInt64, reader: StateReader, base: StateSnapshots.Entry?) throws {
        let now = try clock(log, upTo: seq)
        let source = base.map { "snapshot \($0.seq)" } ?? "seq 1"
        let digest = try reader.digest()
        let jobs = try reader.jobs()
        let deliveries = try reader.deliveries()
        if options.json {
            printJSON([
                "seq": seq, "time": "\(now)", "digest": digest.hex,
                "rebuiltFrom": base.map { $0.seq as Any } ?? NSNull(),
                "leases": try reader.leases().map { leaseObject($0, now: now) },
                "jobs": Dictionary(grouping: jobs, by: \.status.rawValue).mapValues(\.count),
                "deliveries": Dictionary(grouping: deliveries, by: \.status.rawValue).mapValues(\.count),
                "conversations": try reader.conversations().count, "contacts": try reader.contacts().count,
                "sessionEntries": try reader.sessionEntries().count,
            ])
            return
        }
        print(
            "state at seq \(seq) (\(now)), digest \(digest.hex.prefix(16))… (\(at.at == nil ? "live" : "rebuilt from \(source)"))"
        )
        print("leases:")
        for lease in try reader.leases() { print("  " + leaseLine(lease, now: now)) }
        print(
            "jobs: "
                + Dictionary(grouping: jobs, by: \.status.rawValue).map { "\($0.key)=\($0.value.count)" }.sorted()
                .joined(separator: " "))
        print(
            "deliveries: "
                + Dictionary(grouping: deliveries, by: \.status.rawValue).map { "\($0.key)=\($0.value.count)" }.sorted()
                .joined(separator: " "))
        print(
            "conversations: \(try reader.conversations().count)  contacts: \(try reader.contacts().count)  session entries: \(try reader.sessionEntries().count)"
        )
    }
}

struct SnapshotsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshots",
        abstract: "Copies of all projection state at points of the log, which `--at` rebuilds from.",
        subcommands: [List.self, Take.self])

    static func object(_ entry: StateSnapshots.Entry) -> [String: Any] {
        [
            "seq": entry.seq, "time": entry.time ?? NSNull(), "format": entry.format, "entries": entry.entries,
            "bytes": entry.bytes, "path": entry.path,
        ]
    }

    static func line(_ entry: StateSnapshots.Entry) -> String {
        "\(entry.seq)\t\(entry.time ?? "-")\t\(entry.format)\tentries=\(entry.entries)\tbytes=\(entry.bytes)\t\(entry.path)"
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The snapshots on disk, oldest first.")
        @OptionGroup var options: LogOptions

        func run() async throws {
            for entry in StateSnapshots(logDirectory: options.dataDirectory).list() {
                if options.json {
                    printJSON(SnapshotsCommand.object(entry))
                } else {
                    print(SnapshotsCommand.line(entry))
                }
            }
        }
    }

    struct Take: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Copy the live projections into a new snapshot now (the agent takes them every SNAPSHOT_EVERY events). Writes only under <data-dir>/snapshots."
        )
        @OptionGroup var options: LogOptions

        func run() async throws {
            let log = try options.open()
            try await log.closeAfter { try await run(log) }
        }

        func run(_ log: EventLog) async throws {
            guard let entry = try StateSnapshots(logDirectory: options.dataDirectory).take(of: log, logger: quiet)
            else {
                FileHandle.standardError.write(
                    Data("replay: no snapshot taken: another process is taking one, or one exists at this seq\n".utf8))
                throw ExitCode(1)
            }
            if options.json { printJSON(SnapshotsCommand.object(entry)) } else { print(SnapshotsCommand.line(entry)) }
        }
    }
}

// MARK: Incidents

struct Timeline: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "An incident's events in order, with who held each lease at that moment.")
    @OptionGroup var options: LogOptions
    @Option(help: "From a seq or ISO-8601 time.") var from: String?
    @Option(help: "To a seq or ISO-8601 time.") var to: String?
    @Option(help: "Only events of this account (e.g. default, or whatsapp/default).") var account: String?
    @Option(help: "Only this conversation.") var conversation: String?
    @Option(help: "Only this job.") var job: String?
    @Option(help: "Only this delivery.") var delivery: String?
    @Option(help: "Only records written by, or naming, this WORKER_ID.") var worker: String?

    func bound(_ text: String?, _ log: EventLog, upper: Bool) throws -> UInt64? {
        guard let text else { return nil }
        if let seq = UInt64(text) { return seq }
        guard let time = parseTime(text) else {
            throw ValidationError("expected a seq or an ISO-8601 time, got \(text)")
        }
        let seq = try log.lastSeq(atOrBefore: upper ? time : time.advanced(by: .microseconds(-1)))
        return upper ? seq : seq + 1
    }

    func run() async throws {
        let log = try options.open()
        try await log.closeAfter { try await run(log) }
    }

    func run(_ log: EventLog) async throws {
        let first = try bound(from, log, upper: false) ?? 1
        let last = try bound(to, log, upper: true) ?? log.lastSeq()
        var holders: [String: (owner: String, token: UInt64, expiresAt: LogTimestamp)] = [:]
        try log.withSnapshot { snapshot in
            try snapshot.forEach(from: 1) { record in
                guard record.seq <= last else { return false }
                let event = try record.event()
                switch event {
                case let e as LeaseAcquired:
                    holders[e.resource] = (
                        "\(e.ownerWorkerID)#\(e.ownerInstance.prefix(8).lowercased())", e.token, e.expiresAt
                    )
                case let e as LeaseRenewed: holders[e.resource]?.expiresAt = e.expiresAt
                case let e as LeaseReleased: if holders[e.resource]?.token == e.token { holders[e.resource] = nil }
                case let e as LeaseExpired: if holders[e.resource]?.token == e.token { holders[e.resource] = nil }
                default: break
                }
                guard record.seq >= first, matches(record) else { return true }
                let live = holders.filter { $0.value.expiresAt >= record.timestamp }
                    .map { "\($0.key)=\($0.value.owner)@\($0.value.token)" }.sorted().joined(separator: ",")
                if options.json {
                    var object =
                        (try? JSONSerialization.jsonObject(with: Data(record.payload))) as? [String: Any] ?? [:]
                    object = [
                        "seq": record.seq, "time": "\(record.timestamp)", "type": record.type,
                        "writer": record.writer.description,
                        "payload": object, "leaseHolders": live.isEmpty ? "-" : live,
                    ]
                    printJSON(object)
                } else {
                    print(
                        "\(record.seq)\t\(record.timestamp)\t\(record.type)\t\(record.writer)\tholders=\(live.isEmpty ? "-" : live)\t\(record.payloadText)"
                    )
                }
                return true
            }
        }
    }

    func matches(_ record: Record) -> Bool {
        let text = record.payloadText
        func has(_ field: String, _ value: String) -> Bool { text.contains("\"\(field)\":\"\(value)\"") }
        if let account {
            // `default` means the WhatsApp account, like `lease get`; `telegram/default` names the channel.
            let resource = account.contains("/") ? account : "whatsapp/\(account)"
            let parts = resource.split(separator: "/", maxSplits: 1).map(String.init)
            let sameAccount = parts.count == 2 && has("channel", parts[0]) && has("accountID", parts[1])
            guard
                has("resource", resource) || has("leaseResource", resource) || has("namespace", resource)
                    || has("subject", resource) || sameAccount
            else { return false }
        }
        if let conversation, !(has("conversationID", conversation) || record.correlationID == conversation) {
            return false
        }
        if let job, !has("jobID", job) && !(record.type == CommandRejected.eventType && has("subject", job)) {
            return false
        }
        if let delivery,
            !has("deliveryID", delivery) && !(record.type == CommandRejected.eventType && has("subject", delivery))
        {
            return false
        }
        if let worker, record.writer.workerID != worker && !text.contains("\"\(worker)\"") { return false }
        return true
    }
}

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Audits.", subcommands: [Duplicates.self])

    struct Duplicates: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Duplicate and unsafe sends, with evidence. Exit 0 when clean, 1 with findings.")
        @OptionGroup var options: LogOptions
        @OptionGroup var at: AtOption

        func run() async throws {
            let log = try options.open()
            try await log.closeAfter { try await run(log) }
        }

        func run(_ log: EventLog) async throws {
            let findings = try DuplicateAudit.run(log, upTo: try at.seq(in: log))
            for finding in findings {
                if options.json {
                    printJSON([
                        "kind": finding.kind, "subject": finding.subject, "seqs": finding.seqs,
                        "message": finding.message,
                    ])
                } else {
                    print(finding.description)
                }
            }
            if !options.json {
                print(findings.isEmpty ? "[OK] no duplicate or unsafe sends" : "[FINDINGS] \(findings.count)")
            }
            if !findings.isEmpty { throw ExitCode(1) }
        }
    }
}

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Checksums, gapless seqs, and a rebuild of every projection compared with the live state and each snapshot. Exit 0 or 1."
    )
    @OptionGroup var options: LogOptions

    func run() async throws {
        let log = try options.open()
        try await log.closeAfter { try await run(log) }
    }

    func run(_ log: EventLog) async throws {
        var expected: UInt64 = 1
        var problems: [String] = []
        var count = 0
        try log.withSnapshot { snapshot in
            let last = try snapshot.lastSeq
            // Record by record, so one corrupt record is reported and the check goes on past it.
            while expected <= last {
                do {
                    if try snapshot.record(at: expected) != nil {
                        count += 1
                    } else {
                        problems.append("seq \(expected): missing (gap)")
                    }
                } catch let error as EventLogError {
                    problems.append("seq \(expected): \(error.code): \(error.message)")
                }
                expected += 1
            }
        }
        var digests = "skipped (records failed)"
        if problems.isEmpty && log.projections != .current {
            digests = "skipped (live projections are stale)"
            problems.append("projections: \(log.projections); an agent of this build rebuilds them when it starts")
        } else if problems.isEmpty {
            let live = try StateReader.live(log).digest()
            let scratch = NSTemporaryDirectory() + "replay-verify-\(getpid())"
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            // Snapshots are checked against the same rebuild: its digest at each snapshot's seq.
            let snapshots = StateSnapshots(logDirectory: options.dataDirectory).list()
                .filter { $0.format == SwitchboardProjector.format.description && $0.seq <= live.seq }
            let rebuilt = try await Rebuild.run(
                of: log, upTo: live.seq, digestsAt: Set(snapshots.map(\.seq)), scratchDirectory: scratch, logger: quiet)
            if live == rebuilt.final {
                digests = "rebuild digest \(live.hex.prefix(16))… equals live (\(live.entries) entries)"
            } else {
                digests = "rebuild digest \(rebuilt.final.hex.prefix(16))… differs from live \(live.hex.prefix(16))…"
                problems.append("projections: \(digests)")
            }
            for entry in snapshots {
                do {
                    let copy = try StateSnapshots(logDirectory: options.dataDirectory).open(entry, logger: quiet)
                    var stored = try await copy.closeAfter { try StateReader(log: copy).digest() }
                    stored.seq = entry.seq
                    if stored != rebuilt.digests[entry.seq] {
                        problems.append(
                            "snapshot \(entry.seq): digest \(stored.hex.prefix(16))… differs from the rebuild's "
                                + "\(rebuilt.digests[entry.seq]?.hex.prefix(16) ?? "none")… at that seq; delete \(entry.path)"
                        )
                    }
                } catch {
                    problems.append("snapshot \(entry.seq): unreadable (\(error)); delete \(entry.path)")
                }
            }
            if !snapshots.isEmpty { digests += "; \(snapshots.count) snapshot(s) checked" }
        }
        if options.json {
            printJSON(["records": count, "lastSeq": expected - 1, "problems": problems, "ok": problems.isEmpty])
        } else {
            for problem in problems { print("[FAIL] \(problem)") }
            if problems.isEmpty {
                print("[OK] \(count) records, seqs 1...\(expected - 1) gapless, checksums verified; \(digests)")
            } else {
                print("[FAIL] \(problems.count) problem(s) in \(expected - 1) records")
            }
        }
        if !problems.isEmpty { throw ExitCode(1) }
    }
}

struct Alerts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The operational alert check over log events. Exit 0 healthy, 2 alert, 1 error.")
    @OptionGroup var options: LogOptions
    @OptionGroup var at: AtOption
    @Option(help: "Window for disconnect bursts (e.g. 10m).") var burstWindow = "10m"
    @Option(help: "How far back to look (e.g. 24h).") var lookback = "24h"
    @Option(help: "Disconnects within one burst window that raise an alert.") var threshold = 10

    func run() async throws {
        guard let window = parseDuration(burstWindow), let back = parseDuration(lookback) else {
            FileHandle.standardError.write(
                Data("replay: --burst-window and --lookback take durations like 10m, 24h, 30s\n".utf8))
            throw ExitCode(1)
        }
        let log = try options.open()
        try await log.closeAfter { try await run(log, window: window, back: back) }
    }

    func run(_ log: EventLog, window: Duration, back: Duration) async throws {
        let now: LogTimestamp
        if let seq = try at.seq(in: log) {
            now = try clock(log, upTo: seq)
        } else {
            now = max(LogTimestamp.wallClock(), try clock(log, upTo: nil))
        }
        let lines = try AlertCheck.run(
            log, now: now, lookback: back, burstWindow: window, threshold: threshold, windowLabel: burstWindow)
        for line in lines {
            if options.json {
                printJSON(["alert": line.alert, "check": line.check, "detail": line.detail])
            } else {
                print(line.description)
            }
        }
        if lines.contains(where: \.alert) { throw ExitCode(2) }
    }
}

// MARK: Raw records

/// One record as a JSON object (payload inlined when it is JSON).
func jsonLine(_ record: Record) -> String {
    var object: [String: Any] = [
        "seq": record.seq, "time": record.timestamp.description, "type": record.type,
        "schemaVersion": record.schemaVersion, "writer": record.writer.description,
        "role": record.writer.role, "workerID": record.writer.workerID,
        "instance": record.writer.instanceID.uuidString.lowercased(),
    ]
    if let correlation = record.correlationID { object["correlationID"] = correlation }
    if let causation = record.causationID { object["causationID"] = causation }
    if let payload = try? JSONSerialization.jsonObject(with: Data(record.payload), options: [.fragmentsAllowed]) {
        object["payload"] = payload
    } else {
        object["payloadBase64"] = Data(record.payload).base64EncodedString()
    }
    let data =
        (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
    return String(decoding: data, as: UTF8.self)
}

func textLine(_ record: Record) -> String {
    var line = "\(record.seq)\t\(record.timestamp)\t\(record.type)\t\(record.writer)"
    if let correlation = record.correlationID { line += "\tcorr=\(correlation)" }
    if let causation = record.causationID { line += "\tcause=\(causation)" }
    return line + "\t" + record.payloadText
}

struct Export: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print records from --from to --to as JSON lines.")
    @OptionGroup var options: LogOptions
    @Option(help: "First seq or ISO-8601 time.") var from: String?
    @Option(help: "Last seq or ISO-8601 time (default: the end).") var to: String?
    @Option(help: "Output format (jsonl).") var format = "jsonl"

    func validate() throws {
        guard format == "jsonl" else { throw ValidationError("only --format jsonl is supported") }
    }

    func run() async throws {
        let log = try options.open()
        try await log.closeAfter { try await run(log) }
    }

    func run(_ log: EventLog) async throws {
        let timeline = Timeline()
        let first = try timeline.bound(from, log, upper: false) ?? 1
        let end = try timeline.bound(to, log, upper: true) ?? .max
        try log.withSnapshot { snapshot in
            try snapshot.forEach(from: first) { record in
                guard record.seq <= end else { return false }
                print(jsonLine(record))
                return true
            }
        }
    }
}

struct Tail: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the last records; with --follow, keep printing new ones.")
    @OptionGroup var options: LogOptions
    @Option(name: [.customShort("n"), .long], help: "How many of the last records to print first.") var lines: UInt64 =
        10
    @Flag(name: .shortAndLong, help: "Keep printing records as they are committed.") var follow = false

    func run() async throws {
        let log = try options.open()
        try await log.closeAfter { try await run(log) }
    }

    func run(_ log: EventLog) async throws {
        let last = try log.lastSeq()
        let start = last > lines ? last - lines + 1 : 1
        if follow {
            for try await record in log.tail(from: start) {
                print(options.json ? jsonLine(record) : textLine(record))
                fflush(nil)
            }
        } else {
            for record in try log.records(from: start) {
                print(options.json ? jsonLine(record) : textLine(record))
            }
        }
    }
}
