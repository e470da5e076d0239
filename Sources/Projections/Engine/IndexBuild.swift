import EventLog

enum IndexBuild {
    typealias T = ProjectionTable

    /// A waiting job, as the rebuild collects them per conversation.
    private struct Waiting {
        var order: [UInt8]
        var id: [UInt8]
        var root: String
        var descendant: Bool
    }

    static func jobs(_ tables: some TableWriting) throws {
        for table in [T.jobReady, .conversationJobs, .treeJobs, .conversationQueues, .jobRunning, .jobDead] {
            try tables.removeAll(tables.table(table))
        }
        var conversations: [String: (roots: [String], waiting: [Waiting])] = [:]
        try tables.scanBytes(tables.table(T.jobs), from: nil) { _, stored in
            // Finished jobs, the bulk of the table, are in no index: their status is all that is read of them.
            switch try JobState.status(of: stored) {
            case .completed, .cancelled: return true
            case .pending, .running, .dead: break
            }
            let job = try StateCoding.decode(JobState.self, [UInt8](stored))
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
            case .pending, .completed, .cancelled:
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

    static func deliveries(_ tables: some TableWriting) throws {
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
