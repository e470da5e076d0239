import Foundation
import SwitchboardJSON

/// The `get_current_time` tool: the current time in a time zone (IANA name, default the tool's).
public struct CurrentTimeTool: Tool {
    public let defaultTimeZone: TimeZone

    public init(defaultTimeZone: TimeZone = TimeZone(identifier: "UTC")!) {
        self.defaultTimeZone = defaultTimeZone
    }

    public var name: String { "get_current_time" }
    public var description: String { "Get the current date and time, optionally in a given IANA time zone." }
    public var parameters: JSONValue {
        [
            "type": "object",
            "properties": [
                "time_zone": ["type": "string", "description": "IANA time zone such as Europe/Lisbon; default UTC"]
            ],
        ]
    }
    public var risk: ToolRisk { .read }

    public func run(_ arguments: JSONValue, context: ToolContext) async throws(ToolError) -> String {
        var zone = defaultTimeZone
        if let name = Arguments(value: arguments).optionalString("time_zone") {
            guard let named = TimeZone(identifier: name) else {
                throw ToolError(
                    .invalidArguments, "unknown time zone '\(name)' (use an IANA name such as Europe/Lisbon)")
            }
            zone = named
        }
        return Self.describe(context.now, in: zone)
    }

    /// `2026-12-02T15:42:05+01:00 (Wednesday, 2 December 2026, 15:42, Europe/Lisbon)`.
    public static func describe(_ date: Date, in zone: TimeZone) -> String {
        let iso = ISO8601DateFormatter()
        iso.timeZone = zone
        iso.formatOptions = [.withInternetDateTime]
        let human = DateFormatter()
        human.locale = Locale(identifier: "en_US_POSIX")
        human.timeZone = zone
        human.dateFormat = "EEEE, d MMMM yyyy, HH:mm"
        // Foundation on Linux names UTC "GMT"; they are the same zone.
        let name = zone.identifier == "GMT" ? "UTC" : zone.identifier
        return "\(iso.string(from: date)) (\(human.string(from: date)), \(name))"
    }
}

/// Calendar arithmetic on plain dates (`YYYY-MM-DD`, proleptic Gregorian, no time of day, no time zone).
public enum DateMath {
    /// A unit to add.
    public enum Unit: String, Sendable, Hashable, CaseIterable {
        case days
        case weeks
        case months
        case years

        /// Reads `day`/`days`/`week`/… (singular or plural, any case).
        public init?(text: String) {
            let lowered = text.lowercased()
            if let unit = Unit(rawValue: lowered) ?? Unit(rawValue: lowered + "s") {
                self = unit
            } else {
                return nil
            }
        }
    }

    /// A date is not `YYYY-MM-DD`, or a result is out of range.
    public struct Failure: Error, Sendable, Hashable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    private static let calendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }()

    /// Parses `YYYY-MM-DD`, rejecting impossible dates (2026-02-30).
    public static func parse(_ text: String) throws(Failure) -> Date {
        let parts = text.trimmingCharacters(in: .whitespaces).split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
            let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2])
        else { throw Failure(message: "'\(text)' is not a date of the form YYYY-MM-DD") }
        let components = DateComponents(year: year, month: month, day: day)
        guard let date = calendar.date(from: components),
            calendar.dateComponents([.year, .month, .day], from: date) == components
        else { throw Failure(message: "'\(text)' is not a real date") }
        return date
    }

    /// The date as `YYYY-MM-DD`.
    public static func format(_ date: Date) -> String {
        let parts = calendar.dateComponents([.year, .month, .day], from: date)
        return String(format: "%04d-%02d-%02d", parts.year ?? 0, parts.month ?? 0, parts.day ?? 0)
    }

    /// `date` plus `amount` units (negative to subtract). Adding months keeps the day when the month has it and
    /// takes the month's last day otherwise (2026-01-31 plus one month is 2026-02-28).
    public static func add(_ amount: Int, _ unit: Unit, to date: String) throws(Failure) -> String {
        let start = try parse(date)
        var components = DateComponents()
        switch unit {
        case .days: components.day = amount
        case .weeks: components.day = amount * 7
        case .months: components.month = amount
        case .years: components.year = amount
        }
        guard abs(amount) <= 100_000, let result = calendar.date(byAdding: components, to: start) else {
            throw Failure(message: "the result is out of range")
        }
        return format(result)
    }

    /// Whole days from `from` to `to` (negative when `to` is earlier).
    public static func days(from: String, to: String) throws(Failure) -> Int {
        let start = try parse(from)
        let end = try parse(to)
        return calendar.dateComponents([.day], from: start, to: end).day ?? 0
    }

    /// The weekday's English name (`Monday`).
    public static func weekday(_ date: String) throws(Failure) -> String {
        let names = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
        return names[calendar.component(.weekday, from: try parse(date)) - 1]
    }
}

/// The `date_calc` tool: add or subtract days, weeks, months or years, or count the days between two dates.
public struct DateMathTool: Tool {
    public init() {}

    /// What the tool is asked to do.
    public enum Operation: String, Sendable, CaseIterable {
        case add
        case subtract
        case difference
    }

    public var name: String { "date_calc" }
    public var description: String {
        "Date arithmetic on YYYY-MM-DD dates: add or subtract days/weeks/months/years, or the days between two dates."
    }
    public var parameters: JSONValue {
        [
            "type": "object",
            "properties": [
                "operation": ["type": "string", "enum": ["add", "subtract", "difference"]],
                "date": ["type": "string", "description": "YYYY-MM-DD or 'today'"],
                "amount": ["type": "integer"],
                "unit": ["type": "string", "enum": ["days", "weeks", "months", "years"]],
                "to": ["type": "string", "description": "for difference: the second date, YYYY-MM-DD or 'today'"],
            ],
            "required": ["operation", "date"],
        ]
    }
    public var risk: ToolRisk { .read }

    public func run(_ arguments: JSONValue, context: ToolContext) async throws(ToolError) -> String {
        let arguments = Arguments(value: arguments)
        let operationText = try arguments.string("operation")
        guard let operation = Operation(rawValue: operationText.lowercased()) else {
            throw ToolError(.invalidArguments, "'operation' must be add, subtract or difference")
        }
        let today = DateMath.format(context.now)
        func resolve(_ text: String) -> String { text.lowercased() == "today" ? today : text }
        let date = resolve(try arguments.string("date"))
        do {
            switch operation {
            case .add, .subtract:
                guard let amount = try arguments.optionalInt("amount") else {
                    throw ToolError(.invalidArguments, "'amount' is required (a whole number)")
                }
                let unitText = arguments.optionalString("unit") ?? "days"
                guard let unit = DateMath.Unit(text: unitText) else {
                    throw ToolError(.invalidArguments, "'unit' must be days, weeks, months or years")
                }
                let result = try DateMath.add(operation == .add ? amount : -amount, unit, to: date)
                return "\(result) (\(try DateMath.weekday(result)))"
            case .difference:
                let to = resolve(try arguments.string("to"))
                return "\(try DateMath.days(from: date, to: to)) days from \(date) to \(to)"
            }
        } catch let failure as DateMath.Failure {
            throw ToolError(.invalidArguments, failure.message)
        } catch let error as ToolError {
            throw error
        } catch {
            throw ToolError(.invalidArguments, "\(error)")
        }
    }
}
