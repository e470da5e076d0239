import Foundation
import NIOHTTP1
import Testing

@testable import Assistant

@Suite struct RetryAfterTests {
    static let now = Date(timeIntervalSince1970: 1_700_000_000)  // Tue, 14 Nov 2023 22:13:20 GMT

    @Test(
        arguments: [
            ("2", Duration.seconds(2)),
            ("0", .zero),
            ("1.5", .milliseconds(1500)),
            ("Tue, 14 Nov 2023 22:13:50 GMT", .seconds(30)),
            ("Tue, 14 Nov 2023 22:00:00 GMT", .zero),
        ] as [(String, Duration)])
    func readsSecondsAndHTTPDates(header: String, expected: Duration) {
        #expect(parseRetryAfter(HTTPHeaders([("Retry-After", header)]), now: Self.now) == expected)
    }

    @Test(arguments: ["soon", "-3", ""])
    func ignoresWhatItCannotRead(header: String) {
        #expect(parseRetryAfter(HTTPHeaders([("Retry-After", header)]), now: Self.now) == nil)
        #expect(parseRetryAfter(HTTPHeaders(), now: Self.now) == nil)
    }
}
