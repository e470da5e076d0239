import EventLogPostgres
import Foundation
import Logging
import PostgresNIO
import TestSupport
import Testing

/// A logger that drops everything (postgres-nio logs each query at debug).
let quietLogger = Logger(label: "test.postgres") { _ in SwiftLogNoOpLogHandler() }

/// Connects to the test cluster, blocking the calling thread.
func connect(_ url: String, options: BlockingPostgres.Options = BlockingPostgres.Options()) throws -> BlockingPostgres {
    try BlockingPostgres(url: PostgresURL(url), options: options, logger: quietLogger)
}

/// Runs `body` on a test cluster connection with a fresh schema, then closes the connection.
func withDatabase<R>(_ body: (_ db: BlockingPostgres, _ url: String, _ schema: String) throws -> R) throws -> R {
    try PostgresCluster.withPostgres { url, schema in
        let db = try connect(url)
        defer { db.close() }
        return try body(db, url, schema)
    }
}

/// Bytes as a ByteBuffer: binds as `bytea` (a `[UInt8]` would bind as `char[]`).
func bytea(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }

/// The first column of each row, as bytes.
func byteColumn(_ rows: [PostgresRow]) throws -> [[UInt8]] {
    try rows.map { Array(try $0.decode(ByteBuffer.self).readableBytesView) }
}

/// SplitMix64: a seeded generator, so a failure can be replayed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// LMDB's default key order: memcmp, the shorter key first on a common prefix.
func lmdbOrder(_ a: [UInt8], _ b: [UInt8]) -> Bool { a.lexicographicallyPrecedes(b) }

/// The suites whose tests block their thread on PostgreSQL calls. Swift Testing runs a synchronous test on the
/// concurrency pool, which has a thread per core (two in CI): two such tests at once would hold every pool thread
/// and stall the other suites' async work for seconds (heartbeats, watchdogs and deadlines then fail). Nested here,
/// they run one at a time.
@Suite(.serialized) struct BlockingSuites {}
