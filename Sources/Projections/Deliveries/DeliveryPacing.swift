import EventLog
import SwitchboardEvents

// MARK: Pacing: when a recipient may next receive a message

extension DeliveryDecider {
    /// When the recipient may next receive a message, or `nil` if now.
    static func recipientBlockedUntil(
        _ delivery: DeliveryState, limits: RateLimits, now: LogTimestamp, _ queue: some DeliveryQueueView
    ) throws -> LogTimestamp? {
        let times = try queue.recipientSendTimes(
            channel: delivery.channel, accountID: delivery.accountID, recipient: delivery.recipient)
        var until = bucketBlockedUntil(
            times, burst: limits.perRecipientBurst, interval: limits.perRecipientInterval, now: now)
        if let group = limits.perGroupWindow, limits.isGroup(delivery.recipient), group.count > 0 {
            let since = now.advanced(by: .zero - group.window).microseconds
            let recent = times.filter { $0 > since }
            if recent.count >= group.count {
                let next = LogTimestamp(microseconds: recent[recent.count - group.count]).advanced(by: group.window)
                until = max(until ?? next, next)
            }
        }
        return until
    }

    /// When a recipient may next receive a message under a token bucket of `burst` sends refilled one per
    /// `interval`, given its recorded send times (claims, oldest first; the bucket is full before the first one
    /// recorded); `nil` when now. A pure function of the times and `now`, so replay decides the same.
    static func bucketBlockedUntil(_ times: [Int64], burst: Int, interval: Duration, now: LogTimestamp)
        -> LogTimestamp?
    {
        guard interval > .zero, let last = times.last else { return nil }
        // Credit in microseconds of sending time: a send costs one interval, the bucket holds `burst` of them and
        // refills in real time. Whole numbers, so the decision is exact.
        let cost = interval.components.seconds * 1_000_000 + interval.components.attoseconds / 1_000_000_000_000
        let capacity = cost * Int64(max(1, burst))
        var credit = capacity
        var previous: Int64?
        for time in times {
            if let previous { credit = min(capacity, credit + max(0, time - previous)) }
            credit = max(0, credit - cost)
            previous = time
        }
        let available = min(capacity, credit + max(0, now.microseconds - last))
        guard available < cost else { return nil }
        return LogTimestamp(microseconds: now.microseconds + (cost - available))
    }
}
