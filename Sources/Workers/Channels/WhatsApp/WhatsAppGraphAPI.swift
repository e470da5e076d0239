import AsyncHTTPClient
import Foundation
import NIOCore

/// The Graph API read the WhatsApp channel uses to check its credentials: `GET <base>/<phone-number-id>` with the
/// bearer token, which answers the number's `display_phone_number` and `verified_name`.
public struct WhatsAppGraphAPI: Sendable {
    let baseURL: String
    let accessToken: String
    let client: HTTPClient
    let timeout: Duration

    public init(baseURL: String, accessToken: String, timeout: Duration, client: HTTPClient = .shared) {
        self.baseURL = baseURL
        self.accessToken = accessToken
        self.client = client
        self.timeout = timeout
    }

    public struct PhoneNumber: Decodable, Sendable, Equatable {
        public var id: String?
        public var display_phone_number: String?
        public var verified_name: String?
    }

    struct ErrorReply: Decodable {
        struct Failure: Decodable {
            var message: String?
            var code: Int?
        }
        var error: Failure?
    }

    /// Checks the token against the phone number id.
    public func probe(phoneNumberID: String) async -> ChannelProbe {
        var request = HTTPClientRequest(
            url: "\(baseURL)/\(phoneNumberID)?fields=display_phone_number,verified_name")
        request.headers.add(name: "Authorization", value: "Bearer \(accessToken)")
        request.headers.add(name: "Accept", value: "application/json")
        do {
            let response = try await client.execute(
                request,
                timeout: .nanoseconds(
                    timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000))
            let body = Data(buffer: try await response.body.collect(upTo: 1 << 20))
            let status = Int(response.status.code)
            if (200..<300).contains(status) {
                let number = try? JSONDecoder().decode(PhoneNumber.self, from: body)
                return .ok(detail: "cloud_api \(number?.display_phone_number ?? phoneNumberID)")
            }
            let failure = (try? JSONDecoder().decode(ErrorReply.self, from: body))?.error
            let message = redact(failure?.message ?? "HTTP \(status)")
            let code = failure?.code ?? status
            if status == 401 || WhatsAppCloudSender.credentialCodes.contains(code) {
                return .refused(code: code, message: message)
            }
            return .unreachable(code: code, message: message)
        } catch {
            return .unreachable(code: nil, message: redact(ProviderCall.describe(error)))
        }
    }

    func redact(_ text: String) -> String {
        accessToken.isEmpty ? text : text.replacingOccurrences(of: accessToken, with: "<token>")
    }
}
