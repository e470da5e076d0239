import EventLog
import XCTest

/// Kept in XCTest so `swift test` always reports XCTest results beside Swift Testing's.
final class EnvelopeXCTests: XCTestCase {
    func testLogTimestampFormatsAsISO8601WithMicroseconds() {
        XCTAssertEqual(LogTimestamp(microseconds: 0).description, "1970-01-01T00:00:00.000000Z")
        XCTAssertEqual(LogTimestamp(microseconds: 1_795_927_655_123_456).description, "2026-11-29T04:47:35.123456Z")
        XCTAssertEqual(LogTimestamp(microseconds: -1).description, "1969-12-31T23:59:59.999999Z")
    }

    func testLogTimestampArithmetic() {
        let t = LogTimestamp(microseconds: 1_000_000)
        XCTAssertEqual(t.advanced(by: .seconds(45)).microseconds, 46_000_000)
        XCTAssertEqual(t.advanced(by: .milliseconds(-500)).microseconds, 500_000)
        XCTAssertEqual(t.advanced(by: .seconds(2)).duration(since: t), .seconds(2))
    }
}
