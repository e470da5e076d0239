import EventLog

// The delivery side of the claim indexes (see Jobs/JobQueues.swift for the layout of format 4).

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
    static func update(_ d: DeliveryState, previous: DeliveryState?, _ tables: some TableWriting) throws {
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

    private static func load(_ id: [UInt8], _ tables: some TableWriting) throws -> DeliveryState? {
        try tables.get(tables.table(T.deliveries), id).map { try StateCoding.decode(DeliveryState.self, $0) }
    }

    /// The id bytes of the first delivery in the recipient FIFO under `prefix`.
    private static func headID(_ prefix: [UInt8], _ tables: some TableWriting) throws -> [UInt8]? {
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
