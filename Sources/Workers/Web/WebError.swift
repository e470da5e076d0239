/// An error of the web chat's setup or requests.
public struct WebError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// A file or setting the web chat needs is missing or unusable.
        public static let setup = Code("setup")
        /// A request was malformed.
        public static let badRequest = Code("bad_request")
        /// The Todoist OAuth exchange failed.
        public static let oauth = Code("oauth")
        public var description: String { name }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "WebError(\(code)): \(message)" }
}
