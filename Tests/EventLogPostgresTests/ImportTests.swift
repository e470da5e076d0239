import EventLog
import Foundation
import Testing

/// `importRecords(_:after:)`, the import behind `replay copy`, on both backends: records kept as they were
/// written (seq, time, writer, so the envelope checksum too), only into an empty log, continued batch by batch.
@Suite("Log import", .serialized)
struct ImportTests {
    /// Records as another log wrote them: two writers, times an hour ahead of this machine's clock.
    static func foreignRecords(_ count: Int) -> [Record] {
        let writers = [
            WriterIdentity(role: "core", workerID: "core-1"), WriterIdentity(role: "whatsapp", workerID: "wa-2"),
        ]
        let start = LogTimestamp.wallClock().advanced(by: .seconds(3600))
        return (1...UInt64(count)).map { seq in
            Record(
                stored: seq, timestamp: start.advanced(by: .microseconds(Int64(seq / 3) * 17)), type: "test.imported",
                schemaVersion: UInt16(seq % 3 + 1), writer: writers[Int(seq % 2)],
                correlationID: seq % 4 == 0 ? nil : "flow-\(seq / 4)", causationID: seq > 1 ? seq - 1 : nil,
                payloadEncoding: .json, payload: Array("{\"n\":\(seq)}".utf8))
        }
    }

    @Test(arguments: LogBackendKind.allCases)
    func importKeepsEveryRecordAsWritten(backend: LogBackendKind) async throws {
        try await withBackendLog(backend) { log, _ in
            let source = Self.foreignRecords(25)
            #expect(try await log.importRecords(Array(source[0..<10]), after: 0) == 1..<11)
            #expect(try await log.importRecords(Array(source[10...]), after: 10) == 11..<26)
            let copied = try log.records(from: 1)
            #expect(copied == source)
            #expect(try copied.map { try $0.envelopeChecksum() } == source.map { try $0.envelopeChecksum() })

            // The log clock carries on from the imported times, an hour ahead of the wall clock.
            let seq = try await log.append([PendingEvent(type: "test.after", payload: Array("{}".utf8))])
            let after = try #require(try log.record(at: seq.lowerBound))
            #expect(seq == 26..<27)
            #expect(after.timestamp >= source[24].timestamp)
            #expect(after.writer == log.configuration.writer)
        }
    }

    @Test(arguments: LogBackendKind.allCases)
    func importRefusesWhatDoesNotContinueTheLog(backend: LogBackendKind) async throws {
        try await withBackendLog(backend) { log, _ in
            let source = Self.foreignRecords(8)
            try await log.importRecords(Array(source[0..<4]), after: 0)

            // Into a log that is not empty.
            let notEmpty = await #expect(throws: EventLogError.self) {
                try await log.importRecords(Array(source[0..<4]), after: 0)
            }
            #expect(notEmpty?.code == .notContinuing)
            #expect(notEmpty?.message.contains("not empty") == true, "\(String(describing: notEmpty))")
            #expect(notEmpty?.message.contains("1...4") == true, "\(String(describing: notEmpty))")

            // A gap, then a seq the log already has.
            for batch in [Array(source[5...]), Array(source[3...])] {
                let gap = await #expect(throws: EventLogError.self) { try await log.importRecords(batch, after: 4) }
                #expect(gap?.code == .notContinuing)
                #expect(gap?.message.contains("does not follow seq") == true, "\(String(describing: gap))")
            }

            // Time going back, inside a batch and against the log's last record.
            var backwards = Array(source[4...])
            backwards[1].timestamp = backwards[0].timestamp.advanced(by: .microseconds(-1))
            let inBatch = await #expect(throws: EventLogError.self) { try await log.importRecords(backwards, after: 4) }
            #expect(inBatch?.code == .notContinuing && inBatch?.seq == 6)
            var early = Array(source[4...])
            early[0].timestamp = source[3].timestamp.advanced(by: .microseconds(-1))
            let beforeLast = await #expect(throws: EventLogError.self) { try await log.importRecords(early, after: 4) }
            #expect(beforeLast?.code == .notContinuing && beforeLast?.seq == 5)

            // The log moved under the import (another writer appended).
            try await log.append([PendingEvent(type: "test.other", payload: Array("{}".utf8))])
            let moved = await #expect(throws: EventLogError.self) {
                try await log.importRecords(Array(source[4...]), after: 4)
            }
            #expect(moved?.message.contains("moved during the import") == true, "\(String(describing: moved))")

            // Nothing of a refused batch was written.
            #expect(try log.lastSeq() == 5)
            #expect(try log.records(from: 1, limit: 4) == Array(source[0..<4]))
        }
    }
}
