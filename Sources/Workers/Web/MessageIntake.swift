import EventLog
import Foundation
import HTTPTypes
import Projections
import SwitchboardEvents

/// The owner's messages into web conversations, from the JSON API and the no-script form alike: the checks of
/// the conversation id, `clientID` and text, then one `ingest` — a `clientID` seen before is a duplicate that
/// answers the first message's seq and job.
struct MessageIntake: Sendable {
    /// The longest message text accepted (characters).
    static let maxTextLength = 16_000

    let engine: Switchboard

    /// What a message post answers.
    struct Answer: Encodable {
        var seq: UInt64
        var conversationID: String
        var jobID: String?
        var duplicate: Bool
        /// The contact's status when it is not `allowed` (then no reply job starts).
        var contactStatus: String?
    }

    /// Why a message was not taken; nothing was written.
    struct Refusal: Error, Sendable, CustomStringConvertible {
        struct Code: Hashable, Sendable, CustomStringConvertible {
            private let name: String
            private init(_ name: String) { self.name = name }
            /// A field is invalid (400); the message names it.
            static let invalid = Code("invalid")
            /// The conversation is another channel's (409).
            static let readOnly = Code("read_only")
            var description: String { name }
        }

        var code: Code
        /// Shown to the owner as is.
        var message: String

        init(_ code: Code, _ message: String) {
            self.code = code
            self.message = message
        }

        var description: String { "MessageIntake.Refusal(\(code)): \(message)" }
    }

    static func validClientID(_ id: String) -> Bool {
        (1...128).contains(id.utf8.count)
            && id.unicodeScalars.allSatisfy {
                ($0.isASCII && (CharacterSet.alphanumerics.contains($0))) || "-_.:".unicodeScalars.contains($0)
            }
    }

    /// Ingests one owner message into a web conversation: 202 and the new seq and job, or 200 with the first seq
    /// and job when `clientID` was seen before.
    /// - Throws: ``Refusal`` when the message is not taken.
    func ingest(
        conversationID: String, clientID: String, text: String, parentSeq: UInt64? = nil, afterJobID: String? = nil
    ) async throws -> (HTTPResponse.Status, Answer) {
        guard ChatViews.validConversationID(conversationID) else {
            throw Refusal(.invalid, "the conversation id is not valid")
        }
        guard Self.validClientID(clientID) else {
            throw Refusal(.invalid, "clientID must be 1…128 characters of A-Z, a-z, 0-9, '-', '_', '.', ':'")
        }
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw Refusal(.invalid, "text is empty")
        }
        guard text.count <= Self.maxTextLength else {
            throw Refusal(.invalid, "text is longer than \(Self.maxTextLength) characters")
        }
        if let reason = ChatViews.readOnlyReason(try engine.conversation(conversationID)) {
            throw Refusal(.readOnly, reason)
        }
        var message = InboundMessage(
            channel: Channel.web.rawValue, accountID: "default", externalID: clientID, contactID: "owner", text: text)
        message.conversationID = conversationID
        message.answersApprovalsInText = Channel.web.answersApprovalsInText
        message.parentSeq = parentSeq
        message.afterJobID = afterJobID
        let result: IngestResult
        do {
            result = try await engine.ingest(message)
        } catch let error as ProjectionError where error.code == .deleted {
            throw Refusal(.readOnly, "This conversation was deleted.")
        } catch let error as ProjectionError where error.code == .invalidArgument {
            throw Refusal(.invalid, error.message)
        }
        switch result {
        case .accepted(let seq, let conversation, let jobID, let status):
            return (
                .accepted,
                Answer(
                    seq: seq, conversationID: conversation, jobID: jobID, duplicate: false,
                    contactStatus: status == .allowed ? nil : status.rawValue)
            )
        case .duplicate(let firstSeq):
            // The first record and its reply job (enqueued in the same transaction, right after it).
            var conversation = conversationID
            var jobID: String?
            for record in try engine.log.records(from: firstSeq, limit: 2) {
                switch try record.event() {
                case .messageReceived(let m)?: conversation = m.conversationID
                case .jobEnqueued(let j)? where j.triggeringMessageSeq == firstSeq: jobID = j.jobID
                default: break
                }
            }
            return (.ok, Answer(seq: firstSeq, conversationID: conversation, jobID: jobID, duplicate: true))
        }
    }
}
