import Foundation

// Moving a whole log from one engine to another (`replay copy`): records go in as they were written — seq,
// timestamp and writer kept, so each envelope and its checksum equal the source's — with the log's projector
// applied to each as an append would. Only into an empty log, continued batch after batch.

extension EventLog {
    /// Appends `records`, copied from another log, keeping each one's seq, timestamp and writer identity, and
    /// applies the log's projector to each (as ``append(_:)`` does). The batch is one write command: one group
    /// commit, all or nothing.
    ///
    /// An import starts on an empty log (`expectedLast` 0) and continues where its previous batch ended
    /// (`expectedLast` = that batch's last seq): the log's last seq must be `expectedLast`, the records' seqs
    /// must follow it with no gap, and their times never go back (the log clock's rule).
    ///
    /// - Returns: the seqs appended.
    /// - Throws: ``EventLogError/Code/notContinuing`` when the log is not empty (or not where the import left
    ///   it), a seq is not the next one or a time goes back; ``EventLogError/Code/invalidArgument`` when a
    ///   record cannot be stored (too long a type or writer field); the projector's error when a record does
    ///   not decode. Nothing of the batch is written then.
    @discardableResult
    package func importRecords(_ records: [Record], after expectedLast: UInt64) async throws -> Range<UInt64> {
        var expected = expectedLast + 1
        var previous = records.first?.timestamp
        for record in records {
            try Envelope.validate(PendingEvent(record))
            _ = try WriterEncoding(record.writer)
            guard record.seq == expected else {
                throw EventLogError(
                    .notContinuing, "imported record \(record.seq) does not follow seq \(expected - 1)",
                    seq: record.seq)
            }
            if let before = previous, record.timestamp < before {
                throw EventLogError(
                    .notContinuing, "imported record \(record.seq) is dated \(record.timestamp), before \(before)",
                    seq: record.seq)
            }
            previous = record.timestamp
            expected += 1
        }
        let committed = try await transact { context in
            let last = context.lastSeq
            guard last == expectedLast else {
                throw EventLogError(
                    .notContinuing,
                    expectedLast == 0
                        ? "the log is not empty: it holds seqs 1...\(last); import only into an empty log"
                        : "the log moved during the import: its last seq is \(last), the import left it at "
                            + "\(expectedLast)")
            }
            if let first = records.first, last > 0, let end = try context.record(at: last)?.timestamp,
                first.timestamp < end
            {
                throw EventLogError(
                    .notContinuing, "imported record \(first.seq) is dated \(first.timestamp), before \(end)",
                    seq: first.seq)
            }
            for record in records { try context.appendImported(record) }
            return ()
        }
        return committed.seqs
    }
}

extension PendingEvent {
    /// The event a stored record was appended as (its envelope fields other than those the writer stamps).
    init(_ record: Record) {
        self.init(
            type: record.type, schemaVersion: record.schemaVersion, payload: record.payload,
            payloadEncoding: record.payloadEncoding, correlationID: record.correlationID,
            causationID: record.causationID)
    }
}
