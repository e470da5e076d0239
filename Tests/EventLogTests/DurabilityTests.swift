import EventLog
import Foundation
import Testing

@Suite("Corruption, map growth and bad input", .timeLimit(.minutes(2)))
struct DurabilityTests {
    @Test func aCorruptedRecordIsReportedWithItsSeqNeverDecoded() async throws {
        let dir = TemporaryDirectory()
        var log = try openLog(dir.path)
        try await log.append((0..<20).map { testEvent($0) })
        let marker = "MARKER-7f3a9c-in-record-11"
        try await log.append([PendingEvent(type: "test.marked", payload: Array("{\"m\":\"\(marker)\"}".utf8))])
        try await log.append((21..<30).map { testEvent($0) })
        await log.close()

        // Flip a bit of the marker inside data.mdb, as a failing disk would.
        #expect(try corruptEveryOccurrence(of: marker, in: dir.sub("data.mdb")) >= 1)

        log = try openLog(dir.path)
        let error = try #require(throws: EventLogError.self) { try log.record(at: 21) }
        #expect(error.code == .corruptRecord)
        #expect(error.seq == 21)
        #expect(error.message.contains("checksum"))
        // A scan stops at the corrupt record with the same report; the records around it still read.
        #expect(throws: EventLogError(.corruptRecord, "")) { try log.records(from: 1) }
        #expect(try log.records(from: 1, limit: 20).count == 20)
        #expect(try log.records(from: 22).map(\.seq) == Array(22...30))
        await log.close()
    }

    @Test func aTinyMapGrowsTransparentlyWhileAppending100000Records() async throws {
        let dir = TemporaryDirectory()
        let log = try openLog(dir.path) { $0.initialMapSize = 1 << 20 }
        let start = log.mapSize
        for batch in 0..<100 {
            try await log.append((0..<1000).map { testEvent(batch * 1000 + $0) })
        }
        #expect(log.mapSize > start)
        #expect(try log.lastSeq() == 100_000)
        var expected: UInt64 = 1
        try log.withSnapshot { snapshot in
            try snapshot.forEach { record in
                #expect(record.seq == expected)
                expected += 1
                return true
            }
        }
        #expect(expected == 100_001)
        await log.close()
    }

    @Test func aFullMapIsAClearErrorAndLosesNothingCommitted() async throws {
        let dir = TemporaryDirectory()
        var log = try openLog(dir.path) {
            $0.initialMapSize = 1 << 20
            $0.maxMapSize = 2 << 20
        }
        var committed: UInt64 = 0
        var failure: EventLogError?
        let big = PendingEvent(type: "test.big", payload: [UInt8](repeating: 0x41, count: 16 << 10))
        while failure == nil {
            do {
                committed = try await log.append([big]).upperBound - 1
            } catch let error as EventLogError {
                failure = error
            }
        }
        #expect(failure?.code == .mapFull)
        #expect(committed > 0)
        #expect(try log.lastSeq() == committed)
        await log.close()
        log = try openLog(dir.path)  // default maximum: the map may grow again
        #expect(try log.lastSeq() == committed)
        #expect(try await log.append([big]).lowerBound == committed + 1)
        #expect(try log.records(from: 1).count == Int(committed) + 1)
        await log.close()
    }

    @Test func aFullDiskIsAClearErrorAndLosesNothingAcknowledged() async throws {
        let dir = TemporaryDirectory()
        // The helper caps its own file size (RLIMIT_FSIZE), so data.mdb cannot grow: the same write failure
        // (EFBIG) a full disk gives (ENOSPC), without needing a small filesystem.
        let result = try await runHelper([
            "fill-disk", "--dir", dir.path, "--limit", "\(3 << 20)", "--record-size", "\(64 << 10)",
        ])
        #expect(result.status == 0, "helper said: \(result.lines)")
        let acked = result.lines.compactMap { $0.hasPrefix("acked ") ? UInt64($0.dropFirst(6)) : nil }
        let failure = try #require(result.lines.first { $0.hasPrefix("error ") })
        #expect(failure.hasPrefix("error diskFull"), "got \(failure)")
        #expect(!acked.isEmpty)
        let after = try #require(result.lines.first { $0.hasPrefix("after ") })
        #expect(after == "after \(acked.last! + 1)", "the same process appends again once the file may grow")
        let log = try openLog(dir.path)
        let records = try log.records(from: 1)
        #expect(records.map(\.seq) == Array(1...acked.last! + 1))
        await log.close()
    }

    @Test func aPathThatIsAFileIsNotAnEnvironment() throws {
        let dir = TemporaryDirectory()
        let file = dir.sub("plain-file")
        try Data("hello".utf8).write(to: URL(fileURLWithPath: file))
        let error = try #require(throws: EventLogError.self) { try openLog(file) }
        #expect(error.code == .notAnEnvironment)
    }

    @Test func aDirectoryWithForeignFilesIsNotAnEnvironment() throws {
        let dir = TemporaryDirectory()
        try Data(repeating: 0x5A, count: 64 << 10).write(to: URL(fileURLWithPath: dir.sub("data.mdb")))
        let error = try #require(throws: EventLogError.self) { try openLog(dir.path) }
        #expect(error.code == .notAnEnvironment)
        // The foreign file is left as it was.
        #expect(
            try Data(contentsOf: URL(fileURLWithPath: dir.sub("data.mdb"))) == Data(repeating: 0x5A, count: 64 << 10))
    }

    @Test func aReadOnlyDirectoryIsAPermissionError() async throws {
        // Tests run as root, which ignores file modes, so the helper drops to the `nobody` user first.
        let dir = TemporaryDirectory()
        chmod(dir.path, 0o755)
        let result = try await runHelper(["open", "--dir", dir.sub("log"), "--as-user", "nobody"])
        #expect(result.lines.last?.hasPrefix("error permissionDenied") == true, "got \(result.lines)")
        #expect(result.status == 3)
        // An existing log in a directory `nobody` cannot write: also a clear error, and the log is intact.
        let log = try openLog(dir.sub("existing"))
        try await log.append([testEvent(0)])
        await log.close()
        let again = try await runHelper(["open", "--dir", dir.sub("existing"), "--as-user", "nobody"])
        #expect(again.lines.last?.hasPrefix("error permissionDenied") == true, "got \(again.lines)")
        let reopened = try openLog(dir.sub("existing"))
        #expect(try reopened.lastSeq() == 1)
        await reopened.close()
    }

    @Test func openingTheSameLogTwiceInOneProcessIsRefused() throws {
        let dir = TemporaryDirectory()
        let log = try openLog(dir.path)
        let error = try #require(throws: EventLogError.self) { try openLog(dir.path) }
        #expect(error.code == .alreadyOpen)
        log.close()
        let again = try openLog(dir.path)
        again.close()
    }
}
