import Foundation

/// An error raised by the event log: a stable ``Code``, a human-readable message and an optional cause.
///
/// Equality compares the code only, so callers can write `error.code == .mapFull`.
public struct EventLogError: Error, Sendable, CustomStringConvertible, Equatable {
    /// A stable classification of an ``EventLogError``. New codes may be added; switch with a default.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case notAnEnvironment, permissionDenied, mapFull, diskFull, corruptRecord, readersFull,
                panic, versionMismatch, invalidArgument, closed, alreadyOpen, io, notFound, lmdb,
                encoding, decoding, unknownEventType, notContinuing
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The directory is not an LMDB environment, or its files are not LMDB files.
        public static let notAnEnvironment = Code(.notAnEnvironment)
        /// The process may not create or write the environment's files.
        public static let permissionDenied = Code(.permissionDenied)
        /// The map reached ``EventLogConfiguration/maxMapSize``; nothing of the failed batch was committed.
        public static let mapFull = Code(.mapFull)
        /// The filesystem refused a write (no space, quota, or file-size limit); nothing of the batch was committed.
        public static let diskFull = Code(.diskFull)
        /// A stored record failed its checksum or structure check.
        public static let corruptRecord = Code(.corruptRecord)
        /// All reader slots of the environment are in use.
        public static let readersFull = Code(.readersFull)
        /// LMDB reported a fatal error; the environment must be reopened.
        public static let panic = Code(.panic)
        /// The environment was written by an incompatible LMDB or envelope version.
        public static let versionMismatch = Code(.versionMismatch)
        /// A caller passed a value the log cannot store (too long a string, an empty batch...).
        public static let invalidArgument = Code(.invalidArgument)
        /// The log was closed.
        public static let closed = Code(.closed)
        /// The environment is already open in this process (LMDB forbids opening it twice).
        public static let alreadyOpen = Code(.alreadyOpen)
        /// An operating-system I/O error.
        public static let io = Code(.io)
        /// A requested record does not exist.
        public static let notFound = Code(.notFound)
        /// Another LMDB return code; the message names it.
        public static let lmdb = Code(.lmdb)
        /// An event payload could not be encoded.
        public static let encoding = Code(.encoding)
        /// An event payload could not be decoded into the requested type.
        public static let decoding = Code(.decoding)
        /// The record's event type is not one this build knows.
        public static let unknownEventType = Code(.unknownEventType)
        /// Imported records do not continue the log: it is not empty (or not where the import left it), or a
        /// record's seq is not the next one, or its time is before the last record's.
        public static let notContinuing = Code(.notContinuing)

        public var description: String { base.rawValue }
    }

    /// The classification of this error.
    public var code: Code
    /// What went wrong, for humans.
    public var message: String
    /// The sequence number of the record concerned, when there is one.
    public var seq: UInt64?
    /// The underlying error, if any.
    public var cause: (any Error & Sendable)?

    /// Creates an error.
    public init(_ code: Code, _ message: String, seq: UInt64? = nil, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.seq = seq
        self.cause = cause
    }

    public var description: String {
        var text = "EventLogError(\(code)): \(message)"
        if let seq { text += " [seq \(seq)]" }
        if let cause { text += " (cause: \(cause))" }
        return text
    }

    public static func == (lhs: EventLogError, rhs: EventLogError) -> Bool { lhs.code == rhs.code }
}
