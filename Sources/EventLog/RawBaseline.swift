import CLMDB
import Foundation

/// Plain LMDB C-API loops that the `bench` executable measures beside the event log, in the same run, with
/// the same record count, value size, batch size and sync flags. Not API: `package` access, for the benchmark
/// only (it stays in EventLog because nothing else may touch LMDB's C API).
package enum RawLMDBBaseline {
    /// The result of a raw append loop.
    package struct AppendResult: Sendable {
        package var seconds: Double
        package var commitLatenciesNanoseconds: [UInt64]
        package var fileBytes: Int
    }

    /// Appends `count` values of `valueSize` bytes under big-endian seq keys with `MDB_APPEND`, `batch` per
    /// write transaction, one process, into a fresh environment at `directory`.
    package static func append(
        directory: String, count: Int, batch: Int, valueSize: Int, durability: Durability
    ) throws -> AppendResult {
        let env = try openRaw(directory, durability: durability)
        defer { mdb_env_close(env) }
        var dbi: MDB_dbi = 0
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, 0, &txn), "mdb_txn_begin")
        try check(mdb_dbi_open(txn, nil, 0, &dbi), "mdb_dbi_open")
        try check(mdb_txn_commit(txn), "mdb_txn_commit")
        var value = [UInt8](repeating: 0x61, count: valueSize)
        var latencies: [UInt64] = []
        latencies.reserveCapacity(count / max(1, batch) + 1)
        let start = monotonicNanoseconds()
        var next: UInt64 = 1
        var written = 0
        while written < count {
            let t0 = monotonicNanoseconds()
            try check(mdb_txn_begin(env, nil, 0, &txn), "mdb_txn_begin")
            var cursor: OpaquePointer?
            try check(mdb_cursor_open(txn, dbi, &cursor), "mdb_cursor_open")
            var k0 = MDB_val()
            var v0 = MDB_val()
            if mdb_cursor_get(cursor, &k0, &v0, MDB_LAST) == 0 {
                next = UInt64(bigEndian: k0.mv_data.loadUnaligned(as: UInt64.self)) + 1
            }
            let n = min(batch, count - written)
            for _ in 0..<n {
                var key = next.bigEndian
                try withUnsafeMutableBytes(of: &key) { kb in
                    try value.withUnsafeMutableBytes { vb in
                        var k = MDB_val(mv_size: 8, mv_data: kb.baseAddress)
                        var v = MDB_val(mv_size: vb.count, mv_data: vb.baseAddress)
                        try check(mdb_cursor_put(cursor, &k, &v, UInt32(MDB_APPEND)), "mdb_cursor_put")
                    }
                }
                next += 1
            }
            mdb_cursor_close(cursor)
            try check(mdb_txn_commit(txn), "mdb_txn_commit")
            latencies.append(monotonicNanoseconds() - t0)
            written += n
        }
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        return AppendResult(
            seconds: seconds, commitLatenciesNanoseconds: latencies, fileBytes: fileSize(directory + "/data.mdb"))
    }

    /// Scans every value of the environment at `directory` with a cursor, reading 8 bytes of each in place.
    /// Returns the number of records and the seconds taken.
    package static func scan(directory: String) throws -> (count: Int, seconds: Double) {
        let env = try openRaw(directory, durability: .durable)
        defer { mdb_env_close(env) }
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn), "mdb_txn_begin")
        defer { mdb_txn_abort(txn) }
        var dbi: MDB_dbi = 0
        try check(mdb_dbi_open(txn, nil, 0, &dbi), "mdb_dbi_open")
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(txn, dbi, &cursor), "mdb_cursor_open")
        defer { mdb_cursor_close(cursor) }
        var k = MDB_val()
        var v = MDB_val()
        var count = 0
        var sink: UInt64 = 0
        var expected: UInt64 = 1
        let start = monotonicNanoseconds()
        var rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST)
        while rc == 0 {
            let key = UInt64(bigEndian: k.mv_data.loadUnaligned(as: UInt64.self))
            precondition(key == expected, "raw scan found a gap")
            expected += 1
            sink &+= v.mv_data.loadUnaligned(as: UInt64.self)
            count += 1
            rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)
        }
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        if sink == 42 { print("") }  // keeps the reads from being optimized away
        return (count, seconds)
    }

    private static func openRaw(_ directory: String, durability: Durability) throws -> OpaquePointer {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var env: OpaquePointer?
        try check(mdb_env_create(&env), "mdb_env_create")
        try check(mdb_env_set_mapsize(env, 64 << 30), "mdb_env_set_mapsize")
        try check(mdb_env_set_maxreaders(env, 126), "mdb_env_set_maxreaders")
        try check(mdb_env_open(env, directory, UInt32(MDB_NOTLS) | durability.syncFlags, 0o644), "mdb_env_open")
        return env!
    }

    /// The size in bytes of the file at `path` (0 when missing).
    package static func fileSize(_ path: String) -> Int {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : 0
    }

    /// The calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`).
    static func threadCPUNanoseconds() -> UInt64 { nanoseconds(CLOCK_THREAD_CPUTIME_ID) }

    /// `CLOCK_MONOTONIC` in nanoseconds (system-wide, so comparable across processes).
    package static func monotonicNanoseconds() -> UInt64 { nanoseconds(CLOCK_MONOTONIC) }

    private static func nanoseconds(_ clock: clockid_t) -> UInt64 {
        var ts = timespec()
        clock_gettime(clock, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

extension EventLog {
    /// The number of commits this process's writer has made (benchmarks derive the effective batch size).
    package var commitCount: Int { writer.commits.load(ordering: .relaxed) }

    /// The CPU time this process's writer thread has used, as of its last group (benchmarks: the serial work per
    /// command, which the machine's noise in throughput hides).
    package var writerCPUSeconds: Double { Double(writer.cpuNanoseconds.load(ordering: .relaxed)) / 1e9 }

    /// The bytes `event` occupies as a stored value when this process writes it.
    package func storedSize(of event: PendingEvent) throws -> Int {
        Envelope.size(of: event, writer: try WriterEncoding(configuration.writer))
    }

    /// The stored size in bytes of the environment's data file.
    package var dataFileBytes: Int { RawLMDBBaseline.fileSize(configuration.directory + "/data.mdb") }
}
