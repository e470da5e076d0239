import CLMDB
import Foundation

/// One queued command: plain events (the fast path, appended by the writer itself) or a decider that runs its
/// own body inside the transaction. Each carries its caller's typed continuation; the writer thread alone
/// touches a command until it resumes that continuation, once.
@usableFromInline
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
        case .transact(let command): command.resumeThrowing(error)
        }
    }
}

/// ``EventLog/append(_:)``: events appended in order; the caller gets their seqs.
@usableFromInline
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

/// A decider command, its result type erased to closures made where that type is known: ``EventLog/transact(_:)``
/// is inlined into its callers, so on the writer thread running and resuming a command calls code specialized for
/// its result — no generic metadata is looked up per command (a generic class's overrides, unspecialized, looked up
/// `Committed<R>`, its `Result` and their optionals a few times per command: 7 % of the writer's samples).
@usableFromInline
struct DeciderCommand: @unchecked Sendable {  // @unchecked: touched only by the writer thread until resumed.
    /// Runs the body in `context` and records its outcome. Returns `false` when the body threw (the command is
    /// rejected alone); throws only what must fail or retry the whole group (a full map).
    @usableFromInline let run: (inout WriteContext) throws(EventLogError) -> Bool
    /// Resumes the caller with the outcome of the last run (after its group committed).
    @usableFromInline let resumeCommitted: () -> Void
    /// Resumes the caller with an error (its group failed, or the log is closed).
    @usableFromInline let resumeThrowing: (any Error) -> Void

    @inlinable
    init<R: Sendable>(_ command: TransactCommand<R>) {
        run = { (context: inout WriteContext) throws(EventLogError) -> Bool in try command.run(&context) }
        resumeCommitted = { command.resumeCommitted() }
        resumeThrowing = { command.resume(throwing: $0) }
    }
}

/// ``EventLog/transact(_:)``: a body returning `R`, resumed with its typed ``Committed`` value.
@usableFromInline
final class TransactCommand<R: Sendable>: @unchecked Sendable {  // @unchecked: see DeciderCommand.
    @usableFromInline let body: @Sendable (inout WriteContext) throws -> R
    @usableFromInline let continuation: UnsafeContinuation<Committed<R>, any Error>
    /// The outcome of the last run (a group may run more than once).
    @usableFromInline var result: Result<Committed<R>, any Error>?

    @inlinable
    init(
        _ body: @escaping @Sendable (inout WriteContext) throws -> R,
        continuation: UnsafeContinuation<Committed<R>, any Error>
    ) {
        self.body = body
        self.continuation = continuation
    }

    @inlinable
    func run(_ context: inout WriteContext) throws(EventLogError) -> Bool {
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

    @inlinable
    func resumeCommitted() { continuation.resume(with: result!) }

    @inlinable
    func resume(throwing error: any Error) { continuation.resume(throwing: error) }
}

/// What a ``EventLog/transact(_:)`` command produced once committed.
public struct Committed<Value: Sendable>: Sendable {
    /// The body's return value.
    public var value: Value
    /// The seqs the command appended (empty when it appended nothing).
    public var seqs: Range<UInt64>
    /// The log time of the transaction.
    public var timestamp: LogTimestamp

    @usableFromInline
    init(value: Value, seqs: Range<UInt64>, timestamp: LogTimestamp) {
        self.value = value
        self.seqs = seqs
        self.timestamp = timestamp
    }
}
