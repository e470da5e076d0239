import ArgumentParser
import Foundation
import Projections
import Workers

/// `agent whatsapp login`: stores a WhatsApp Cloud account's credentials in the session store (namespace
/// `whatsapp/<account>`, sealed when `SESSION_ENCRYPTION_KEY` is set), so workers start without the token in their
/// environment and restarts never ask for it again.
struct WhatsAppCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "whatsapp",
        abstract: "Links your own WhatsApp number, or stores the WhatsApp Cloud API credentials of an account.",
        subcommands: [WhatsAppLink.self, WhatsAppUnlink.self, Login.self])

    struct Login: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Checks a token against the phone number id and stores both.",
            discussion: """
                The token is read from WHATSAPP_CLOUD_ACCESS_TOKEN, or with --token-stdin from the first line of \
                standard input (never a flag: flags show in ps). The write is fenced like any session write: the \
                command takes the account's lease for a moment, so stop the account's worker first.
                """)

        @OptionGroup var location: LogLocation
        @Option(help: "WHATSAPP_ACCOUNT_ID: the account (default default).") var account: String?
        @Option(help: "The Cloud API phone number id.") var phoneNumberId: String
        @Option(help: "The WhatsApp Business Account id (recorded for operators).") var businessAccountId: String?
        @Option(help: "WHATSAPP_GRAPH_BASE_URL: Graph API base with version.") var whatsappGraphBaseUrl: String?
        @Flag(help: "Store without checking the token with the Graph API.") var noVerify = false
        @Flag(help: "Read the token from the first line of standard input.") var tokenStdin = false

        func run() async throws {
            var settings = try location.settings()
            if let account { settings.whatsappAccountID = account }
            if let base = whatsappGraphBaseUrl {
                settings.whatsappGraphBaseURL = base
            }
            let token = readToken()
            guard let token, !token.isEmpty else {
                complain("agent whatsapp login: no token (pipe it on stdin, or set WHATSAPP_CLOUD_ACCESS_TOKEN)")
                throw ExitCode(64)
            }
            if !noVerify {
                let graph = WhatsAppGraphAPI(
                    baseURL: settings.whatsappGraphBaseURL, accessToken: token, timeout: .seconds(30))
                switch await graph.probe(phoneNumberID: phoneNumberId) {
                case .ok(let detail): print("Token accepted for \(detail).")
                case .refused(let code, let message):
                    complain("agent whatsapp login: the token was refused (\(code.map { "\($0)" } ?? "?")): \(message)")
                    throw ExitCode(1)
                case .unreachable(_, let message):
                    complain(
                        "agent whatsapp login: cannot check the token: \(message) (use --no-verify to store it anyway)")
                    throw ExitCode(1)
                }
            }
            let resource = "whatsapp/\(settings.whatsappAccountID)"
            try await location.withEngine(settings, create: true) { engine in
                let decision = try await engine.acquireLease(resource)
                guard let grant = decision.grant else {
                    var holder = "another worker"
                    if case .denied(_, let current) = decision, let current { holder = "'\(current.owner.workerID)'" }
                    complain(
                        "agent whatsapp login: the lease \(resource) is held by \(holder): stop that worker first "
                            + "(session writes are fenced by the lease)")
                    throw ExitCode(1)
                }
                let store = try SessionStore(
                    backend: settings.sessionBackend, engine: engine, directory: settings.sessionDirectory)
                var changes: SessionChanges = [
                    WhatsAppSessionKey.accessToken: Data(token.utf8),
                    WhatsAppSessionKey.phoneNumberID: Data(phoneNumberId.utf8),
                ]
                if let businessAccountId {
                    changes[WhatsAppSessionKey.businessAccountID] = Data(businessAccountId.utf8)
                }
                let written = try await store.write(changes, namespace: resource, leaseToken: grant.token)
                _ = try await engine.releaseLease(resource, token: grant.token)
                guard written == .accepted else {
                    complain("agent whatsapp login: the session write was refused (\(written))")
                    throw ExitCode(1)
                }
            }
            let sealed =
                settings.sessionKeyBase64 == nil ? "not encrypted: set SESSION_ENCRYPTION_KEY to seal it" : "sealed"
            print(
                "Stored the credentials of \(resource) in the \(settings.sessionBackend.rawValue) session store (\(sealed))."
            )
            print("Start the worker without WHATSAPP_CLOUD_ACCESS_TOKEN: it reads them at start.")
        }

        /// The first line of stdin with `--token-stdin`, else the environment's token.
        func readToken() -> String? {
            if tokenStdin { return readLine(strippingNewline: true)?.trimmingCharacters(in: .whitespaces) }
            return ProcessInfo.processInfo.environment["WHATSAPP_CLOUD_ACCESS_TOKEN"]
        }
    }
}
