/// The writer's queue of commands and its state machine (running, stopping, stopped), used only while the
/// writer's `condition` is locked.
extension GroupCommitWriter {
    /// The writer's mutable state, guarded by its `condition`.
    enum State {
        /// Accepting commands.
        case running(Queue)
        /// `stop()` was called: new commands are refused; the thread finishes the queued ones, then ends.
        case stopping(Queue)
        /// The thread has ended.
        case stopped
    }

    /// The commands waiting for the writer, and how the commit window is tuned.
    struct Queue {
        var commands: [WriteCommand] = []
        /// Submitters signal the writer when the queue reaches this many commands (1 outside a commit window).
        var wakeAt = 1
        /// Commands in the previous group: under concurrency, the callers it resumed are about to come back.
        var lastGroupSize = 0
    }
}

extension GroupCommitWriter.State {
    var isStopping: Bool {
        if case .running = self { return false }
        return true
    }

    var queued: Int { queue?.commands.count ?? 0 }

    var lastGroupSize: Int { queue?.lastGroupSize ?? 0 }

    var wakeAt: Int {
        get { queue?.wakeAt ?? 1 }
        set { withQueue { $0.wakeAt = newValue } }
    }

    private var queue: GroupCommitWriter.Queue? {
        switch self {
        case .running(let queue), .stopping(let queue): queue
        case .stopped: nil
        }
    }

    /// Appends `command` while running; returns the number of queued commands, or `nil` when stopping.
    mutating func enqueue(_ command: WriteCommand) -> Int? {
        guard case .running = self else { return nil }
        return withQueue { queue in
            queue.commands.append(command)
            return queue.commands.count
        }
    }

    /// Takes the next group off the queue: commands in order, up to `maxEvents` events (at least one command).
    /// Returns `nil` when the queue is empty.
    mutating func takeBatch(maxEvents: Int) -> [WriteCommand]? {
        withQueue { queue -> [WriteCommand]? in
            if queue.commands.isEmpty { return nil }
            var events = 0
            var taken = 0
            for command in queue.commands {
                if taken > 0 && events + command.eventCount > maxEvents { break }
                events += command.eventCount
                taken += 1
            }
            let batch = Array(queue.commands[..<taken])
            queue.commands.removeFirst(taken)
            queue.lastGroupSize = taken
            return batch
        } ?? nil
    }

    /// Runs `body` on the queue in place (the payload is moved out first, so the array is not copied).
    @discardableResult
    private mutating func withQueue<R>(_ body: (inout GroupCommitWriter.Queue) -> R) -> R? {
        switch self {
        case .running(var queue):
            self = .stopped
            defer { self = .running(queue) }
            return body(&queue)
        case .stopping(var queue):
            self = .stopped
            defer { self = .stopping(queue) }
            return body(&queue)
        case .stopped:
            return nil
        }
    }
}
