import EventLog
import Foundation
import Synchronization

/// A doorbell for one waiting task: ``signal()`` wakes the waiter, or the next ``wait(until:)`` when nobody
/// waits yet (a signal is never lost between a check and a wait). Loops wait on it instead of polling.
public final class Wakeup: Sendable {
    private struct State {
        var pending = false
        var waiter: (id: UInt64, continuation: CheckedContinuation<Void, Never>)?
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// Wakes the waiter, or the next wait.
    public func signal() {
        let continuation = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter else {
                state.pending = true
                return nil
            }
            state.waiter = nil
            return waiter.continuation
        }
        continuation?.resume()
    }

    /// Waits for a signal (consuming it), the task's cancellation, or `deadline` when given.
    public func wait(until deadline: ContinuousClock.Instant? = nil) async {
        guard let deadline else { return await waitForSignal() }
        guard deadline > .now else { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForSignal() }
            group.addTask { try? await Task.sleep(until: deadline, clock: .continuous) }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForSignal() async {
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if state.pending || Task.isCancelled {
                        state.pending = false
                        return true
                    }
                    state.waiter = (id, continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let continuation = state.withLock { state -> CheckedContinuation<Void, Never>? in
                guard let waiter = state.waiter, waiter.id == id else { return nil }
                state.waiter = nil
                return waiter.continuation
            }
            continuation?.resume()
        }
    }
}

/// Runs `operation` in its own task and returns its result, or `nil` when `deadline` passes first. The
/// operation is not cancelled (a command submitted to the log writer commits or not on its own); its late
/// result is dropped.
func firstResult<T: Sendable>(
    before deadline: ContinuousClock.Instant, _ operation: @escaping @Sendable () async throws -> T
) async -> Result<T, any Error>? {
    let slot = Slot<CheckedContinuation<Result<T, any Error>?, Never>>()
    return await withCheckedContinuation { continuation in
        slot.put(continuation)
        Task {
            let result: Result<T, any Error>
            do { result = .success(try await operation()) } catch { result = .failure(error) }
            slot.take()?.resume(returning: result)
        }
        Task {
            try? await Task.sleep(until: deadline, clock: .continuous)
            slot.take()?.resume(returning: nil)
        }
    }
}

/// A value taken at most once, by whichever task comes first.
final class Slot<Value: Sendable>: Sendable {
    private let value = Mutex<Value?>(nil)
    func put(_ newValue: Value) { value.withLock { $0 = newValue } }
    func take() -> Value? { value.withLock { $0.take() } }
}

extension LogTimestamp {
    /// The local monotonic instant at which the wall clock reads this log time (now when already past).
    var localInstant: ContinuousClock.Instant {
        let ahead = duration(since: .wallClock())
        return ahead > .zero ? .now + ahead : .now
    }
}

/// A flag set once, read from any task.
final class Flag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}
