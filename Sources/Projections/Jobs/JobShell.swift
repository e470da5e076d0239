import EventLog
import SwitchboardEvents

/// The job deciders' shell: loads their state through ``WriteContext/tables`` inside the write transaction, calls
/// the pure decider with the transaction's log time and next seq, and appends its events.
public enum JobShell {
    typealias T = ProjectionTables

    static func load(_ jobID: String, _ tables: some TableReading) throws -> JobState? {
        try tables.load(JobState.self, T.jobs, Key(jobID))
    }

    /// Enqueues a job unless its idempotency key was seen before (then returns the first job).
    public static func enqueue(_ job: NewJob, settings: JobSettings, _ context: inout WriteContext) throws -> JobEnqueue
    {
        let tables = context.tables
        var existingJobID: String?
        var jobIDTaken = false
        var parent: JobState?
        if !job.jobID.isEmpty, !job.idempotencyKey.isEmpty {  // else the decider refuses it without reading
            existingJobID = try tables.get(tables.table(T.jobKeys), Key(job.idempotencyKey).bytes).map {
                String(decoding: $0, as: UTF8.self)
            }
            if existingJobID == nil {
                jobIDTaken = try load(job.jobID, tables) != nil
                parent = try job.parentJobID.flatMap { try load($0, tables) }
            }
        }
        let decision = try JobDecider.enqueue(
            job, existingJobID: existingJobID, jobIDTaken: jobIDTaken, parent: parent, settings: settings)
        return try context.commit(decision)
    }

    /// Settles expired claims (``JobDecider/reclaimExpired(settings:queue:now:)``), then claims the next runnable job for
    /// `owner` against the queues as the settlements left them (``JobDecider/claim(owner:settings:queue:now:nextSeq:)``),
    /// in one transaction.
    public static func claim(owner: Owner, settings: JobSettings, _ context: inout WriteContext) throws -> JobClaim? {
        _ = try context.commit(
            JobDecider.reclaimExpired(
                settings: settings, queue: TableJobQueue(tables: context.tables), now: context.now))
        let decision = try JobDecider.claim(
            owner: owner, settings: settings, queue: TableJobQueue(tables: context.tables), now: context.now,
            nextSeq: context.nextSeq)
        return try context.commit(decision)
    }

    public static func heartbeat(
        _ jobID: String, token: UInt64, owner: Owner, settings: JobSettings, _ context: inout WriteContext
    ) throws -> JobCommandResult {
        let job = try load(jobID, context.tables)
        return try context.commit(
            JobDecider.heartbeat(job, jobID: jobID, token: token, owner: owner, settings: settings, now: context.now))
    }

    public static func complete(
        _ jobID: String, token: UInt64, owner: Owner, result: String? = nil, modelUsed: String? = nil,
        _ context: inout WriteContext
    ) throws -> JobCommandResult {
        let job = try load(jobID, context.tables)
        return try context.commit(
            JobDecider.complete(job, jobID: jobID, token: token, owner: owner, result: result, modelUsed: modelUsed))
    }

    public static func fail(
        _ jobID: String, token: UInt64, owner: Owner, reason: String, message: String, retryable: Bool,
        settings: JobSettings, _ context: inout WriteContext
    ) throws -> JobFailureOutcome {
        let job = try load(jobID, context.tables)
        return try context.commit(
            JobDecider.fail(
                job, jobID: jobID, token: token, owner: owner, reason: reason, message: message, retryable: retryable,
                settings: settings, now: context.now))
    }

    public static func requeue(
        _ jobID: String, byOperator name: String, reason: String, _ context: inout WriteContext
    ) throws -> JobCommandResult {
        let job = try load(jobID, context.tables)
        return try context.commit(JobDecider.requeue(job, jobID: jobID, byOperator: name, reason: reason))
    }
}

/// ``JobQueueView`` over the projection's indexes in the write transaction.
struct TableJobQueue<Tables: TableReading>: JobQueueView {
    typealias T = ProjectionTables
    let tables: Tables

    /// The job under `id`, the UTF-8 bytes of its id (a one-part ``Key``).
    private func job(_ id: [UInt8]) throws -> JobState? {
        try tables.get(tables.table(T.jobs), id).map { try StateCoding.decode(JobState.self, $0) }
    }

    func forEachClaimable(at now: LogTimestamp, _ body: (JobState) throws -> Bool) throws {
        let ready = tables.table(T.jobReady)
        let nowKey = orderKey(now)
        var start: [UInt8]?
        while true {
            // One pass per priority: the first entry not yet due ends its priority (later entries of it are
            // later still), and the next pass seeks past it.
            var nextPriority: [UInt8]?
            var stopped = false
            try tables.scan(ready, from: start) { key, value in
                guard key.count == 24 else { return true }
                if bigEndianUInt64(key[8..<16]) > nowKey {
                    let priority = bigEndianUInt64(key[0..<8])
                    if priority < .max {
                        var next: [UInt8] = []
                        appendBigEndian(priority + 1, to: &next)
                        nextPriority = next
                    }
                    return false
                }
                guard let job = try job(value) else { return true }
                if try !body(job) {
                    stopped = true
                    return false
                }
                return true
            }
            guard !stopped, let nextPriority else { return }
            start = nextPriority
        }
    }

    func forEachExpiredClaim(before now: LogTimestamp, _ body: (JobState) throws -> Bool) throws {
        let nowKey = orderKey(now)
        try tables.scan(tables.table(T.jobRunning)) { key, value in
            let until =
                key.count >= 9 ? UInt64(bigEndian: key[1..<9].withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }) : 0
            if until >= nowKey { return false }
            guard let job = try job(value) else { return true }
            return try body(job)
        }
    }
}
