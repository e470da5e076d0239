import EventLog

/// The states a bulk replay has changed and not yet written: a rebuild's job goes from enqueued to claimed to
/// completed within a few hundred records, so keeping it decoded until the batch ends writes and encodes it once
/// instead of once per event, and reads it from here instead of decoding it again (docs/benchmarks.md, "the
/// rebuild"). Used by one replay on one thread: the projector of ``SwitchboardProjector/forReplay()`` is made for
/// it and never appends.
final class ReplayStates: @unchecked Sendable {
    /// Where each job's state is in `jobs`.
    private var jobIndex: [String: Int] = [:]
    /// In an array, so the batch's end encodes each state where it lies instead of copying it out.
    private var jobs: [JobState] = []

    func job(_ jobID: String) -> JobState? { jobIndex[jobID].map { jobs[$0] } }

    func save(_ job: JobState) {
        if let index = jobIndex[job.jobID] {
            jobs[index] = job
        } else {
            jobIndex[job.jobID] = jobs.count
            jobs.append(job)
        }
    }

    /// Forgets every kept state: its batch's transaction did not commit.
    func discard() {
        jobs.removeAll(keepingCapacity: true)
        jobIndex.removeAll(keepingCapacity: true)
    }

    /// Stores every kept state in `tables` and forgets them.
    func flush(_ tables: some TableWriting) throws {
        guard !jobs.isEmpty else { return }
        try jobs.withUnsafeBufferPointer { states in
            for index in states.indices {
                try tables.store(states[index], ProjectionTable.jobs, Key(states[index].jobID))
            }
        }
        jobs.removeAll(keepingCapacity: true)
        jobIndex.removeAll(keepingCapacity: true)
    }
}

extension SwitchboardProjector {
    /// A projector for one bulk replay (a rebuild into a scratch copy): while ``TableWriting/replaying``, it keeps
    /// the job states it changes in memory until ``endReplayBatch(_:)`` (which the replay calls before each
    /// commit) or ``finishReplay(_:)`` writes them. The tables it leaves are those ``init()``'s projector leaves.
    public static func forReplay() -> SwitchboardProjector { SwitchboardProjector(replayStates: ReplayStates()) }

    private init(replayStates: ReplayStates) { self.replayStates = replayStates }

    /// The job under `jobID`: the replay's unwritten state when it has one.
    func loadJob(_ jobID: String, _ tables: some TableWriting) throws -> JobState? {
        if tables.replaying, let job = replayStates?.job(jobID) { return job }
        return try tables.load(JobState.self, ProjectionTable.jobs, Key(jobID))
    }

    /// Writes the states this replay kept in memory.
    public func endReplayBatch<Tables: TableWriting>(_ tables: Tables) throws { try replayStates?.flush(tables) }

    /// Forgets the states kept for a batch whose transaction did not commit: the replay applies the batch again,
    /// from the state the tables hold (an earlier batch's states were written before it committed).
    public func discardReplayBatch() { replayStates?.discard() }
}
