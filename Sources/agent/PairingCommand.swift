import ArgumentParser
import EventLog
import Foundation
import Projections
import Workers

/// `agent pairing list` and `agent pairing approve <channel> <code>`: the owner's side of the `pairing` DM policy.
struct PairingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pairing",
        abstract: "Lists senders waiting for approval, and approves one by the code it was sent.",
        subcommands: [List.self, Approve.self])

    /// One sender waiting for approval.
    struct Pending: Encodable {
        var channel: String
        var account: String
        var contact: String
        /// Whether a pairing code was sent to it (`false`: recorded under the allowlist policy, no code).
        var codeSent: Bool
        var messages: Int
        var firstSeen: String?
        var lastMessage: String?
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Senders recorded but not answered (pending), newest last; codes are never shown.")

        @OptionGroup var location: LogLocation
        @Option(help: "Only this channel (telegram, whatsapp).") var channel: String?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let settings = try location.settings()
            let pending = try await location.withEngine(settings) { engine in try Self.pending(engine, channel: channel)
            }
            if json {
                try printJSON(pending)
                return
            }
            guard !pending.isEmpty else {
                print("No sender is waiting for approval.")
                return
            }
            print("channel\taccount\tcontact\tcode sent\tmessages\tfirst seen\tlast message")
            for entry in pending {
                print(
                    "\(entry.channel)\t\(entry.account)\t\(entry.contact)\t\(entry.codeSent ? "yes" : "no")\t"
                        + "\(entry.messages)\t\(entry.firstSeen ?? "-")\t\(entry.lastMessage ?? "")")
            }
            print("Approve one with: agent pairing approve <channel> <code> (the code the sender received)")
        }

        static func pending(_ engine: Switchboard, channel: String?) throws -> [Pending] {
            var pending: [Pending] = []
            for contact in try engine.reader.contacts()
            where contact.access == .pending && (channel == nil || contact.channel == channel) {
                let id = conversationID(
                    channel: contact.channel, accountID: contact.accountID, contactID: contact.contactID)
                let conversation = try engine.conversation(id)
                let first = try conversation.flatMap { try engine.log.records(from: $0.firstSeq, limit: 1).first }
                let last = try engine.history(id, limit: 1).last
                pending.append(
                    Pending(
                        channel: contact.channel, account: contact.accountID, contact: contact.contactID,
                        codeSent: contact.pairingCodeHash != nil, messages: conversation?.messageCount ?? 0,
                        firstSeen: first.map { "\($0.timestamp)" },
                        lastMessage: last.map { String($0.text.prefix(80)) }))
            }
            return pending.sorted { ($0.firstSeen ?? "", $0.contact) < ($1.firstSeen ?? "", $1.contact) }
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Allows the sender that received <code>: its next message is answered.")

        @OptionGroup var location: LogLocation
        @Argument(help: "The channel: telegram or whatsapp.") var channel: String
        @Argument(help: "The pairing code the sender received (case and dashes do not matter).") var code: String
        @Flag(help: "Do not tell the sender it was approved.") var quiet = false

        func run() async throws {
            let settings = try location.settings()
            let name = ProcessInfo.processInfo.environment["USER"] ?? "operator"
            let result = try await location.withEngine(settings) { engine in
                try await engine.approvePairing(
                    channel: channel, code: code, by: name, confirmation: quiet ? nil : ChannelAccess.approvedReply)
            }
            switch result {
            case .approved(let contact):
                print("Approved \(contact.channel) contact \(contact.contactID) (account \(contact.accountID)).")
            case .notFound:
                complain("No \(channel) sender is waiting with that code (see: agent pairing list).")
                throw ExitCode(1)
            }
        }
    }
}
