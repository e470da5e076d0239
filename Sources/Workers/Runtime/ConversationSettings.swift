import Foundation
import Projections

/// How each channel's conversations take messages that arrive while a reply is queued or running (issue 25;
/// docs/assistant.md, "Messages that arrive while it answers"):
/// - `QUEUE_MODE` (`collect`, `followup`, `steer`, `interrupt`; default `collect`), `QUEUE_CAP` (1…1000, default 20),
///   `INBOUND_DEBOUNCE_MS` (0…60 000; default 1 500 on WhatsApp and Telegram, where people send a thought in
///   several lines, 0 on the web, whose composer sends whole messages),
/// - each also per channel: `WHATSAPP_QUEUE_MODE`, `TELEGRAM_INBOUND_DEBOUNCE_MS`, `WEB_QUEUE_CAP`, …, which win.
enum ConversationSettings {
    static let defaultDebounceMilliseconds: [Channel: Int] = [.whatsapp: 1_500, .telegram: 1_500, .web: 0]

    /// `TIMEZONE`: an IANA zone name (`Europe/Paris`), default UTC.
    static func timeZone(_ env: EnvironmentReader) throws(SettingsError) -> TimeZone {
        guard let name = env.value("TIMEZONE") else { return TimeZone(identifier: "UTC")! }
        guard let zone = TimeZone(identifier: name) else {
            throw SettingsError(
                variable: "TIMEZONE", message: "expected an IANA time zone like Europe/Paris, got '\(name)'")
        }
        return zone
    }

    static func read(_ env: EnvironmentReader) throws(SettingsError) -> [String: ConversationRules] {
        var rules: [String: ConversationRules] = [:]
        for channel in Channel.allCases {
            let prefix = channel.rawValue.uppercased() + "_"
            func name(_ setting: String) -> String { env.value(prefix + setting) != nil ? prefix + setting : setting }
            let modeName = name("QUEUE_MODE")
            let mode: QueueMode
            if let raw = env.value(modeName) {
                guard let parsed = QueueMode(rawValue: raw.lowercased()) else {
                    throw SettingsError(
                        variable: modeName,
                        message: "expected one of \(QueueMode.allCases.map(\.rawValue).joined(separator: ", ")), "
                            + "got '\(raw)'")
                }
                mode = parsed
            } else {
                mode = .collect
            }
            let cap = try env.integer(name("QUEUE_CAP"), default: 20, range: 1...1_000)
            let debounce = try env.integer(
                name("INBOUND_DEBOUNCE_MS"), default: defaultDebounceMilliseconds[channel] ?? 0, range: 0...60_000)
            rules[channel.rawValue] = ConversationRules(
                queueMode: mode, queueCap: cap, debounce: .milliseconds(debounce))
        }
        return rules
    }
}
