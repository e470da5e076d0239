import EventLog
import Testing

@testable import Projections

/// Per-recipient pacing as a token bucket (issue 25): a quiet recipient gets a short burst at once, then the
/// sustained rate holds; a bucket of one is the fixed interval of before.
@Suite("Pacing")
struct PacingTests {
    static let t0 = LogTimestamp(microseconds: 1_800_000_000_000_000)
    static func at(_ seconds: Double) -> Int64 { t0.microseconds + Int64(seconds * 1e6) }

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var burst: Int
        var interval: Duration
        /// Earlier sends, seconds after t0.
        var sends: [Double]
        /// Now, seconds after t0.
        var now: Double
        /// Blocked until (seconds after t0), or nil.
        var until: Double?
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "never sent", burst: 3, interval: .seconds(6), sends: [], now: 0, until: nil),
        Case(
            name: "a three-part reply to a quiet recipient: the third goes at once", burst: 3, interval: .seconds(6),
            sends: [0, 0], now: 0, until: nil),
        Case(
            name: "the fourth part waits one interval", burst: 3, interval: .seconds(6), sends: [0, 0, 0], now: 0,
            until: 6),
        Case(name: "half refilled", burst: 3, interval: .seconds(6), sends: [0, 0, 0], now: 3, until: 6),
        Case(
            name: "after a quiet spell the bucket is full again", burst: 3, interval: .seconds(6),
            sends: [0, 0, 0], now: 60, until: nil),
        Case(
            name: "a bucket of one is a fixed interval", burst: 1, interval: .seconds(6), sends: [10], now: 12,
            until: 16),
        Case(
            name: "a bucket of one, after the interval", burst: 1, interval: .seconds(6), sends: [10], now: 16,
            until: nil),
        Case(
            name: "sustained sending earns no burst", burst: 3, interval: .seconds(1),
            sends: [0, 0, 0, 1, 2, 3, 4], now: 4, until: 5),
        Case(name: "no interval, no limit", burst: 1, interval: .zero, sends: [0, 0, 0], now: 0, until: nil),
    ]

    @Test(arguments: cases)
    func theBucketDecides(_ c: Case) {
        let until = DeliveryDecider.bucketBlockedUntil(
            c.sends.map(Self.at), burst: c.burst, interval: c.interval,
            now: LogTimestamp(microseconds: Self.at(c.now)))
        #expect(until.map { Double($0.microseconds - Self.t0.microseconds) / 1e6 } == c.until)
    }
}
