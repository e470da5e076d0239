import EventLog
import SwitchboardEvents
import Foundation
import Logging

/// Copies of all projection state at points of the log, kept in `<log directory>/snapshots/<seq>/`, so that
/// state at a past point is rebuilt from the nearest earlier copy instead of from seq 1.
///
/// A snapshot is derived data, like the live tables: deleting one loses nothing (``Rebuild`` then starts
/// further back), and `replay verify` checks each one against a rebuild from the log. Taking one holds a read
/// transaction of the live log while the tables are copied; it never blocks writers. Processes sharing the log
/// take snapshots one at a time (a lock file), and a snapshot appears under its final name only when complete.
public struct StateSnapshots: Sendable {
    /// The folder holding the snapshots.
    public let directory: String

    /// The snapshots of the log in `logDirectory`.
    public init(logDirectory: String) { directory = logDirectory + "/snapshots" }

    /// One snapshot on disk.
    public struct Entry: Sendable, Equatable, Codable {
        /// The last seq the snapshot's state includes.
        public var seq: UInt64
        /// The log time of that record, ISO-8601.
        public var time: String?
        /// The projection format it was written in (`switchboard/1`).
        public var format: String
        /// Projection entries in it.
        public var entries: Int
        /// Size of its `data.mdb`.
        public var bytes: Int
        /// Its folder.
        public var path: String

        public init(seq: UInt64, time: String?, format: String, entries: Int, bytes: Int, path: String) {
            self.seq = seq
            self.time = time
            self.format = format
            self.entries = entries
            self.bytes = bytes
            self.path = path
        }
    }

    static let infoFile = "snapshot.json"

    /// The snapshots on disk, oldest first. Incomplete ones (a process killed mid-copy) are not listed.
    public func list() -> [Entry] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { name -> Entry? in
            guard UInt64(name) != nil else { return nil }
            let path = directory + "/" + name
            guard let data = FileManager.default.contents(atPath: path + "/" + Self.infoFile),
                var entry = try? JSONDecoder().decode(Entry.self, from: data)
            else { return nil }
            entry.path = path
            return entry
        }.sorted { $0.seq < $1.seq }
    }

    /// The newest snapshot at or before `seq` written in `format` (this build's by default).
    public func nearest(atOrBefore seq: UInt64, format: ProjectionFormat = SwitchboardProjector.format) -> Entry? {
        list().last { $0.seq <= seq && $0.format == format.description }
    }

    /// Copies the live projection state of `log` (opened with the Switchboard projector) into a new snapshot.
    /// Returns `nil` when another process is taking one right now, a snapshot at the same seq exists, or — with
    /// `minimumGap` — the newest snapshot is fewer than `minimumGap` events behind the log.
    @discardableResult
    public func take(of log: EventLog, minimumGap: UInt64 = 0, logger: Logger) throws -> Entry? {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        guard let lock = FileLock(directory + "/.lock") else { return nil }
        defer { lock.release() }
        if minimumGap > 0, let newest = list().last, try log.lastSeq() < newest.seq + minimumGap { return nil }
        removeIncomplete()
        let staging = directory + "/.staging-\(getpid())"
        try? FileManager.default.removeItem(atPath: staging)
        let started = ContinuousClock.now
        let export: ProjectionExport
        do {
            export = try log.exportProjections(to: staging)
        } catch {
            try? FileManager.default.removeItem(atPath: staging)
            throw error
        }
        let final = directory + "/" + Self.name(export.seq)
        if FileManager.default.fileExists(atPath: final) {
            try? FileManager.default.removeItem(atPath: staging)
            return nil
        }
        let entry = Entry(
            seq: export.seq, time: export.timestamp?.description, format: SwitchboardProjector.format.description,
            entries: export.entries, bytes: export.bytes, path: final)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        try writeDurably(try encoder.encode(entry), to: staging + "/" + Self.infoFile)
        try? FileManager.default.removeItem(atPath: staging + "/lock.mdb")  // readers recreate it
        guard rename(staging, final) == 0 else {
            let code = errno
            try? FileManager.default.removeItem(atPath: staging)
            throw ProjectionError(
                .io, "cannot move the snapshot into place at \(final): \(String(cString: strerror(code)))")
        }
        syncDirectory(directory)
        logger.info(
            "snapshot.taken",
            metadata: [
                "snapshot.seq": "\(entry.seq)", "snapshot.entries": "\(entry.entries)",
                "snapshot.bytes": "\(entry.bytes)", "snapshot.duration": "\(ContinuousClock.now - started)",
            ])
        return entry
    }

    /// Deletes all but the newest `keep` snapshots; returns the seqs deleted.
    @discardableResult
    public func prune(keeping keep: Int) -> [UInt64] {
        let all = list()
        guard all.count > keep else { return [] }
        let old = all.prefix(all.count - max(0, keep))
        for entry in old { try? FileManager.default.removeItem(atPath: entry.path) }
        return old.map(\.seq)
    }

    /// Opens a snapshot read-only in place (for checking it). Close the log when done.
    public func open(_ entry: Entry, logger: Logger) throws -> EventLog {
        var configuration = EventLogConfiguration(
            directory: entry.path, writer: WriterIdentity(role: "snapshot", workerID: "snapshot"))
        configuration.projector = SwitchboardProjector()
        configuration.projectionUpgrade = .leave
        configuration.createIfMissing = false
        configuration.durability = .relaxed
        return try EventLog(configuration, logger: logger)
    }

    /// A 20-digit name, so names sort as seqs.
    static func name(_ seq: UInt64) -> String {
        let digits = String(seq)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits
    }

    /// Staging folders of processes killed mid-copy (taken under the lock, so none is in progress).
    private func removeIncomplete() {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        where name.hasPrefix(".staging-") {
            try? FileManager.default.removeItem(atPath: directory + "/" + name)
        }
    }
}

/// An exclusive, non-blocking `flock` on a file; released on ``release()`` or when the process dies.
final class FileLock {
    private let fd: Int32

    init?(_ path: String) {
        fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return nil }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            return nil
        }
    }

    func release() {
        flock(fd, LOCK_UN)
        close(fd)
    }
}

/// Writes `data` to `path` (created with `mode`) and fsyncs it; on failure the file is removed.
func writeDurably(_ data: Data, to path: String, mode: mode_t = 0o644) throws {
    let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    guard fd >= 0 else { throw ProjectionError(.io, "cannot create \(path): \(String(cString: strerror(errno)))") }
    let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    let synced = fsync(fd)
    close(fd)
    guard written == data.count, synced == 0 else {
        unlink(path)
        throw ProjectionError(.io, "cannot write \(path)")
    }
}

func syncDirectory(_ path: String) {
    let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { return }
    fsync(fd)
    close(fd)
}
