import EventLog
/// A typed event of the log vocabulary: `Codable` for its payload, named by a stable type string.
///
/// A type's ``eventType`` never changes; a change to its fields that old readers cannot decode bumps
/// ``schemaVersion``. Readers of an unknown type get the raw ``Record`` (see ``Record/event()``).
public protocol EventPayload: Codable, Sendable, Equatable {
    /// The stable type name stored in the envelope, e.g. `job.enqueued`.
    static var eventType: String { get }
    /// The schema version of this payload shape.
    static var schemaVersion: UInt16 { get }
}

extension EventPayload {
    public static var schemaVersion: UInt16 { 1 }
}
