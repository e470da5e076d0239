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
    private struct State {
        var generation: UInt64 = 0
        var nextWaiter: UInt64 = 0
        var waiters: [UInt64: (generation: UInt64, continuation: CheckedContinuation<Void, Never>)] = [:]
        var watching = false
        var closed = false
    }

    let doorbellPath: String
    private let ringFD: Int32
    private let pollMilliseconds: Int32
    private let lastTransactionID: @Sendable () -> Int
    private let state = Mutex(State())
    private var stopPipe: (read: Int32, write: Int32) = (-1, -1)
    private let watcherDone = DispatchSemaphore(value: 0)

    init(directory: String, pollInterval: Duration, lastTransactionID: @escaping @Sendable () -> Int)
        throws(EventLogError)
    {
        doorbellPath = directory + "/doorbell"
        ringFD = open(doorbellPath, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        if ringFD < 0 { throw lmdbError(errno, "open(doorbell)", path: doorbellPath) }
        let (seconds, attos) = pollInterval.components
        pollMilliseconds = Int32(max(1, seconds * 1000 + attos / 1_000_000_000_000_000))
        self.lastTransactionID = lastTransactionID
    }

    deinit { close(ringFD) }

    /// The current wake-up generation; read it before checking for new records.
    var generation: UInt64 { state.withLock { $0.generation } }

    /// Called by this process's writer after a commit: rings the doorbell for other processes and wakes the
    /// waiters of this one.
    func ring() {
        var byte: UInt8 = 1
        _ = pwrite(ringFD, &byte, 1, 0)
        bump()
    }

    private func bump() {
        let ready = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.generation += 1
            let ready = state.waiters.values.map(\.continuation)
            state.waiters.removeAll(keepingCapacity: true)
            return ready
        }
        for continuation in ready { continuation.resume() }
    }

    /// Waits until the generation moves past `generation`, the task is cancelled, or the notifier closes.
    func wait(afterGeneration generation: UInt64) async {
        startWatcherIfNeeded()
        let id = state.withLock { state -> UInt64 in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if state.generation > generation || state.closed || Task.isCancelled { return true }
                    state.waiters[id] = (generation, continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.continuation.resume()
        }
    }

    private func startWatcherIfNeeded() {
        let start = state.withLock { state -> Bool in
            if state.watching || state.closed { return false }
            state.watching = true
            return true
        }
        guard start else { return }
        var fds: [Int32] = [-1, -1]
        _ = pipe(&fds)
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        stopPipe = (fds[0], fds[1])
        let thread = Thread { [self] in self.watch() }
        thread.name = "eventlog-doorbell"
        thread.start()
    }

    private func watch() {
        defer { watcherDone.signal() }
        let inotifyFD = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        if inotifyFD >= 0 { _ = inotify_add_watch(inotifyFD, doorbellPath, UInt32(IN_MODIFY)) }
        defer { if inotifyFD >= 0 { close(inotifyFD) } }
        var lastSeen = lastTransactionID()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            var fds = [
                pollfd(fd: inotifyFD, events: Int16(POLLIN), revents: 0),
                pollfd(fd: stopPipe.read, events: Int16(POLLIN), revents: 0),
            ]
            let ready = poll(&fds, 2, pollMilliseconds)
            if ready < 0 && errno != EINTR { return }
            if fds[1].revents != 0 { return }
            if fds[0].revents != 0 {
                while read(inotifyFD, &buffer, buffer.count) > 0 {}
                lastSeen = lastTransactionID()
                bump()
            } else if ready == 0 {
                let current = lastTransactionID()
                if current != lastSeen {
                    lastSeen = current
                    bump()
                }
            }
        }
    }

    /// Stops the watcher and wakes every waiter.
    func shutdown() {
        let (wasWatching, waiters) = state.withLock { state in
            state.closed = true
            let waiters = state.waiters.values.map(\.continuation)
            state.waiters.removeAll()
            return (state.watching, waiters)
        }
        for continuation in waiters { continuation.resume() }
        if wasWatching {
            var byte: UInt8 = 1
            _ = write(stopPipe.write, &byte, 1)
            watcherDone.wait()
            close(stopPipe.read)
            close(stopPipe.write)
        }
    }
}
