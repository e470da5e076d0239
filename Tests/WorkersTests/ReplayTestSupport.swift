// Support for the `replay` acceptance tests: a log built in-process with the engine under a settable clock,
// then read by the real `replay` executable as a separate process.
import EventLog
import SwitchboardEvents
import Foundation
import Logging
import Projections
import TestSupport
import Testing

let replayQuietLogger = Logger(label: "replay-test", factory: { _ in SwiftLogNoOpLogHandler() })

/// A settable wall clock for the engine (the log clock still never goes back), so tests move time explicitly
/// instead of sleeping.
final class ReplayClock: @unchecked Sendable {  // @unchecked: `lock` guards `current`.
    private let lock = NSLock()
    private var current: LogTimestamp

    init(_ start: LogTimestamp) { current = start }

    var now: LogTimestamp { lock.withLock { current } }

    func advance(_ duration: Duration) { lock.withLock { current = current.advanced(by: duration) } }
}

/// The outcome of one `replay` run.
struct ReplayRun: CustomStringConvertible {
    var status: Int32
    var lines: [String]

    var description: String { "exit \(status):\n" + lines.joined(separator: "\n") }

    /// The tab-separated columns of every line.
    var columns: [[String]] {
        lines.map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
    }

    /// The first column of every line as a seq (timeline, tail).
    var seqs: [UInt64?] { columns.map { $0.first.flatMap { UInt64($0) } } }

    /// The third column of every line: the record type (timeline, tail).
    var types: [String?] { columns.map { $0.count > 2 ? $0[2] : nil } }

    /// The whole standard output parsed as one JSON value (fails the test when it is not valid JSON).
    func json() throws -> Any {
        try JSONSerialization.jsonObject(with: Data(lines.joined(separator: "\n").utf8), options: [.fragmentsAllowed])
    }

    /// The whole standard output as one JSON object (a report).
    func object(sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
        let value = try json()
        return try #require(value as? [String: Any], "not one JSON object: \(self)", sourceLocation: sourceLocation)
    }

    /// The whole standard output as a JSON array of objects (a list command with `--json`).
    func array(sourceLocation: SourceLocation = #_sourceLocation) throws -> [[String: Any]] {
        let value = try json()
        return try #require(
            value as? [[String: Any]], "not a JSON array of objects: \(self)", sourceLocation: sourceLocation)
    }

    /// The objects of a list command's JSON array, or else every output line parsed as a JSON object (`export`,
    /// `tail --follow`, or a single report); fails the test on a line that is not one.
    func objects(sourceLocation: SourceLocation = #_sourceLocation) throws -> [[String: Any]] {
        if let list = try? json() as? [[String: Any]] { return list }
        return try lines.map { line in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
            return try #require(object as? [String: Any], "not a JSON object: \(line)", sourceLocation: sourceLocation)
        }
    }
}

/// A JSON array of integers as `UInt64`s (empty when `value` is not one).
func replayUInts(_ value: Any?) -> [UInt64] {
    ((value as? [Any]) ?? []).compactMap { ($0 as? NSNumber)?.uint64Value }
}

/// A JSON integer as `UInt64`.
func replayUInt(_ value: Any?) -> UInt64? { (value as? NSNumber)?.uint64Value }

/// One test's world: its own temporary directory, a settable clock and an engine on a fresh log in it.
/// Build the log, ``close()`` it, then run `replay` against ``path``.
final class ReplayWorld {
    static let channel = "whatsapp"
    static let account = "default"
    static let resource = "whatsapp/default"

    let directory = TemporaryDirectory()
    let clock: ReplayClock
    let engine: Switchboard
    private var closed = false

    /// The log directory.
    var path: String { directory.path }

    /// Ten minutes ago on the real wall clock (so `alerts` without `--at` and its 24 h lookback see every
    /// record), at whole seconds plus 123 456 µs: like real log times, they are not whole milliseconds.
    static func recentStart() -> LogTimestamp {
        let wall = LogTimestamp.wallClock().microseconds
        return LogTimestamp(microseconds: wall / 1_000_000 * 1_000_000 - 600_000_000 + 123_456)
    }

    init(settings: EngineSettings = .defaults(), start: LogTimestamp = ReplayWorld.recentStart()) throws {
        let clock = ReplayClock(start)
        self.clock = clock
        var configuration = EventLogConfiguration(
            directory: directory.path, writer: WriterIdentity(role: "test", workerID: "builder"))
        configuration.wallClock = { clock.now }
        engine = try Switchboard(configuration, settings: settings, logger: replayQuietLogger)
    }

    deinit { if !closed { engine.close() } }

    /// Closes the engine so `replay` reads a log nobody writes.
    func close() async {
        if !closed { await engine.close() }
        closed = true
    }

    /// Runs `replay` with `arguments` plus `--data-dir` of this world, reading its standard output.
    func replay(_ arguments: String...) async throws -> ReplayRun {
        try await replay(arguments)
    }

    func replay(_ arguments: [String]) async throws -> ReplayRun {
        let (status, lines) = try await SpawnedProcess.run("replay", arguments + ["--data-dir", path])
        return ReplayRun(status: status, lines: lines)
    }

    /// Runs `replay` with `arguments` exactly as given, reading its standard error.
    static func replayErrors(_ arguments: [String]) async throws -> ReplayRun {
        let (status, lines) = try await SpawnedProcess("replay", arguments, readStandardError: true).finish()
        return ReplayRun(status: status, lines: lines)
    }

    // MARK: Building the log

    /// A fresh owner: a worker id and a process instance of its own.
    static func owner(_ workerID: String) -> Owner { Owner(workerID: workerID, instance: UUID().uuidString) }

    /// Every record so far (call before ``close()``).
    func records() throws -> [Record] { try engine.log.records(from: 1) }

    /// The seqs of the records of `type`, in log order (call before ``close()``).
    func seqs(of type: String) throws -> [UInt64] { try records().filter { $0.type == type }.map(\.seq) }

    /// The seq of the only record of `type`; fails the test when there is not exactly one.
    func onlySeq(of type: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> UInt64 {
        let seqs = try seqs(of: type)
        #expect(seqs.count == 1, "\(seqs.count) \(type) records", sourceLocation: sourceLocation)
        return try #require(seqs.first, sourceLocation: sourceLocation)
    }

    /// Acquires the account lease for `owner` and returns its fencing token; fails the test when denied.
    func acquire(as owner: Owner, sourceLocation: SourceLocation = #_sourceLocation) async throws -> UInt64 {
        let decision = try await engine.acquireLease(Self.resource, as: owner)
        return try #require(decision.grant, "lease denied: \(decision)", sourceLocation: sourceLocation).token
    }

    /// Enqueues an outbound message on the account and returns its delivery id.
    func enqueueDelivery(key: String, to recipient: String, text: String = "hello") async throws -> String {
        let delivery = NewDelivery(
            idempotencyKey: key, channel: Self.channel, accountID: Self.account, recipient: recipient,
            conversationID: conversationID(channel: Self.channel, accountID: Self.account, contactID: recipient),
            text: text)
        return try await engine.enqueueDelivery(delivery).deliveryID
    }

    /// Claims the next delivery of the account; fails the test when the result is not a claim.
    func claimDelivery(
        as owner: Owner, leaseToken: UInt64, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> DeliveryClaim {
        let result = try await engine.claimDelivery(
            channel: Self.channel, accountID: Self.account, leaseToken: leaseToken, as: owner)
        guard case .claimed(let claim) = result else {
            Issue.record("expected a delivery claim, got \(result)", sourceLocation: sourceLocation)
            throw ReplayTestFailure()
        }
        return claim
    }

    /// Claims, attempts and records the send of the next delivery of the account; fails the test on a refusal.
    @discardableResult
    func deliver(as owner: Owner, leaseToken: UInt64, sourceLocation: SourceLocation = #_sourceLocation)
        async throws -> DeliveryClaim
    {
        let claim = try await claimDelivery(as: owner, leaseToken: leaseToken, sourceLocation: sourceLocation)
        let id = claim.delivery.deliveryID
        let attempt = try await engine.attemptDelivery(id, token: claim.token, leaseToken: leaseToken, as: owner)
        #expect(attempt == .accepted, sourceLocation: sourceLocation)
        let sent = try await engine.deliverySent(id, token: claim.token, providerMessageID: "wamid.\(id)", as: owner)
        #expect(sent == .accepted, sourceLocation: sourceLocation)
        return claim
    }

    /// Claims the next runnable job; fails the test when there is none.
    func claimJob(sourceLocation: SourceLocation = #_sourceLocation) async throws -> JobClaim {
        let claim = try await engine.claimJob()
        return try #require(claim, "expected a claimable job", sourceLocation: sourceLocation)
    }
}

/// Thrown after an issue was recorded, to stop the test.
struct ReplayTestFailure: Error {}
