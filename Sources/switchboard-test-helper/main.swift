// A separate process for the EventLog tests: appends, tails, holds a write transaction until killed, and
// opens logs under hostile conditions. Output is line-oriented so the tests can await each line.
import EventLog
import EventLogPostgres
import SwitchboardEvents
import Foundation
import Logging
import Projections
import TestSupport

struct Options {
    var values: [String: String] = [:]
    init(_ args: ArraySlice<String>) {
        var iterator = args.makeIterator()
        while let arg = iterator.next() {
            guard arg.hasPrefix("--") else { continue }
            values[String(arg.dropFirst(2))] = iterator.next() ?? ""
        }
    }
    subscript(_ key: String) -> String? { values[key] }
    func int(_ key: String, _ fallback: Int) -> Int { values[key].flatMap(Int.init) ?? fallback }
}

/// Writes one line straight to fd 1 (unbuffered, so a SIGKILL loses nothing already said).
func say(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    bytes.withUnsafeBytes { _ = write(1, $0.baseAddress, $0.count) }
}

/// `--database-url URL [--schema S]`: the log on PostgreSQL (`--dir` then holds local files only); else LMDB in `--dir`.
func backend(_ options: Options) throws -> LogBackendChoice {
    guard let url = options["database-url"] else { return .lmdb }
    return .postgres(try PostgresURL(url), schema: options["schema"] ?? PostgresSchema.defaultName)
}

func openLog(_ options: Options, worker: String) throws -> EventLog {
    var configuration = EventLogConfiguration(
        directory: options["dir"]!, writer: WriterIdentity(role: "test", workerID: worker))
    configuration.backend = try backend(options)
    if let size = options["initial-map-size"].flatMap(Int.init) { configuration.initialMapSize = size }
    if let size = options["max-map-size"].flatMap(Int.init) { configuration.maxMapSize = size }
    if options["durability"] == "relaxed" { configuration.durability = .relaxed }
    return try EventLog(configuration, logger: Logger(label: "helper", factory: { _ in SwiftLogNoOpLogHandler() }))
}

func payload(writer: String, index: Int, padding: Int = 0) -> [UInt8] {
    Array("{\"i\":\(index),\"pad\":\"\(String(repeating: "x", count: padding))\",\"writer\":\"\(writer)\"}".utf8)
}

/// Closes `log` off the cooperative pool. (Top-level code prefers the blocking overload of `close()`; a function
/// declared `async` picks the async one.)
func closeLog(_ log: EventLog) async {
    await log.close()
}

func describe(_ error: any Error) -> String {
    if let error = error as? EventLogError { return "error \(error.code) \(error.message)" }
    return "error other \(error)"
}

// Die with the test process: a crashed test run must not leave helpers holding its output pipes open. The
// tests keep a pipe on our stdin; it reads EOF when the test process is gone.
if ProcessInfo.processInfo.environment["SWITCHBOARD_EXIT_ON_STDIN_EOF"] == "1"
    && CommandLine.arguments.dropFirst().first != "sidecar-bridge"
{
    Thread {
        var byte: UInt8 = 0
        while read(0, &byte, 1) > 0 {}
        _exit(3)
    }.start()
}

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    say("usage: switchboard-test-helper COMMAND --dir DIR ...")
    exit(2)
}
let command = arguments[1]
let options = Options(arguments.dropFirst(2))
let worker = options["writer"] ?? "helper"

do {
    switch command {
    case "sidecar-bridge":
        SidecarBridge.run(connect: options["connect"] ?? "")
    case "fixture":
        try await fixture(options)
    case "append":
        // Appends --count events in batches of --batch, each awaited, so this process's order is its own order.
        let log = try openLog(options, worker: worker)
        let count = options.int("count", 100)
        let batch = max(1, options.int("batch", 1))
        var index = 0
        while index < count {
            let n = min(batch, count - index)
            let events = (0..<n).map {
                PendingEvent(type: "test.appended", payload: payload(writer: worker, index: index + $0))
            }
            try await log.append(events)
            index += n
        }
        await closeLog(log)
        say("done \(count)")

    case "append-acked":
        // Prints each seq once its append has returned (committed), then holds a write transaction open
        // when --hold is given, printing "in-txn" so the test can SIGKILL it there.
        let log = try openLog(options, worker: worker)
        for index in 0..<options.int("count", 10) {
            let seq = try await log.append([
                PendingEvent(type: "test.appended", payload: payload(writer: worker, index: index))
            ]).lowerBound
            say("acked \(seq)")
        }
        if options["hold"] != nil {
            _ = try await log.transact { context in
                try context.append(PendingEvent(type: "test.never-committed", payload: Array("{}".utf8)))
                say("in-txn")
                while true { pause() }
            }
        }
        await closeLog(log)
        say("done")

    case "tail":
        // Prints "seq writer-payload" for --count records, from --from or resuming after --checkpoint.
        let log = try openLog(options, worker: worker)
        let count = options.int("count", 10)
        let name = options["checkpoint"]
        let tail = try name.map { try log.tail(resumingAfter: $0) } ?? log.tail(from: UInt64(options.int("from", 1)))
        say("ready")
        var received = 0
        for try await record in tail {
            say("record \(record.seq) \(record.payloadText)")
            if let name { try await log.saveCheckpoint(name, seq: record.seq) }
            received += 1
            if received == count { break }
        }
        await closeLog(log)
        say("done \(received)")

    case "open":
        // Opens the log (optionally as another user) and appends one event: "ok" or the error code.
        if let user = options["as-user"] {
            guard let entry = getpwnam(user) else {
                say("error other no user \(user)")
                exit(3)
            }
            guard setgid(entry.pointee.pw_gid) == 0, setuid(entry.pointee.pw_uid) == 0 else {
                say("error other cannot become \(user)")
                exit(3)
            }
        }
        let log = try openLog(options, worker: worker)
        try await log.append([PendingEvent(type: "test.appended", payload: payload(writer: worker, index: 0))])
        await closeLog(log)
        say("ok")

    case "fill-disk":
        // Appends --record-size records until the filesystem refuses (RLIMIT_FSIZE caps data.mdb at --limit
        // bytes), printing each acknowledged seq, then the error.
        let log = try openLog(options, worker: worker)
        signal(SIGXFSZ, SIG_IGN)
        let limit = rlim_t(options.int("limit", 4 << 20))
        var rl = rlimit(rlim_cur: limit, rlim_max: limit)
        guard setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &rl) == 0 else {
            say("error other setrlimit failed")
            exit(3)
        }
        let size = options.int("record-size", 64 << 10)
        var index = 0
        while true {
            do {
                let seq = try await log.append([
                    PendingEvent(type: "test.appended", payload: payload(writer: worker, index: index, padding: size))
                ]).lowerBound
                say("acked \(seq)")
                index += 1
            } catch {
                say(describe(error))
                break
            }
        }
        // The process can still append after the failure once the file may grow again.
        rl = rlimit(rlim_cur: rlim_t.max, rlim_max: rlim_t.max)
        _ = setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &rl)
        let seq = try await log.append([
            PendingEvent(type: "test.appended", payload: payload(writer: worker, index: -1))
        ])
        say("after \(seq.lowerBound)")
        await closeLog(log)
        say("done")

    case "chaos":
        try await chaos(options, worker: worker)

    default:
        say("error other unknown command \(command)")
        exit(2)
    }
} catch {
    say(describe(error))
    exit(3)
}

/// Random commands against one shared log for --seconds: leases with a short TTL, jobs and deliveries with
/// short visibilities, and deliberately stale tokens now and then. Claims are sometimes abandoned so they
/// expire. Prints "ready", then "done <commands> <rejections>".
func chaos(_ options: Options, worker: String) async throws {
    var settings = EngineSettings(
        lease: try LeaseTiming(ttl: .milliseconds(options.int("ttl-ms", 300)), heartbeat: .milliseconds(100)))
    settings.jobs.visibility = .milliseconds(200)
    settings.jobs.retry.baseDelay = .milliseconds(20)
    settings.jobs.retry.maxDelay = .milliseconds(100)
    settings.deliveries.visibility = .milliseconds(200)
    settings.deliveries.retry.baseDelay = .milliseconds(20)
    settings.deliveries.retry.maxDelay = .milliseconds(100)
    settings.deliveries.rateLimits = [:]
    var configuration = EventLogConfiguration(
        directory: options["dir"]!, writer: WriterIdentity(role: "chaos", workerID: worker))
    configuration.backend = try backend(options)
    let engine = try Switchboard(
        configuration, settings: settings, logger: Logger(label: "chaos", factory: { _ in SwiftLogNoOpLogHandler() }))
    var random = SeededRandom(seed: UInt64(options.int("seed", 1)))
    let resource = "whatsapp/default"
    let deadline = ContinuousClock.now.advanced(by: .seconds(options.int("seconds", 10)))
    var leaseToken: UInt64?
    var oldTokens: [UInt64] = [0]
    var jobClaims: [JobClaim] = []
    var deliveryClaims: [DeliveryClaim] = []
    var commands = 0
    var rejections = 0
    say("ready")
    while ContinuousClock.now < deadline {
        commands += 1
        switch random.next(16) {
        case 0, 1:
            if let grant = try await engine.acquireLease(resource).grant {
                if let leaseToken, leaseToken != grant.token { oldTokens.append(leaseToken) }
                leaseToken = grant.token
            } else {
                leaseToken = nil
            }
        case 2:
            if let token = leaseToken, try await engine.renewLease(resource, token: token).grant == nil {
                leaseToken = nil
                rejections += 1
            }
        case 3:
            if random.next(4) == 0, let token = leaseToken {
                _ = try await engine.releaseLease(resource, token: token)
                oldTokens.append(token)
                leaseToken = nil
            }
        case 4, 5:
            var job = NewJob(idempotencyKey: "key-\(random.next(400))", conversationID: "conv-\(random.next(6))")
            job.priority = random.next(3)
            _ = try await engine.enqueueJob(job)
        case 6, 7:
            if let claim = try await engine.claimJob() { jobClaims.append(claim) }
        case 8:
            if !jobClaims.isEmpty {
                let claim = jobClaims.remove(at: random.next(jobClaims.count))
                let token = random.next(5) == 0 ? claim.token - 1 : claim.token
                if case .rejected = try await engine.completeJob(claim.job.jobID, token: token) { rejections += 1 }
            }
        case 9:
            if !jobClaims.isEmpty {
                let claim = jobClaims.remove(at: random.next(jobClaims.count))
                let outcome = try await engine.failJob(
                    claim.job.jobID, token: claim.token, reason: "timeout", message: "chaos",
                    retryable: random.next(4) != 0)
                if case .rejected = outcome { rejections += 1 }
            }
        case 10:
            if let claim = jobClaims.last,
                case .rejected = try await engine.heartbeatJob(claim.job.jobID, token: claim.token)
            {
                rejections += 1
                jobClaims.removeLast()
            }
        case 11:
            let recipient = "+1555000\(random.next(5))"
            _ = try await engine.enqueueDelivery(
                NewDelivery(
                    idempotencyKey: "msg-\(random.next(300)):0", channel: "whatsapp", accountID: "default",
                    recipient: recipient, conversationID: "whatsapp:default:\(recipient)", text: "hello"))
        case 12:
            // Sometimes claim with a stale lease token on purpose.
            let token = random.next(4) == 0 ? oldTokens[random.next(oldTokens.count)] : (leaseToken ?? 0)
            switch try await engine.claimDelivery(channel: "whatsapp", accountID: "default", leaseToken: token) {
            case .claimed(let claim): deliveryClaims.append(claim)
            case .rejected: rejections += 1
            case .empty: break
            }
        case 13, 14:
            if !deliveryClaims.isEmpty {
                let claim = deliveryClaims.remove(at: random.next(deliveryClaims.count))
                let lease = random.next(5) == 0 ? oldTokens[random.next(oldTokens.count)] : claim.leaseToken
                let id = claim.delivery.deliveryID
                if case .rejected = try await engine.attemptDelivery(id, token: claim.token, leaseToken: lease) {
                    rejections += 1
                    continue
                }
                switch random.next(6) {
                case 0:
                    _ = try await engine.deliveryFailed(
                        id, token: claim.token, permanent: false, errorCode: "429", message: "rate")
                case 1: _ = try await engine.deliveryUncertain(id, token: claim.token, reason: "timeout after write")
                case 2: break  // crash-like: never report the outcome
                default: _ = try await engine.deliverySent(id, token: claim.token, providerMessageID: "wamid.\(id)")
                }
            }
        default:
            // Abandon a claim so it expires.
            if !jobClaims.isEmpty { jobClaims.removeFirst() }
        }
    }
    await engine.close()
    say("done \(commands) \(rejections)")
}

/// A small deterministic generator (SplitMix64).
struct SeededRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    mutating func next(_ bound: Int) -> Int {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Int(z % UInt64(max(1, bound)))
    }
}
