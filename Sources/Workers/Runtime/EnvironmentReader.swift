import Foundation

/// Reads settings from an environment: values trimmed (an empty one is unset), and typed readers whose errors name
/// the variable and what is accepted — never the value of a secret (they are not used for secrets' checks).
struct EnvironmentReader {
    let environment: [String: String]

    init(_ environment: [String: String]) { self.environment = environment }

    /// The trimmed value of `name`, `nil` when unset or blank.
    func value(_ name: String) -> String? {
        guard let raw = environment[name]?.trimmingCharacters(in: .whitespaces), !raw.isEmpty else { return nil }
        return raw
    }

    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    func flag(_ name: String, default fallback: Bool) throws(SettingsError) -> Bool {
        guard let raw = value(name) else { return fallback }
        switch raw.lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw SettingsError(variable: name, message: "expected true or false, got '\(raw)'")
        }
    }

    /// A whole number in `range`.
    func integer(_ name: String, default fallback: Int, range: ClosedRange<Int>) throws(SettingsError) -> Int {
        guard let raw = value(name) else { return fallback }
        guard let number = Int(raw), range.contains(number) else {
            throw SettingsError(
                variable: name,
                message: "expected a whole number in \(range.lowerBound)...\(range.upperBound), got '\(raw)'")
        }
        return number
    }

    /// The http(s) URL in `name` (or `fallback`), without a trailing slash.
    func url(_ name: String, default fallback: String) throws(SettingsError) -> String {
        try url(name, value(name) ?? fallback)
    }

    /// `raw` checked as an http(s) URL for `name`, without a trailing slash.
    func url(_ name: String, _ raw: String) throws(SettingsError) -> String {
        guard let parsed = URL(string: raw), ["http", "https"].contains(parsed.scheme?.lowercased() ?? ""),
            parsed.host != nil
        else {
            throw SettingsError(variable: name, message: "expected an http(s) URL, got '\(raw)'")
        }
        return raw.hasSuffix("/") ? String(raw.dropLast()) : raw
    }
}
