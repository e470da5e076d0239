import Foundation
import Glibc
import Synchronization

/// Wakes tailing readers after commits, in this process and in others.
///
/// After each commit the writer writes one byte to `<log>/doorbell`; every process watching the file with
/// inotify wakes its waiters (inotify on `data.mdb` itself misses commits, see docs/architecture.md). In this
/// process the writer also wakes waiters directly. A watcher thread polls the environment's last transaction
/// id every `pollInterval` as a fallback (a writer killed between commit and ring).
final class CommitNotifier: @unchecked Sendable {  // @unchecked: state is in `state` (a Mutex) or immutable.
    fileprivate typealias Waiter = (generation: UInt64, continuation: CheckedContinuation<Void, Never>)

    /// The waiters of an open notifier and the generation they wait on.
    fileprivate struct Waiters {
        var generation: UInt64 = 0
        var nextID: UInt64 = 0
        var byID: [UInt64: Waiter] = [:]
    }

    fileprivate enum State {
        /// Open. `watcher` is the doorbell thread, started by the first waiter.
        case open(Waiters, watcher: Watcher?)
        /// Shut down: waiters resume at once. `watcher` is the thread that was stopped, if one was started.
        case closed(watcher: Watcher?)
    }

    /// The doorbell file, `nil` for a backend that wakes readers itself (``LogBackend/startWakeups(_:)``).
    let doorbellPath: String?
    private let ringFD: Int32
    private let pollMilliseconds: Int32
    private let lastTransactionID: @Sendable () -> Int
    private let state = Mutex(State.open(Waiters(), watcher: nil))

    init(directory: String?, pollInterval: Duration, lastTransactionID: @escaping @Sendable () -> Int)
        throws(EventLogError)
    {
        if let directory {
            let path = directory + "/doorbell"
            doorbellPath = path
            ringFD = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
            if ringFD < 0 { throw lmdbError(errno, "open(doorbell)", path: path) }
        } else {
            doorbellPath = nil
            ringFD = -1
        }
        let (seconds, attos) = pollInterval.components
        pollMilliseconds = Int32(max(1, seconds * 1000 + attos / 1_000_000_000_000_000))
        self.lastTransactionID = lastTransactionID
    }

    deinit { if ringFD >= 0 { close(ringFD) } }

    /// The current wake-up generation; read it before checking for new records. (Once closed, waits return at
    /// once whatever the generation.)
    var generation: UInt64 {
        state.withLock { state in
            if case .open(let waiters, _) = state { return waiters.generation }
            return 0
        }
    }

    /// Called by this process's writer after a commit: rings the doorbell for other processes and wakes the
    /// waiters of this one.
    func ring() {
        if ringFD >= 0 {
            var byte: UInt8 = 1
            _ = pwrite(ringFD, &byte, 1, 0)
        }
        bump()
    }

    /// Wakes this process's waiters for a commit another process made (an external backend's notification).
    func heard() { bump() }

    /// Moves the generation on and resumes every waiter. Returns `false` when the notifier is closed.
    @discardableResult
    private func bump() -> Bool {
        var ready: [CheckedContinuation<Void, Never>] = []
        let open = state.withLock { state -> Bool in
            let bumped: Void? = state.withWaiters { waiters in
                waiters.generation += 1
                ready = waiters.byID.values.map(\.continuation)
                waiters.byID.removeAll(keepingCapacity: true)
            }
            return bumped != nil
        }
        for continuation in ready { continuation.resume() }
        return open
    }

    /// Waits until the generation moves past `generation`, the task is cancelled, or the notifier closes.
    func wait(afterGeneration generation: UInt64) async {
        // The first waiter starts the watcher. Its pipe is made under the lock, so a concurrent shutdown finds
        // either no watcher or one it can stop (a thread started after the shutdown sees the stop byte at once).
        let (id, newWatcher) = state.withLock { state -> (UInt64?, Watcher?) in
            guard case .open(var waiters, let watcher) = state else { return (nil, nil) }
            state = .closed(watcher: nil)  // moved out, so `waiters` is changed in place (no copy)
            waiters.nextID += 1
            let newWatcher = watcher == nil ? Watcher() : nil
            state = .open(waiters, watcher: watcher ?? newWatcher)
            return (waiters.nextID, newWatcher)
        }
        newWatcher?.start(self)
        guard let id else { return }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if Task.isCancelled { return true }
                    return state.withWaiters { waiters -> Bool in
                        if waiters.generation > generation { return true }
                        waiters.byID[id] = (generation, continuation)
                        return false
                    } ?? true
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state in state.withWaiters { $0.byID.removeValue(forKey: id) } ?? nil }
            waiter?.continuation.resume()
        }
    }

    /// Stops the watcher and wakes every waiter. Idempotent: every call returns once the watcher has ended.
    func shutdown() {
        let (waiters, watcher, first) = state.withLock { state -> ([Waiter], Watcher?, Bool) in
            switch state {
            case .open(let waiters, let watcher):
                state = .closed(watcher: watcher)
                return (Array(waiters.byID.values), watcher, true)
            case .closed(let watcher):
                return ([], watcher, false)
            }
        }
        for waiter in waiters { waiter.continuation.resume() }
        guard let watcher else { return }
        if first { watcher.requestStop() }
        watcher.done.wait()
    }

    fileprivate var isClosed: Bool {
        state.withLock { state in
            if case .closed = state { return true }
            return false
        }
    }

    fileprivate func watch(stopFD: Int32) {
        let inotifyFD = doorbellPath == nil ? -1 : inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        if inotifyFD >= 0, let doorbellPath { _ = inotify_add_watch(inotifyFD, doorbellPath, UInt32(IN_MODIFY)) }
        defer { if inotifyFD >= 0 { close(inotifyFD) } }
        var lastSeen = lastTransactionID()
        // A commit that landed after a waiter read its generation but before this thread began watching rang a
        // doorbell nobody heard and moved the transaction id before `lastSeen` was read: wake every waiter once
        // so it checks again (a spurious wake only costs a re-read).
        if !bump() { return }
        var buffer = [UInt8](repeating: 0, count: 4096)
        // The stop pipe ends the poll at once; without one (pipe() failed) the loop sees the closed state within
        // one poll interval.
        while !isClosed {
            var fds = [
                pollfd(fd: inotifyFD, events: Int16(POLLIN), revents: 0),
                pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0),
            ]
            let ready = poll(&fds, 2, pollMilliseconds)
            if ready < 0 && errno != EINTR { return }
            if fds[1].revents != 0 { return }
            if fds[0].revents != 0 {
                while read(inotifyFD, &buffer, buffer.count) > 0 {}
                lastSeen = lastTransactionID()
                if !bump() { return }
            } else if ready == 0 {
                let current = lastTransactionID()
                if current != lastSeen {
                    lastSeen = current
                    if !bump() { return }
                }
            }
        }
    }
}

extension CommitNotifier.State {
    /// Runs `body` on the waiters of an open notifier, in place; `nil` when closed.
    fileprivate mutating func withWaiters<R>(_ body: (inout CommitNotifier.Waiters) -> R) -> R? {
        guard case .open(var waiters, let watcher) = self else { return nil }
        self = .closed(watcher: nil)  // moved out, so `waiters` is changed in place (no copy)
        defer { self = .open(waiters, watcher: watcher) }
        return body(&waiters)
    }
}

/// The doorbell watcher thread of a ``CommitNotifier`` and the pipe that stops it.
///
/// Its pipe is closed when the last reference goes: after the thread has ended and the notifier released it.
private final class Watcher: Sendable {
    /// Read and write ends of the stop pipe; -1 when `pipe` failed (the thread then stops by polling).
    let stopRead: Int32
    let stopWrite: Int32
    /// Left when the thread ends.
    let done = DispatchGroup()

    init() {
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) == 0 {
            for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)  // a full pipe already asks the thread to stop
        } else {
            fds = [-1, -1]
        }
        stopRead = fds[0]
        stopWrite = fds[1]
        done.enter()
    }

    deinit {
        if stopRead >= 0 { close(stopRead) }
        if stopWrite >= 0 { close(stopWrite) }
    }

    func start(_ notifier: CommitNotifier) {
        let thread = Thread { [self] in
            defer { done.leave() }
            notifier.watch(stopFD: stopRead)
        }
        thread.name = "eventlog-doorbell"
        thread.start()
    }

    func requestStop() {
        guard stopWrite >= 0 else { return }
        var byte: UInt8 = 1
        _ = write(stopWrite, &byte, 1)
    }
}
