import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The responses every web controller and middleware builds: JSON, HTML and redirects, never cached.
enum WebResponse {
    /// `value` as JSON (keys sorted), `Cache-Control: no-store`.
    static func json(_ status: HTTPResponse.Status, _ value: some Encodable) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(
            status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// An HTML page, `Cache-Control: no-store`, plus `headers`.
    static func html(_ status: HTTPResponse.Status, _ html: String, headers: HTTPFields = [:]) -> Response {
        var fields: HTTPFields = [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"]
        fields.append(contentsOf: headers)
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    /// 303 See Other to `location`, plus `headers`.
    static func redirect(_ location: String, headers: HTTPFields = [:]) -> Response {
        var fields: HTTPFields = [.location: location, .cacheControl: "no-store"]
        fields.append(contentsOf: headers)
        return Response(status: .seeOther, headers: fields)
    }

    /// A decoding error's gist, without the payload (for a 400's message).
    static func reason(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): return "missing \(key.stringValue)"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return "wrong type at \(context.codingPath.map(\.stringValue).joined(separator: "."))"
        case DecodingError.dataCorrupted: return "not JSON"
        default: return "unreadable"
        }
    }
}

/// `application/x-www-form-urlencoded` bodies (the pages' forms).
enum WebForm {
    /// Whether `request` says its body is a form.
    static func isForm(_ request: Request) -> Bool {
        request.headers[.contentType]?.lowercased().hasPrefix("application/x-www-form-urlencoded") ?? false
    }

    /// The fields of `body` when `request` says it is a form (the first of a repeated name wins), else none.
    static func fields(of request: Request, body: ByteBuffer) -> [String: String] {
        isForm(request) ? parse(body) : [:]
    }

    /// The fields of a form body; the first of a repeated name wins.
    static func parse(_ body: ByteBuffer) -> [String: String] {
        var out: [String: String] = [:]
        for pair in String(buffer: body).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ text: Substring) -> String {
                text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
            }
            let key = decode(parts[0])
            if out[key] == nil { out[key] = parts.count > 1 ? decode(parts[1]) : "" }
        }
        return out
    }
}
