import EventLog
import Foundation
import NIOCore
import PostgresNIO

/// How records and table entries travel to and from PostgreSQL: the envelope's fields as columns, the payload
/// as the same bytes, and the envelope's CRC32C so a record reads back verified (and compares equal to LMDB's).
enum PostgresRecords {
    /// The columns of `events`, in the order ``decode(_:)`` reads them.
    static let columns =
        "seq, ts, type, schema_version, writer_role, writer_worker, writer_instance, flags, correlation_id, "
        + "causation_seq, payload_encoding, payload, crc"

    /// Reads one `events` row back as a verified record.
    static func decode(_ row: PostgresRow) throws -> Record {
        let (seq, ts, type, schema, role, worker, instance, flags, correlation, causation, encoding, payload, crc) =
            try row.decode(
                (
                    Int64, Int64, String, Int32, String, String, UUID, Int16, String?, Int64?, Int16, ByteBuffer,
                    Int32
                ).self)
        let record = Record(
            stored: UInt64(bitPattern: seq), timestamp: LogTimestamp(microseconds: ts), type: type,
            schemaVersion: UInt16(truncatingIfNeeded: schema),
            writer: WriterIdentity(role: role, workerID: worker, instanceID: instance),
            correlationID: flags & 2 != 0 ? (correlation ?? "") : nil,
            causationID: flags & 1 != 0 ? causation.map { UInt64(bitPattern: $0) } : nil,
            payloadEncoding: PayloadEncoding(rawValue: UInt8(truncatingIfNeeded: encoding)),
            payload: Array(buffer: payload))
        try record.verify(storedChecksum: UInt32(bitPattern: crc))
        return record
    }

    /// One multi-row `INSERT` of `records` (arrays through `unnest`: one statement whatever the count), its
    /// parameters added to `parameters`. PostgreSQL's `text` holds no NUL: a string field with one is refused before
    /// anything is sent.
    static func insert(_ records: [Record], schema: String, _ parameters: inout GroupStatements.Parameters) throws
        -> String
    {
        var seqs: [Int64] = []
        var times: [Int64] = []
        var types: [String] = []
        var schemas: [Int32] = []
        var roles: [String] = []
        var workers: [String] = []
        var instances: [UUID] = []
        var flags: [Int16] = []
        var correlations: [String] = []
        var causations: [Int64] = []
        var encodings: [Int16] = []
        var payloads: [ByteBuffer] = []
        var crcs: [Int32] = []
        for record in records {
            for text in [record.type, record.writer.role, record.writer.workerID, record.correlationID ?? ""]
            where text.utf8.contains(0) {
                throw EventLogPostgresError(
                    .invalidArgument, "record \(record.seq): PostgreSQL text cannot hold a NUL character")
            }
            seqs.append(Int64(bitPattern: record.seq))
            times.append(record.timestamp.microseconds)
            types.append(record.type)
            schemas.append(Int32(record.schemaVersion))
            roles.append(record.writer.role)
            workers.append(record.writer.workerID)
            instances.append(record.writer.instanceID)
            flags.append((record.causationID != nil ? 1 : 0) | (record.correlationID != nil ? 2 : 0))
            correlations.append(record.correlationID ?? "")
            causations.append(Int64(bitPattern: record.causationID ?? 0))
            encodings.append(Int16(record.payloadEncoding.rawValue))
            payloads.append(ByteBuffer(bytes: record.payload))
            crcs.append(Int32(bitPattern: try record.envelopeChecksum()))
        }
        let columns = [
            "\(parameters.add(seqs))::bigint[]", "\(parameters.add(times))::bigint[]",
            "\(parameters.add(types))::text[]", "\(parameters.add(schemas))::int[]",
            "\(parameters.add(roles))::text[]", "\(parameters.add(workers))::text[]",
            "\(parameters.add(instances))::uuid[]", "\(parameters.add(flags))::smallint[]",
            "\(parameters.add(correlations))::text[]", "\(parameters.add(causations))::bigint[]",
            "\(parameters.add(encodings))::smallint[]", "\(parameters.add(payloads))::bytea[]",
            "\(parameters.add(crcs))::int[]",
        ]
        // Nullable columns go as placeholders, masked by the flags (arrays cannot carry NULL elements here).
        return """
            INSERT INTO \(schema).events (\(Self.columns))
            SELECT s, t, ty, sv, r, w, i, f, CASE WHEN f & 2 <> 0 THEN c END, CASE WHEN f & 1 <> 0 THEN ca END, e, p, x
            FROM unnest(\(columns.joined(separator: ", "))) AS u(s, t, ty, sv, r, w, i, f, c, ca, e, p, x)
            """
    }
}

extension Array where Element == UInt8 {
    /// The readable bytes of `buffer`.
    init(buffer: ByteBuffer) {
        self = buffer.getBytes(at: buffer.readerIndex, length: buffer.readableBytes) ?? []
    }
}

extension PostgresRow {
    /// The first column as a `bigint`, for one-value queries.
    func int64() throws -> Int64 { try decode(Int64.self) }
}
