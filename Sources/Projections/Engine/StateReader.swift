import EventLog
import SwitchboardEvents
import Foundation
import Logging

/// Read-only queries over projection state, in consistent snapshots: of a live log opened with the projector,
/// or of a scratch environment rebuilt up to a past seq (``Rebuild/state(of:upTo:scratchDirectory:logger:)``).
public struct StateReader: Sendable {
    public let log: EventLog

    public init(log: EventLog) { self.log = log }

    /// A reader over the live state of `log`, refusing projection tables in an older format than this build's
    /// (left so by a read-only open, see ``ProjectionUpgrade/leave``): read as this build's layout they would
    /// mislead.
    public static func live(_ log: EventLog) throws -> StateReader {
        guard log.projections == .current else {
            throw EventLogError(
                .versionMismatch,
                "the live \(log.projections); start an agent of this build to rebuild them in place, or pass --at "
                    + "to rebuild a copy from the log")
        }
        return StateReader(log: log)
    }

    func table(_ table: ProjectionTable) -> Table { log.table(table) }

    private func all<T: Decodable>(_ type: T.Type, _ tableName: ProjectionTable, prefix: [UInt8]? = nil) throws -> [(
        key: [UInt8], value: T
    )] {
        try log.withSnapshot { snapshot in
            var out: [(key: [UInt8], value: T)] = []
            try snapshot.scan(table(tableName), from: prefix) { key, value in
                if let prefix, !hasPrefix(key, prefix) { return false }
                out.append((key, try StateCoding.decode(type, value)))
                return true
            }
            return out
        }
    }

    public func lease(_ resource: String) throws -> LeaseState? {
        try log.withSnapshot { try $0.load(LeaseState.self, table(ProjectionTables.leases), Key(resource)) }
    }

    /// Every lease ever granted (live or not), by resource.
    public func leases() throws -> [LeaseState] { try all(LeaseState.self, ProjectionTables.leases).map(\.value) }

    public func job(_ jobID: String) throws -> JobState? {
        try log.withSnapshot { try $0.load(JobState.self, table(ProjectionTables.jobs), Key(jobID)) }
    }

    public func delivery(_ deliveryID: String) throws -> DeliveryState? {
        try log.withSnapshot { try $0.load(DeliveryState.self, table(ProjectionTables.deliveries), Key(deliveryID)) }
    }

    /// The delivery enqueued under an idempotency key, if any.
    public func deliveryID(idempotencyKey: String) throws -> String? {
        try log.withSnapshot { snapshot in
            try snapshot.get(table(ProjectionTables.deliveryKeys), Key(idempotencyKey).bytes).map {
                String(decoding: $0, as: UTF8.self)
            }
        }
    }

    public func contact(channel: String, accountID: String, contactID: String) throws -> ContactState? {
        try log.withSnapshot {
            try $0.load(ContactState.self, table(ProjectionTables.contacts), Key(channel, accountID, contactID))
        }
    }

    public func contacts() throws -> [ContactState] {
        try all(ContactState.self, ProjectionTables.contacts).map(\.value)
    }

    public func conversation(_ id: String) throws -> ConversationState? {
        try log.withSnapshot { try $0.load(ConversationState.self, table(ProjectionTables.conversations), Key(id)) }
    }

    public func conversations() throws -> [ConversationState] {
        try all(ConversationState.self, ProjectionTables.conversations).map(\.value)
    }

    /// Jobs (all, or with `status`), in id order. Dead jobs come from their index; other statuses are filtered
    /// from all jobs (the indexes workers use are ordered for claiming, not listing).
    public func jobs(_ status: JobStatus? = nil) throws -> [JobState] {
        if status == .dead {
            return try ids(ProjectionTables.jobDead, prefix: []).compactMap { try job($0) }
        }
        let all = try all(JobState.self, ProjectionTables.jobs).map(\.value)
        return status.map { wanted in all.filter { $0.status == wanted } } ?? all
    }

    /// Deliveries (all, or with `status`), in id order. Failed and uncertain ones come from their index.
    public func deliveries(_ status: DeliveryStatus? = nil) throws -> [DeliveryState] {
        if let status, status == .failed || status == .uncertain {
            return try ids(ProjectionTables.deliveryAttention, prefix: Key(status.rawValue).prefix)
                .compactMap { try delivery($0) }
        }
        let all = try all(DeliveryState.self, ProjectionTables.deliveries).map(\.value)
        return status.map { wanted in all.filter { $0.status == wanted } } ?? all
    }

    /// The conversations deleted, by id (`p.redactions`).
    public func redactions() throws -> [String: ConversationDeletion] {
        Dictionary(
            try all(ConversationDeletion.self, ProjectionTables.redactions).map {
                (String(decoding: $0.key, as: UTF8.self), $0.value)
            }, uniquingKeysWith: { $1 })
    }

    /// The last `limit` messages of a conversation, oldest first.
    public func history(_ conversationID: String, limit: Int = 50) throws -> [HistoryMessage] {
        Array(
            try all(HistoryMessage.self, ProjectionTables.messages, prefix: Key(conversationID).prefix).map(\.value)
                .suffix(limit))
    }

    /// Session entries as (namespace, key, stored bytes, encrypted) — never the values.
    public func sessionEntries(namespace: String? = nil) throws -> [(
        namespace: String, key: String, bytes: Int, encrypted: Bool
    )] {
        try all(SessionEntryState.self, ProjectionTables.sessions, prefix: namespace.map { Key($0).prefix }).map {
            item in
            let parts = item.key.split(separator: 0, maxSplits: 1, omittingEmptySubsequences: false)
            return (
                String(decoding: parts[0], as: UTF8.self),
                parts.count > 1 ? String(decoding: parts[1], as: UTF8.self) : "",
                item.value.value.count, item.value.encrypted
            )
        }
    }

    /// The rest of every key of `tableName` that starts with `prefix`, as a string.
    private func ids(_ tableName: ProjectionTable, prefix: [UInt8]) throws -> [String] {
        try log.withSnapshot { snapshot in
            var out: [String] = []
            try snapshot.scan(table(tableName), from: prefix.isEmpty ? nil : prefix) { key, _ in
                guard hasPrefix(key, prefix) else { return false }
                out.append(String(decoding: key[prefix.count...], as: UTF8.self))
                return true
            }
            return out
        }
    }

    /// The digest of this state.
    public func digest() throws -> StateDigest { try log.withSnapshot { try StateDigest.of($0, log: log) } }
}

extension Rebuild {
    /// Rebuilds the projections of `source` up to `seq` into `scratchDirectory` — from the nearest earlier
    /// snapshot in `snapshots` when there is one this build can read, otherwise from seq 1 — and returns a
    /// reader over them with the snapshot used. Close the reader's log when done.
    public static func state(
        of source: EventLog, upTo seq: UInt64, snapshots: StateSnapshots? = nil, scratchDirectory: String,
        logger: Logger
    ) async throws -> (reader: StateReader, base: StateSnapshots.Entry?) {
        let outcome = try await run(
            of: source, upTo: seq, from: snapshots?.nearest(atOrBefore: seq), scratchDirectory: scratchDirectory,
            logger: logger)
        var configuration = EventLogConfiguration(
            directory: scratchDirectory, writer: WriterIdentity(role: "rebuild", workerID: "rebuild"))
        configuration.projector = SwitchboardProjector()
        configuration.projectionUpgrade = .leave
        configuration.createIfMissing = false
        return (StateReader(log: try EventLog(configuration, logger: logger)), outcome.base)
    }
}

extension EventLog {
    /// The last seq whose log time is at or before `time` (0 when none), by binary search: log time never
    /// decreases along the log.
    public func lastSeq(atOrBefore time: LogTimestamp) throws -> UInt64 {
        try withSnapshot { snapshot in
            var low: UInt64 = 0
            var high = try snapshot.lastSeq
            while low < high {
                let mid = low + (high - low + 1) / 2
                guard let record = try snapshot.record(at: mid) else { break }
                if record.timestamp <= time { low = mid } else { high = mid - 1 }
            }
            return low
        }
    }
}
