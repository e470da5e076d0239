import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

extension Duration {
    /// The duration as NIO's `TimeAmount`.
    var timeAmount: TimeAmount {
        let (seconds, attoseconds) = components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

/// Maps a transport failure of AsyncHTTPClient/NIO to a provider error code: timeouts are `timeout`, everything
/// else on the way (refused, reset, closed, DNS) is `network`.
func transportErrorCode(_ error: any Error) -> ChatProviderError.Code {
    if let error = error as? HTTPClientError {
        switch error {
        case .readTimeout, .writeTimeout, .connectTimeout, .deadlineExceeded, .tlsHandshakeTimeout,
            .getConnectionFromPoolTimeout:
            return .timeout
        default:
            return .network
        }
    }
    return .network
}

/// Reads a `Retry-After` header: whole seconds, or an HTTP date (then the time until it).
func parseRetryAfter(_ headers: HTTPHeaders, now: Date = Date()) -> Duration? {
    guard let raw = headers.first(name: "retry-after")?.trimmingCharacters(in: .whitespaces) else { return nil }
    if let seconds = Double(raw), seconds >= 0 { return .milliseconds(Int64(seconds * 1000)) }
    let formatter = DateFormatter()
    formatter.locale = Locale(identifier: "en_US_POSIX")
    formatter.timeZone = TimeZone(identifier: "GMT")
    formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
    guard let date = formatter.date(from: raw) else { return nil }
    return .milliseconds(Int64(max(0, date.timeIntervalSince(now)) * 1000))
}
