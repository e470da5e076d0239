import CLMDB
import Foundation

/// One queued command: plain events (the fast path, appended by the writer itself) or a decider that runs its
/// own body inside the transaction. Each carries its caller's typed continuation; the writer thread alone
/// touches a command until it resumes that continuation, once.
enum WriteCommand {
    case append(AppendCommand)
    case transact(DeciderCommand)

    /// What the command counts for against ``EventLogConfiguration/maxBatchEvents``.
    var eventCount: Int {
        switch self {
        case .append(let command): command.events.count
        case .transact: 1
        }
    }

    /// Resumes the caller with what the last run of the command recorded (after its group committed).
    func resumeCommitted() {
        switch self {
        case .append(let command): command.continuation.resume(returning: command.seqs)
        case .transact(let command): command.resumeCommitted()
        }
    }

    /// Resumes the caller with `error` (its group failed, or the log is closed).
    func resume(throwing error: any Error) {
        switch self {
        case .append(let command): command.continuation.resume(throwing: error)
        case .transact(let command): command.resume(throwing: error)
        }
    }
}

/// ``EventLog/append(_:)``: events appended in order; the caller gets their seqs.
final class AppendCommand: @unchecked Sendable {  // @unchecked: touched only by the writer thread until resumed.
    let events: [PendingEvent]
    let continuation: UnsafeContinuation<Range<UInt64>, any Error>
    /// The seqs the last run appended.
    var seqs: Range<UInt64> = 0..<0

    init(events: [PendingEvent], continuation: UnsafeContinuation<Range<UInt64>, any Error>) {
        self.events = events
        self.continuation = continuation
    }
}

/// A decider command whose result type the writer does not know: it runs its body against a ``WriteContext``
/// and resumes its caller itself. See ``TransactCommand``.
class DeciderCommand: @unchecked Sendable {  // @unchecked: touched only by the writer thread until resumed.
    /// Runs the body in `context` and records its outcome. Returns `false` when the body threw (the command is
    /// rejected alone); throws only what must fail or retry the whole group (a full map).
    func run(_ context: inout WriteContext) throws(EventLogError) -> Bool { fatalError("abstract") }
    func resumeCommitted() { fatalError("abstract") }
    func resume(throwing error: any Error) { fatalError("abstract") }
}

/// ``EventLog/transact(_:)``: a body returning `R`, resumed with its typed ``Committed`` value.
final class TransactCommand<R: Sendable>: DeciderCommand, @unchecked Sendable {
    private let body: @Sendable (inout WriteContext) throws -> R
    private let continuation: UnsafeContinuation<Committed<R>, any Error>
    /// The outcome of the last run (a group may run more than once).
    private var result: Result<Committed<R>, any Error>?

    init(
        _ body: @escaping @Sendable (inout WriteContext) throws -> R,
        continuation: UnsafeContinuation<Committed<R>, any Error>
    ) {
        self.body = body
        self.continuation = continuation
    }

    override func run(_ context: inout WriteContext) throws(EventLogError) -> Bool {
        do {
            let value = try body(&context)
            result = .success(Committed(value: value, seqs: context.appended, timestamp: context.now))
            return true
        } catch let error as EventLogError where error.code == .mapFull {
            throw error  // The whole batch retries after the map grows.
        } catch {
            result = .failure(error)
            return false
        }
    }

    override func resumeCommitted() { continuation.resume(with: result!) }

    override func resume(throwing error: any Error) { continuation.resume(throwing: error) }
}
