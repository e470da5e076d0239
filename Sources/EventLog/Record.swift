import CRC32C
import Foundation

/// A point on the log clock: microseconds since the Unix epoch, stamped by the writer inside the write
/// transaction and never decreasing along the log (across processes too).
public struct LogTimestamp: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// Microseconds since 1970-01-01T00:00:00Z.
    public var microseconds: Int64

    /// Creates a timestamp from microseconds since the Unix epoch.
    public init(microseconds: Int64) { self.microseconds = microseconds }

    /// Creates a timestamp from a `Date`.
    public init(_ date: Date) { microseconds = Int64((date.timeIntervalSince1970 * 1_000_000).rounded()) }

    /// The wall clock of this machine now (`CLOCK_REALTIME`). Only the writer uses it, then clamps it.
    public static func wallClock() -> LogTimestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return LogTimestamp(microseconds: Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1_000)
    }

    /// This timestamp as a `Date`.
    public var date: Date { Date(timeIntervalSince1970: Double(microseconds) / 1_000_000) }

    /// This timestamp moved by `duration` (negative durations move it back).
    public func advanced(by duration: Duration) -> LogTimestamp {
        let (seconds, attoseconds) = duration.components
        return LogTimestamp(microseconds: microseconds + seconds * 1_000_000 + attoseconds / 1_000_000_000_000)
    }

    /// The time from `other` to this timestamp.
    public func duration(since other: LogTimestamp) -> Duration {
        .microseconds(microseconds - other.microseconds)
    }

    public static func < (lhs: LogTimestamp, rhs: LogTimestamp) -> Bool { lhs.microseconds < rhs.microseconds }

    /// Encodes as a single integer of microseconds.
    public init(from decoder: any Decoder) throws {
        microseconds = try decoder.singleValueContainer().decode(Int64.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(microseconds)
    }

    /// ISO-8601 with microseconds, in UTC, e.g. `2026-11-29T04:47:35.123456Z`.
    public var description: String {
        let seconds = microseconds >= 0 ? microseconds / 1_000_000 : (microseconds - 999_999) / 1_000_000
        let micros = microseconds - seconds * 1_000_000
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        let fraction = String(micros)
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))."
            + String(repeating: "0", count: 6 - fraction.count) + fraction + "Z"
    }
}

/// Who wrote a record: the role, the operator-chosen worker id, and a per-process instance id.
///
/// Two processes started with the same `WORKER_ID` still differ by ``instanceID``.
public struct WriterIdentity: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The process role (`core`, `whatsapp`, `telegram`, `web`, `all`, `replay`, `test`...).
    public var role: String
    /// The operator-chosen worker id (`WORKER_ID`), e.g. `wa-1`.
    public var workerID: String
    /// A random id made when the process starts.
    public var instanceID: UUID

    /// Creates an identity; `instanceID` defaults to a fresh random id.
    public init(role: String, workerID: String, instanceID: UUID = UUID()) {
        self.role = role
        self.workerID = workerID
        self.instanceID = instanceID
    }

    public var description: String { "\(role)/\(workerID)#\(instanceID.uuidString.prefix(8).lowercased())" }
}

/// How a record's payload bytes are encoded.
public struct PayloadEncoding: RawRepresentable, Hashable, Sendable, Codable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// UTF-8 JSON (the only encoding of envelope v1; the vocabulary's payload codec writes it).
    public static let json = PayloadEncoding(rawValue: 1)
}

/// A committed record of the log: the envelope and its payload bytes.
public struct Record: Sendable, Hashable {
    /// Gapless sequence number, starting at 1.
    public var seq: UInt64
    /// The log time stamped by the writer inside the write transaction.
    public var timestamp: LogTimestamp
    /// The event type, e.g. `job.enqueued`.
    public var type: String
    /// The schema version of the payload for this type.
    public var schemaVersion: UInt16
    /// The process that wrote the record.
    public var writer: WriterIdentity
    /// Groups records of one flow (a conversation turn, a job, a delivery).
    public var correlationID: String?
    /// The seq of the record that caused this one.
    public var causationID: UInt64?
    /// How ``payload`` is encoded.
    public var payloadEncoding: PayloadEncoding
    /// The payload bytes.
    public var payload: [UInt8]

    /// The payload as text (JSON), for display.
    public var payloadText: String { String(decoding: payload, as: UTF8.self) }
}

/// A new event to append: its envelope fields other than those the writer stamps, and the encoded payload.
public struct PendingEvent: Sendable, Hashable {
    public var type: String
    public var schemaVersion: UInt16
    public var correlationID: String?
    public var causationID: UInt64?
    public var payloadEncoding: PayloadEncoding
    public var payload: [UInt8]

    /// Creates an event from raw parts (any type name, including ones this build does not know).
    public init(
        type: String, schemaVersion: UInt16 = 1, payload: [UInt8], payloadEncoding: PayloadEncoding = .json,
        correlationID: String? = nil, causationID: UInt64? = nil
    ) {
        self.type = type
        self.schemaVersion = schemaVersion
        self.payload = payload
        self.payloadEncoding = payloadEncoding
        self.correlationID = correlationID
        self.causationID = causationID
    }
}

/// The binary envelope of a stored record (version 1). All integers little-endian; the key is the
/// big-endian seq.
///
/// ```
/// 0  u8  envelope version (1)      1  u8  flags (1 causation, 2 correlation)
/// 2  u8  payload encoding          3  u8  reserved
/// 4  u32 CRC32C of bytes 8..<end   8  u64 seq
/// 16 i64 timestamp (µs)            24 u16 schema version
/// 26 u16 type length               28 u8  role length
/// 29 u8  worker id length          30 u8  correlation id length
/// 31 u8  reserved                  32 16B writer instance id
/// 48 u64 causation seq             56 u32 payload length
/// 60 type, role, worker id, correlation id, payload
/// ```
enum Envelope {
    static let version: UInt8 = 1
    static let headerSize = 60
    static let maxTypeLength = Int(UInt16.max)
    static let maxShortString = 255
    static let maxPayload = Int(UInt32.max)

    /// Bytes needed to store `event` written by `writer`.
    static func size(of event: PendingEvent, writer: WriterEncoding) -> Int {
        headerSize + event.type.utf8.count + writer.role.count + writer.worker.count
            + (event.correlationID?.utf8.count ?? 0) + event.payload.count
    }

    /// Checks the lengths an envelope can hold.
    static func validate(_ event: PendingEvent) throws(EventLogError) {
        if event.type.isEmpty || event.type.utf8.count > maxTypeLength {
            throw EventLogError(.invalidArgument, "event type must be 1...\(maxTypeLength) bytes")
        }
        if let c = event.correlationID, c.utf8.count > maxShortString {
            throw EventLogError(.invalidArgument, "correlation id longer than \(maxShortString) bytes")
        }
        if event.payload.count > maxPayload {
            throw EventLogError(.invalidArgument, "payload larger than \(maxPayload) bytes")
        }
    }

    /// Writes the envelope into `out`, which has exactly `size(of:writer:)` bytes.
    static func encode(
        _ event: PendingEvent, seq: UInt64, timestamp: LogTimestamp, writer: WriterEncoding,
        into out: UnsafeMutableRawBufferPointer
    ) {
        let correlation = event.correlationID.map { Array($0.utf8) } ?? []
        var flags: UInt8 = 0
        if event.causationID != nil { flags |= 1 }
        if event.correlationID != nil { flags |= 2 }
        out.storeBytes(of: version, toByteOffset: 0, as: UInt8.self)
        out.storeBytes(of: flags, toByteOffset: 1, as: UInt8.self)
        out.storeBytes(of: event.payloadEncoding.rawValue, toByteOffset: 2, as: UInt8.self)
        out.storeBytes(of: 0, toByteOffset: 3, as: UInt8.self)
        out.storeBytes(of: seq.littleEndian, toByteOffset: 8, as: UInt64.self)
        out.storeBytes(of: timestamp.microseconds.littleEndian, toByteOffset: 16, as: Int64.self)
        out.storeBytes(of: event.schemaVersion.littleEndian, toByteOffset: 24, as: UInt16.self)
        var type = event.type
        let typeCount = type.utf8.count
        out.storeBytes(of: UInt16(typeCount).littleEndian, toByteOffset: 26, as: UInt16.self)
        out.storeBytes(of: UInt8(writer.role.count), toByteOffset: 28, as: UInt8.self)
        out.storeBytes(of: UInt8(writer.worker.count), toByteOffset: 29, as: UInt8.self)
        out.storeBytes(of: UInt8(correlation.count), toByteOffset: 30, as: UInt8.self)
        out.storeBytes(of: 0, toByteOffset: 31, as: UInt8.self)
        withUnsafeBytes(of: writer.instance) {
            out.baseAddress!.advanced(by: 32).copyMemory(from: $0.baseAddress!, byteCount: 16)
        }
        out.storeBytes(of: (event.causationID ?? 0).littleEndian, toByteOffset: 48, as: UInt64.self)
        out.storeBytes(of: UInt32(event.payload.count).littleEndian, toByteOffset: 56, as: UInt32.self)
        var offset = headerSize
        func copy(_ bytes: UnsafeRawBufferPointer) {
            if bytes.count > 0 {
                out.baseAddress!.advanced(by: offset).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
            }
            offset += bytes.count
        }
        type.withUTF8 { copy(UnsafeRawBufferPointer($0)) }
        writer.role.withUnsafeBytes { copy($0) }
        writer.worker.withUnsafeBytes { copy($0) }
        correlation.withUnsafeBytes { copy($0) }
        event.payload.withUnsafeBytes { copy($0) }
        let crc = sb_crc32c_extend(0, out.baseAddress!.advanced(by: 8), out.count - 8)
        out.storeBytes(of: crc.littleEndian, toByteOffset: 4, as: UInt32.self)
    }

    /// The seq and timestamp of a stored envelope, without full decoding (used for the log clock).
    static func peekClock(_ value: UnsafeRawBufferPointer) -> (seq: UInt64, timestamp: LogTimestamp)? {
        guard value.count >= headerSize else { return nil }
        return (
            UInt64(littleEndian: value.loadUnaligned(fromByteOffset: 8, as: UInt64.self)),
            LogTimestamp(microseconds: Int64(littleEndian: value.loadUnaligned(fromByteOffset: 16, as: Int64.self)))
        )
    }

    /// Verifies the checksum and structure of the envelope stored under `key` and decodes it.
    static func decode(seq key: UInt64, _ value: UnsafeRawBufferPointer) throws(EventLogError) -> Record {
        guard value.count >= headerSize else {
            throw EventLogError(
                .corruptRecord, "record is \(value.count) bytes, shorter than the envelope header", seq: key)
        }
        let version = value.load(fromByteOffset: 0, as: UInt8.self)
        guard version == Envelope.version else {
            throw EventLogError(.corruptRecord, "unknown envelope version \(version)", seq: key)
        }
        let stored = UInt32(littleEndian: value.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        let computed = sb_crc32c_extend(0, value.baseAddress!.advanced(by: 8), value.count - 8)
        guard stored == computed else {
            throw EventLogError(
                .corruptRecord, "checksum mismatch (stored \(hex(stored)), computed \(hex(computed)))", seq: key)
        }
        let seq = UInt64(littleEndian: value.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        guard seq == key else {
            throw EventLogError(.corruptRecord, "record carries seq \(seq) but is stored under seq \(key)", seq: key)
        }
        let flags = value.load(fromByteOffset: 1, as: UInt8.self)
        let encoding = value.load(fromByteOffset: 2, as: UInt8.self)
        let micros = Int64(littleEndian: value.loadUnaligned(fromByteOffset: 16, as: Int64.self))
        let schema = UInt16(littleEndian: value.loadUnaligned(fromByteOffset: 24, as: UInt16.self))
        let typeCount = Int(UInt16(littleEndian: value.loadUnaligned(fromByteOffset: 26, as: UInt16.self)))
        let roleCount = Int(value.load(fromByteOffset: 28, as: UInt8.self))
        let workerCount = Int(value.load(fromByteOffset: 29, as: UInt8.self))
        let correlationCount = Int(value.load(fromByteOffset: 30, as: UInt8.self))
        let instance = value.loadUnaligned(fromByteOffset: 32, as: uuid_t.self)
        let causation = UInt64(littleEndian: value.loadUnaligned(fromByteOffset: 48, as: UInt64.self))
        let payloadCount = Int(UInt32(littleEndian: value.loadUnaligned(fromByteOffset: 56, as: UInt32.self)))
        let total = headerSize + typeCount + roleCount + workerCount + correlationCount + payloadCount
        guard total == value.count else {
            throw EventLogError(
                .corruptRecord, "lengths add up to \(total) bytes but the record has \(value.count)", seq: key)
        }
        var offset = headerSize
        func string(_ count: Int) -> String {
            defer { offset += count }
            return String(decoding: UnsafeRawBufferPointer(rebasing: value[offset..<offset + count]), as: UTF8.self)
        }
        let type = string(typeCount)
        let role = string(roleCount)
        let worker = string(workerCount)
        let correlation = flags & 2 != 0 ? string(correlationCount) : nil
        let payload = [UInt8](UnsafeRawBufferPointer(rebasing: value[offset..<offset + payloadCount]))
        return Record(
            seq: seq, timestamp: LogTimestamp(microseconds: micros), type: type, schemaVersion: schema,
            writer: WriterIdentity(role: role, workerID: worker, instanceID: UUID(uuid: instance)),
            correlationID: correlation, causationID: flags & 1 != 0 ? causation : nil,
            payloadEncoding: PayloadEncoding(rawValue: encoding), payload: payload)
    }

    private static func hex(_ value: UInt32) -> String { "0x" + String(value, radix: 16) }
}

/// The writer identity pre-encoded once per process.
struct WriterEncoding: Sendable {
    let role: [UInt8]
    let worker: [UInt8]
    let instance: uuid_t

    init(_ identity: WriterIdentity) throws(EventLogError) {
        role = Array(identity.role.utf8)
        worker = Array(identity.workerID.utf8)
        instance = identity.instanceID.uuid
        guard role.count <= Envelope.maxShortString, worker.count <= Envelope.maxShortString else {
            throw EventLogError(.invalidArgument, "role and worker id must be at most 255 bytes")
        }
    }
}

/// Big-endian key bytes for a seq.
@inline(__always)
func withSeqKey<R>(_ seq: UInt64, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    try withUnsafeBytes(of: seq.bigEndian, body)
}

@inline(__always)
func seqFromKey(_ key: UnsafeRawBufferPointer) -> UInt64 {
    UInt64(bigEndian: key.loadUnaligned(as: UInt64.self))
}
