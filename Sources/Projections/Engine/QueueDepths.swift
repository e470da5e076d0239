import EventLog

/// How many jobs and deliveries wait or run now, counted from the claim indexes (which hold live entries only).
public struct QueueDepths: Sendable, Equatable {
    public var jobsReady: Int
    public var jobsRunning: Int
    public var deliveriesPending: Int
    public var deliveriesInFlight: Int
}

extension StateReader {
    /// The queue depths, in one snapshot, from the indexes' entry counts: jobs waiting are every pending job of
    /// every conversation (`p.job_ready` and `p.conversation_jobs`, which hold each pending job once), not only
    /// the ones claimable now; deliveries pending are the unfinished ones in the recipient FIFOs less those in
    /// flight.
    public func queueDepths() throws -> QueueDepths {
        let tables: [ProjectionTable] = [
            .conversationJobs, .jobRunning, .recipientQueue, .deliveryInflight, .jobReady,
        ]
        let handles = tables.map { table($0) }
        let counts = try log.withSnapshot { snapshot in try handles.map { try snapshot.count($0) } }
        return QueueDepths(
            jobsReady: counts[0] + counts[4], jobsRunning: counts[1], deliveriesPending: max(0, counts[2] - counts[3]),
            deliveriesInFlight: counts[3])
    }
}
