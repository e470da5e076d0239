import CRC32C
import Foundation

// What an external backend (`EventLogPostgres`) needs of the log's internals: the envelope's checksum (so a
// record reads back verified, and a copy between backends compares equal), the projector applied through the
// backend's own transaction, and the stored projection format.

extension Record {
    /// Creates a record from its stored fields (an external backend reading one back).
    package init(
        stored seq: UInt64, timestamp: LogTimestamp, type: String, schemaVersion: UInt16, writer: WriterIdentity,
        correlationID: String?, causationID: UInt64?, payloadEncoding: PayloadEncoding, payload: [UInt8]
    ) {
        self.init(
            seq: seq, timestamp: timestamp, type: type, schemaVersion: schemaVersion, writer: writer,
            correlationID: correlationID, causationID: causationID, payloadEncoding: payloadEncoding,
            payload: payload)
    }

    /// The CRC32C of the record's version-1 envelope, as LMDB stores it: the same number on every backend.
    package func envelopeChecksum() throws(EventLogError) -> UInt32 {
        let event = PendingEvent(self)
        let encoding = try WriterEncoding(writer)
        let size = Envelope.size(of: event, writer: encoding)
        var bytes = [UInt8](repeating: 0, count: size)
        bytes.withUnsafeMutableBytes {
            Envelope.encode(event, seq: seq, timestamp: timestamp, writer: encoding, into: $0)
        }
        return bytes.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: 4, as: UInt32.self)) }
    }

    /// Checks a record read back from an external backend against the checksum stored with it.
    package func verify(storedChecksum: UInt32) throws(EventLogError) {
        let computed = try envelopeChecksum()
        guard computed == storedChecksum else {
            throw EventLogError(
                .corruptRecord,
                "checksum mismatch (stored 0x\(String(storedChecksum, radix: 16)), "
                    + "computed 0x\(String(computed, radix: 16)))", seq: seq)
        }
    }
}

extension Projector {
    /// Applies `record` to the tables through an external backend's transaction, as a bulk replay.
    package func replay(_ record: Record, into store: any WriteTransactionStore, tables: [Table]) throws {
        try applyRecord(record, to: TableWriter(store: .external(store), projectionTables: tables, replaying: true))
    }

    /// Completes a bulk replay through an external backend's transaction (``Projector/finishReplay(_:)``).
    package func finishReplay(into store: any WriteTransactionStore, tables: [Table]) throws {
        try finishReplay(TableWriter(store: .external(store), projectionTables: tables))
    }
}

extension ProjectionFormat {
    /// The stored form, `name/version`.
    package var storedText: String { description }

    /// Parses the stored form.
    package init?(storedText: String) { self.init(stored: Array(storedText.utf8)) }
}
