import EventLog

// The claim indexes of projection format 4. A claim reads its queue from the left edge of one ordered key space
// that holds only what it may take, so its cost does not grow with what waits behind a busy conversation, a
// blocked recipient or a backoff:
//
// - `p.job_ready` (order → job id): per conversation, the one job it may run next — its first pending job in
//   claim order when no job of it runs, the first pending job of the running job's delegation tree when one runs
//   (the child-job exception), none when jobs of two trees run. A conversation's next job is promoted when its
//   running job ends, by the projector, in the transaction that ends it.
// - `p.conversation_jobs` (conversation, order → job id): the other pending jobs of a conversation, in claim
//   order (a pending job is in exactly one of `p.job_ready` and `p.conversation_jobs`).
// - `p.tree_jobs` (conversation, root, order → job id): the pending jobs of a delegation tree below its root,
//   wherever they wait.
// - `p.conversation_queues` (conversation → ``ConversationQueueState``): the roots of its running jobs and the
//   key it holds in `p.job_ready`.
// - `p.delivery_ready` (account, notBefore, enqueue seq → delivery id): per recipient, its FIFO head when that
//   head is pending; a recipient whose head is in flight has none. A head's successor is promoted when the head
//   leaves the FIFO (sent, failed for good, uncertain).
//
// "order" is 24 bytes: priority (higher first), notBefore, enqueue seq, each a big-endian UInt64.

/// A conversation's place in the job queues: the roots of its running jobs (one entry per running job), its key
/// in `p.job_ready` (empty when it has none), and how many entries it has in `p.conversation_jobs` and
/// `p.tree_jobs` (so a conversation with none is never searched there).
struct ConversationQueueState: Codable, Equatable, HotState {
    var runningRoots: [String] = []
    var ready: [UInt8] = []
    var waiting: UInt32 = 0
    var descendants: UInt32 = 0

    init() {}

    var isEmpty: Bool { runningRoots.isEmpty && ready.isEmpty && waiting == 0 && descendants == 0 }

    func write(to out: BinaryStateEncoder) {
        out.integer(UInt32(runningRoots.count))
        for root in runningRoots { out.string(root) }
        out.integer(UInt32(ready.count))
        ready.withUnsafeBytes { out.append($0) }
        out.integer(waiting)
        out.integer(descendants)
    }

    init(from input: BinaryStateDecoder) throws {
        let roots = Int(try input.integer(UInt32.self))
        runningRoots = try (0..<roots).map { _ in try input.string() }
        ready = Array(try input.raw(Int(try input.integer(UInt32.self))))
        waiting = try input.integer(UInt32.self)
        descendants = try input.integer(UInt32.self)
    }
}

enum JobQueues {
    typealias T = ProjectionTable

    /// A job's claim order as 24 bytes: higher priority (clamped to 32 bits) first, then earlier `notBefore`,
    /// then enqueue order.
    static func order(_ job: JobState) -> [UInt8] {
        let priority = UInt64(Int64(Int32.max) - Int64(max(Int(Int32.min), min(Int(Int32.max), job.priority))))
        var bytes: [UInt8] = []
        bytes.reserveCapacity(24)
        appendBigEndian(priority, to: &bytes)
        appendBigEndian(orderKey(job.notBefore), to: &bytes)
        appendBigEndian(job.enqueueSeq, to: &bytes)
        return bytes
    }

    /// Whether `job` waits in the queues: pending with a known `notBefore` (not between `job.failed` and the
    /// `job.retried` or `job.dead` that follows it in the same transaction).
    static func isQueued(_ job: JobState) -> Bool { job.status == .pending && job.notBefore.microseconds != .max }

    static func treeKey(_ job: JobState, order: [UInt8]) -> [UInt8] {
        Key(job.conversationID, job.rootJobID).prefix + order
    }

    /// Updates the queues of `job`'s conversation after `job` changed from `previous` (`nil`: just enqueued).
    ///
    /// Every pending job of a conversation is in exactly one of two places: `p.job_ready`, when it is the job the
    /// conversation may run next, or `p.conversation_jobs`. So a conversation with one job at a time — the common
    /// case — never writes `p.conversation_jobs`: its job goes straight to `p.job_ready` and leaves it when
    /// claimed. The descendants of a delegation tree are also in `p.tree_jobs`, wherever they are.
    static func update(_ job: JobState, previous: JobState?, _ tables: TableWriter) throws {
        let wasQueued = previous.map(isQueued) ?? false
        let queued = isQueued(job)
        let wasRunning = previous?.status == .running
        let running = job.status == .running
        let previousOrder = wasQueued ? previous.map(order) : nil
        let newOrder = queued ? order(job) : nil
        if wasQueued == queued && wasRunning == running && previousOrder == newOrder { return }

        let key = Key(job.conversationID)
        let conversationPrefix = key.prefix
        let ready = tables.table(T.jobReady)
        let waiting = tables.table(T.conversationJobs)
        let stored = try tables.load(ConversationQueueState.self, T.conversationQueues, key)
        var queue = stored ?? ConversationQueueState()
        let id = Array(job.jobID.utf8)
        let descendant = job.parentJobID != nil

        // Take the job out of where it waited.
        if let previousOrder, let previous {
            if queue.ready == previousOrder {
                try tables.delete(ready, previousOrder)
                queue.ready = []
            } else if try tables.delete(waiting, conversationPrefix + previousOrder) {
                queue.waiting.decrement()
            }
            if descendant, try tables.delete(tables.table(T.treeJobs), treeKey(previous, order: previousOrder)) {
                queue.descendants.decrement()
            }
        }
        if let newOrder, descendant {
            try tables.put(tables.table(T.treeJobs), treeKey(job, order: newOrder), id)
            queue.descendants += 1
        }
        if wasRunning, let index = queue.runningRoots.firstIndex(of: job.rootJobID) {
            queue.runningRoots.remove(at: index)
        }
        if running {
            queue.runningRoots.append(job.rootJobID)
            queue.runningRoots.sort()  // a function of the running set, as finishReplay builds it
        }

        // The job the conversation may run next, of: the one in p.job_ready, the changed job, and the first one
        // waiting that its running jobs allow.
        var best: (order: [UInt8], id: [UInt8])?
        func consider(_ candidate: (order: [UInt8], id: [UInt8])?) {
            guard let candidate else { return }
            if best.map({ candidate.order.lexicographicallyPrecedes($0.order) }) ?? true { best = candidate }
        }
        var current: (order: [UInt8], id: [UInt8])?
        if !queue.ready.isEmpty, let currentID = try tables.get(ready, queue.ready) {
            current = (queue.ready, currentID)
        }
        if let root = queue.runningRoots.first {
            if queue.runningRoots.allSatisfy({ $0 == root }) {
                // The running tree's jobs only: its pending descendants, and its root pending again (retrying).
                consider(current)
                if let newOrder, job.rootJobID == root { consider((newOrder, id)) }
                if queue.descendants > 0 {
                    consider(try firstEntry(tables, T.treeJobs, prefix: Key(job.conversationID, root).prefix))
                }
                if job.jobID != root, queue.waiting > 0,  // a pending root waits there (or is `current`)
                    let rootJob = try tables.load(JobState.self, T.jobs, Key(root)),
                    rootJob.conversationID == job.conversationID, isQueued(rootJob)
                {
                    consider((order(rootJob), Array(rootJob.jobID.utf8)))
                }
            }  // else jobs of two trees run: nothing may
        } else {
            consider(current)
            if let newOrder { consider((newOrder, id)) }
            if queue.waiting > 0 { consider(try firstEntry(tables, T.conversationJobs, prefix: conversationPrefix)) }
        }

        if best?.order != current?.order {
            if let current {  // back to waiting
                try tables.delete(ready, current.order)
                try tables.put(waiting, conversationPrefix + current.order, current.id)
                queue.waiting += 1
            }
            if let best {
                if best.id != id, try tables.delete(waiting, conversationPrefix + best.order) {
                    queue.waiting.decrement()
                }
                try tables.put(ready, best.order, best.id)
            }
            queue.ready = best?.order ?? []
        }
        if let newOrder, best?.id != id {
            try tables.put(waiting, conversationPrefix + newOrder, id)
            queue.waiting += 1
        }

        if queue.isEmpty {
            if stored != nil { try tables.remove(T.conversationQueues, key) }
        } else if queue != stored {
            try tables.store(queue, T.conversationQueues, key)
        }
    }

    /// The first entry under `prefix`, with the prefix cut from its key.
    static func firstEntry(_ tables: TableWriter, _ table: ProjectionTable, prefix: [UInt8]) throws
        -> (order: [UInt8], id: [UInt8])?
    {
        var found: (order: [UInt8], id: [UInt8])?
        try tables.scan(tables.table(table), from: prefix) { key, value in
            if hasPrefix(key, prefix) { found = (Array(key[prefix.count...]), value) }
            return false
        }
        return found
    }
}

enum DeliveryQueues {
    typealias T = ProjectionTable

    /// A recipient head's key in `p.delivery_ready`: account, then `notBefore`, then enqueue seq.
    static func readyKey(_ d: DeliveryState) -> [UInt8] {
        var bytes = SwitchboardProjector.accountKey(d.channel, d.accountID).prefix
        appendBigEndian(orderKey(d.notBefore), to: &bytes)
        appendBigEndian(d.enqueueSeq, to: &bytes)
        return bytes
    }

    static func recipientKey(_ d: DeliveryState) -> Key {
        SwitchboardProjector.accountKey(d.channel, d.accountID).appending(d.recipient).appending(d.enqueueSeq)
    }

    /// Updates the recipient FIFO and the ready index after `d` changed from `previous` (`nil`: just enqueued).
    /// The ready index holds a recipient's head exactly when that head is pending, so the head before and after
    /// the change each lose or gain their entry.
    static func update(_ d: DeliveryState, previous: DeliveryState?, _ tables: TableWriter) throws {
        let wasQueued = previous?.status.isUnfinished ?? false
        let queued = d.status.isUnfinished
        if !wasQueued && !queued { return }
        if wasQueued && queued && (previous?.status == .pending) == (d.status == .pending)
            && previous?.notBefore == d.notBefore
        {
            return
        }
        let id = Array(d.deliveryID.utf8)
        let fifoPrefix = SwitchboardProjector.accountKey(d.channel, d.accountID).appending(d.recipient).prefix
        let headBefore = try headID(fifoPrefix, tables)
        if wasQueued && !queued {
            try tables.remove(T.recipientQueue, recipientKey(d))
        } else if queued && !wasQueued {
            try tables.mark(T.recipientQueue, recipientKey(d), id)
        }
        let headAfter = try headID(fifoPrefix, tables)
        let ready = tables.table(T.deliveryReady)
        if let headBefore {
            if headBefore == id {
                if let previous, previous.status == .pending { try tables.delete(ready, readyKey(previous)) }
            } else if headBefore != headAfter, let displaced = try load(headBefore, tables),
                displaced.status == .pending
            {
                // `d` re-entered the FIFO ahead of it (an uncertain send retried by policy).
                try tables.delete(ready, readyKey(displaced))
            }
        }
        if let headAfter {
            if headAfter == id {
                if d.status == .pending { try tables.put(ready, readyKey(d), id) }
            } else if headAfter != headBefore, let next = try load(headAfter, tables), next.status == .pending {
                try tables.put(ready, readyKey(next), headAfter)  // `d` left the FIFO: its successor leads
            }
        }
    }

    private static func load(_ id: [UInt8], _ tables: TableWriter) throws -> DeliveryState? {
        try tables.get(tables.table(T.deliveries), id).map { try StateCoding.decode(DeliveryState.self, $0) }
    }

    /// The id bytes of the first delivery in the recipient FIFO under `prefix`.
    private static func headID(_ prefix: [UInt8], _ tables: TableWriter) throws -> [UInt8]? {
        var found: [UInt8]?
        try tables.scan(tables.table(T.recipientQueue), from: prefix) { key, value in
            if hasPrefix(key, prefix) { found = value }
            return false
        }
        return found
    }
}

/// The job and delivery indexes built from the states alone, after a bulk replay left them out: the entries the
/// transitions write one at a time (``JobQueues/update(_:previous:_:)``, ``DeliveryQueues/update(_:previous:_:)``
/// and the status indexes of `SwitchboardProjector.saveJob`/`saveDelivery`), so a rebuild's digest equals the live
/// one.
enum IndexBuild {
    typealias T = ProjectionTable

    static func jobs(_ tables: TableWriter) throws {
        for table in [T.jobReady, .conversationJobs, .treeJobs, .conversationQueues, .jobRunning, .jobDead] {
            try tables.removeAll(tables.table(table))
        }
        struct Waiting {
            var order: [UInt8]
            var id: [UInt8]
            var root: String
            var descendant: Bool
        }
        var conversations: [String: (roots: [String], waiting: [Waiting])] = [:]
        try tables.scan(tables.table(T.jobs)) { _, value in
            let job = try StateCoding.decode(JobState.self, value)
            switch job.status {
            case .running:
                try tables.mark(T.jobRunning, SwitchboardProjector.runningKey(job), Array(job.jobID.utf8))
                conversations[job.conversationID, default: ([], [])].roots.append(job.rootJobID)
            case .dead:
                try tables.mark(T.jobDead, Key(job.jobID))
            case .pending where JobQueues.isQueued(job):
                conversations[job.conversationID, default: ([], [])].waiting.append(
                    Waiting(
                        order: JobQueues.order(job), id: Array(job.jobID.utf8), root: job.rootJobID,
                        descendant: job.parentJobID != nil))
            case .pending, .completed:
                break
            }
            return true
        }
        for (conversationID, entry) in conversations {
            var queue = ConversationQueueState()
            queue.runningRoots = entry.roots.sorted()
            let waiting = entry.waiting.sorted { $0.order.lexicographicallyPrecedes($1.order) }
            let next: Waiting? =
                if let root = queue.runningRoots.first {
                    queue.runningRoots.allSatisfy({ $0 == root }) ? waiting.first { $0.root == root } : nil
                } else {
                    waiting.first
                }
            let prefix = Key(conversationID).prefix
            for job in waiting {
                if job.order == next?.order {
                    try tables.put(tables.table(T.jobReady), job.order, job.id)
                    queue.ready = job.order
                } else {
                    try tables.put(tables.table(T.conversationJobs), prefix + job.order, job.id)
                    queue.waiting += 1
                }
                if job.descendant {
                    try tables.put(tables.table(T.treeJobs), Key(conversationID, job.root).prefix + job.order, job.id)
                    queue.descendants += 1
                }
            }
            if !queue.isEmpty { try tables.store(queue, T.conversationQueues, Key(conversationID)) }
        }
    }

    static func deliveries(_ tables: TableWriter) throws {
        for table in [T.deliveryReady, .recipientQueue, .deliveryInflight, .deliveryAttention] {
            try tables.removeAll(tables.table(table))
        }
        var heads: [[UInt8]: DeliveryState] = [:]
        try tables.scan(tables.table(T.deliveries)) { _, value in
            let d = try StateCoding.decode(DeliveryState.self, value)
            let id = Array(d.deliveryID.utf8)
            switch d.status {
            case .claimed, .attempting:
                try tables.mark(T.deliveryInflight, SwitchboardProjector.inflightKey(d), id)
            case .failed, .uncertain:
                try tables.mark(T.deliveryAttention, Key(d.status.rawValue, d.deliveryID))
            case .pending, .sent:
                break
            }
            if d.status.isUnfinished {
                try tables.mark(T.recipientQueue, DeliveryQueues.recipientKey(d), id)
                let recipient = SwitchboardProjector.accountKey(d.channel, d.accountID).appending(d.recipient).bytes
                if heads[recipient].map({ d.enqueueSeq < $0.enqueueSeq }) ?? true { heads[recipient] = d }
            }
            return true
        }
        for head in heads.values where head.status == .pending {
            try tables.put(tables.table(T.deliveryReady), DeliveryQueues.readyKey(head), Array(head.deliveryID.utf8))
        }
    }
}

extension UInt32 {
    /// One less, never below zero (a count kept beside a table: the writer thread must not trap on it).
    mutating func decrement() { self = self > 0 ? self - 1 : 0 }
}

func appendBigEndian(_ value: UInt64, to bytes: inout [UInt8]) {
    withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
}

func bigEndianUInt64(_ bytes: ArraySlice<UInt8>) -> UInt64 {
    UInt64(bigEndian: bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
}
