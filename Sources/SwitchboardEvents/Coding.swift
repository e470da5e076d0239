import EventLog
import Foundation

/// Payloads are written by ``PayloadJSON`` and read by ``PayloadJSONDecoding``, falling back to Foundation's
/// decoder (any JSON reader can read them).
enum PayloadCoding {
    static let decoder = JSONDecoder()
}

extension Record {
    /// Decodes the payload as `E`.
    /// - Throws: ``EventLogError/Code/decoding`` when the type differs or the bytes do not decode.
    public func decode<E: EventPayload>(_: E.Type = E.self) throws(EventLogError) -> E {
        guard type == E.eventType else {
            throw EventLogError(.decoding, "record type \(type) is not \(E.eventType)", seq: seq)
        }
        guard schemaVersion <= E.schemaVersion else {
            throw EventLogError(
                .decoding, "\(type) schema \(schemaVersion) is newer than this build's \(E.schemaVersion)", seq: seq)
        }
        if let fast = try? PayloadJSONDecoding.decode(E.self, from: payload) { return fast }
        do {
            return try PayloadCoding.decoder.decode(E.self, from: Data(payload))
        } catch {
            throw EventLogError(.decoding, "payload of \(type) does not decode: \(error)", seq: seq)
        }
    }

    /// The payload decoded into the vocabulary, or `nil` for a type — or a newer schema version of a type —
    /// that this build does not know (a newer writer). The raw record stays readable either way.
    public func event() throws(EventLogError) -> SwitchboardEvent? { try SwitchboardEvent(self) }
}

extension PendingEvent {
    /// Encodes a typed event.
    public init<E: EventPayload>(_ event: E, correlationID: String? = nil, causationID: UInt64? = nil)
        throws(EventLogError)
    {
        let bytes: [UInt8]
        do {
            bytes = try PayloadJSON.encode(event)
        } catch {
            throw EventLogError(.encoding, "cannot encode \(E.eventType): \(error)")
        }
        self.init(
            type: E.eventType, schemaVersion: E.schemaVersion, payload: bytes, correlationID: correlationID,
            causationID: causationID)
    }
}

extension EventLog {
    /// Appends one typed event and returns its seq once committed. (On a log with a projector, the projector
    /// decodes it from its stored form; deciders append typed events inside ``transact(_:)`` instead.)
    @discardableResult
    public func append<E: EventPayload>(_ event: E, correlationID: String? = nil, causationID: UInt64? = nil)
        async throws -> UInt64
    {
        try await append([PendingEvent(event, correlationID: correlationID, causationID: causationID)]).lowerBound
    }
}
