import EventLog
import Foundation

/// When a `/remind` is due, read from the words after it: `in 20m`, `in 2h`, `in 1h30m`, `in 90 minutes`, `in 10s`,
/// `at 17:00` (today, or tomorrow when that time has passed), `tomorrow 9:00`, `tomorrow at 9:00` — clock times in
/// the owner's time zone (`TIMEZONE`). A pure function of the text, the log time and the zone.
public struct ReminderTime: Sendable, Equatable {
    /// When it is due.
    public var due: LogTimestamp
    /// What to remind of (the rest of the text).
    public var text: String

    public static func parse(_ words: String, now: LogTimestamp, timeZone: TimeZone) -> ReminderTime? {
        var tokens = words.split(whereSeparator: \.isWhitespace).map(String.init)
        guard tokens.count >= 2 else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let nowDate = now.date
        var due: Date?
        switch tokens[0].lowercased() {
        case "in":
            // "in 20m", "in 1h30m", "in 90 minutes", "in 2 hours"
            var seconds = 0
            var used = 1
            var index = 1
            while index < tokens.count,
                let amount = duration(tokens[index], unit: index + 1 < tokens.count ? tokens[index + 1] : nil)
            {
                seconds += amount.seconds
                index += amount.tokens
                used = index
            }
            guard seconds > 0 else { return nil }
            tokens.removeFirst(used)
            due = nowDate.addingTimeInterval(TimeInterval(seconds))
        case "at":
            guard let (hour, minute) = clock(tokens[1]) else { return nil }
            tokens.removeFirst(2)
            guard let today = calendar.date(bySettingHour: hour, minute: minute, second: 0, of: nowDate) else {
                return nil
            }
            due = today > nowDate ? today : calendar.date(byAdding: .day, value: 1, to: today)
        case "tomorrow":
            var at = 1
            if tokens.count > 2, tokens[1].lowercased() == "at" { at = 2 }
            guard at < tokens.count, let (hour, minute) = clock(tokens[at]) else { return nil }
            tokens.removeFirst(at + 1)
            guard let tomorrow = calendar.date(byAdding: .day, value: 1, to: nowDate) else { return nil }
            due = calendar.date(bySettingHour: hour, minute: minute, second: 0, of: tomorrow)
        default:
            return nil
        }
        let text = tokens.joined(separator: " ").trimmingCharacters(in: .whitespaces)
        guard let due, !text.isEmpty else { return nil }
        return ReminderTime(due: LogTimestamp(microseconds: Int64(due.timeIntervalSince1970 * 1_000_000)), text: text)
    }

    /// `17:00`, `9:30`, `9` → hour and minute.
    static func clock(_ token: String) -> (Int, Int)? {
        let parts = token.split(separator: ":")
        guard (1...2).contains(parts.count), let hour = Int(parts[0]), (0...23).contains(hour) else { return nil }
        let minute = parts.count == 2 ? Int(parts[1]) : 0
        guard let minute, (0...59).contains(minute), parts.count == 1 || parts[1].count == 2 else { return nil }
        return (hour, minute)
    }

    /// A duration in one token (`20m`, `1h30m`, `10s`) or two (`20 minutes`); how many tokens it took.
    static func duration(_ token: String, unit next: String?) -> (seconds: Int, tokens: Int)? {
        let lower = token.lowercased()
        if let number = Int(lower), let next, let unit = unitSeconds(next.lowercased()) {
            return number > 0 ? (number * unit, 2) : nil
        }
        var total = 0
        var digits = ""
        var sawUnit = false
        for character in lower {
            if character.isNumber {
                digits.append(character)
            } else if let unit = unitSeconds(String(character)), let number = Int(digits) {
                total += number * unit
                digits = ""
                sawUnit = true
            } else {
                return nil
            }
        }
        return sawUnit && digits.isEmpty && total > 0 ? (total, 1) : nil
    }

    static func unitSeconds(_ unit: String) -> Int? {
        switch unit {
        case "s", "sec", "secs", "second", "seconds": 1
        case "m", "min", "mins", "minute", "minutes": 60
        case "h", "hr", "hrs", "hour", "hours": 3_600
        case "d", "day", "days": 86_400
        default: nil
        }
    }
}
