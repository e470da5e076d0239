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
    static func update(_ job: JobState, previous: JobState?, _ tables: some TableWriting) throws {
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
    static func firstEntry(_ tables: some TableWriting, _ table: ProjectionTable, prefix: [UInt8]) throws
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
