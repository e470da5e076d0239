import EventLog

/// How many jobs and deliveries wait or run now, counted from the claim indexes (which hold live entries only).
public struct QueueDepths: Sendable, Equatable {
    public var jobsReady: Int
    public var jobsRunning: Int
    public var deliveriesPending: Int
    public var deliveriesInFlight: Int
}

extension StateReader {
    /// The queue depths, in one snapshot.
    public func queueDepths() throws -> QueueDepths {
        let tables: [ProjectionTable] = [.jobReady, .jobRunning, .deliveryPending, .deliveryInflight]
        let handles = tables.map { table($0) }
        let counts = try log.withSnapshot { snapshot -> [Int] in
            var counts: [Int] = []
            for handle in handles {
                var entries = 0
                try snapshot.scan(handle) { _, _ in
                    entries += 1
                    return true
                }
                counts.append(entries)
            }
            return counts
        }
        return QueueDepths(
            jobsReady: counts[0], jobsRunning: counts[1], deliveriesPending: counts[2], deliveriesInFlight: counts[3])
    }
}
