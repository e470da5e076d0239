import EventLog
import SwitchboardEvents
import Foundation
import SwitchboardJSON

/// One raw record (`export`, `tail`): the envelope fields and the payload, inlined when it is JSON.
public struct RecordReport: Sendable, Equatable, Codable, CustomStringConvertible {
    public var seq: UInt64
    public var time: String
    public var type: String
    public var schemaVersion: UInt16
    /// `role/worker#instance-prefix`.
    public var writer: String
    public var role: String
    public var workerID: String
    public var instance: String
    public var correlationID: String?
    public var causationID: UInt64?
    /// The payload when it is JSON.
    public var payload: JSONValue?
    /// The payload bytes as base64 when they are not JSON.
    public var payloadBase64: String?
    /// The payload as text, for the text form only.
    private var payloadText: String

    enum CodingKeys: String, CodingKey {
        case seq, time, type, schemaVersion, writer, role, workerID, instance, correlationID, causationID, payload,
            payloadBase64
    }

    /// The record, its payload replaced by a placeholder when `redactions` hide it (a deleted conversation's).
    public init(_ record: Record, redactions: Redactions = Redactions()) {
        seq = record.seq
        time = record.timestamp.description
        type = record.type
        schemaVersion = record.schemaVersion
        writer = record.writer.description
        role = record.writer.role
        workerID = record.writer.workerID
        instance = record.writer.instanceID.uuidString.lowercased()
        correlationID = record.correlationID
        causationID = record.causationID
        if let deletion = redactions.hiding(record) {
            let placeholder = Redactions.placeholder(deletion, conversationID: record.correlationID ?? "")
            payload = placeholder
            payloadBase64 = nil
            payloadText = placeholder.jsonText
            return
        }
        payload = JSONValue(json: record.payload)
        payloadBase64 = payload == nil ? Data(record.payload).base64EncodedString() : nil
        payloadText = record.payloadText
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        seq = try container.decode(UInt64.self, forKey: .seq)
        time = try container.decode(String.self, forKey: .time)
        type = try container.decode(String.self, forKey: .type)
        schemaVersion = try container.decode(UInt16.self, forKey: .schemaVersion)
        writer = try container.decode(String.self, forKey: .writer)
        role = try container.decode(String.self, forKey: .role)
        workerID = try container.decode(String.self, forKey: .workerID)
        instance = try container.decode(String.self, forKey: .instance)
        correlationID = try container.decodeIfPresent(String.self, forKey: .correlationID)
        causationID = try container.decodeIfPresent(UInt64.self, forKey: .causationID)
        payload = try container.decodeIfPresent(JSONValue.self, forKey: .payload)
        payloadBase64 = try container.decodeIfPresent(String.self, forKey: .payloadBase64)
        payloadText = ""
    }

    /// `seq time type writer [corr=…] [cause=…] payload`, tab-separated.
    public var description: String {
        var line = "\(seq)\t\(time)\t\(type)\t\(writer)"
        if let correlationID { line += "\tcorr=\(correlationID)" }
        if let causationID { line += "\tcause=\(causationID)" }
        return line + "\t" + payloadText
    }
}
