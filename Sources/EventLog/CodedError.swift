/// Names the module an error comes from, in its description (`ProjectionError(notFound): …`).
public protocol ErrorDomain: Sendable {
    static var name: String { get }
}

/// The one shape of the modules' errors above the log (`ProjectionError`, `WorkerError`, `WebError`): a code to
/// switch on and a message for people. Each module names its domain and declares its codes in a constrained
/// extension of ``Code``.
public struct CodedError<Domain: ErrorDomain>: Error, Sendable, CustomStringConvertible, Equatable {
    /// A stable classification; its name is what logs and reports show.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(Domain.name)(\(code)): \(message)" }

    /// Errors are equal by code: tests and callers compare the kind, never the text.
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
}
