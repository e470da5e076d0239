import Assistant
import Foundation
import Testing
import SwitchboardJSON

@Suite struct CalculatorTests {
    @Test(arguments: [
        ("17*3", "51"),
        ("1 + 2 * 3", "7"),
        ("(1 + 2) * 3", "9"),
        ("10 - 4 - 3", "3"),
        ("100 / 10 / 5", "2"),
        ("-5 + 2", "-3"),
        ("--5", "5"),
        ("-(2 + 3) * 2", "-10"),
        ("2 * -3", "-6"),
        ("+4", "4"),
        ("0.1 + 0.2", "0.3"),
        ("1.5 * 4", "6"),
        (".5 + .25", "0.75"),
        ("1 / 3", "0.333333333333"),
        ("2 / 3", "0.666666666667"),
        ("10 % 3", "1"),
        ("-7 % 3", "-1"),
        ("2 ^ 10", "1024"),
        ("2 ^ 3 ^ 2", "512"),
        ("-2 ^ 2", "-4"),
        ("2 ^ -2", "0.25"),
        ("((((7))))", "7"),
        ("6 × 7 ÷ 2", "21"),
        ("  12  ", "12"),
        ("1000000 * 1000000", "1000000000000"),
    ])
    func evaluates(expression: String, expected: String) throws {
        #expect(Calculator.format(try Calculator.evaluate(expression)) == expected)
    }

    @Test(
        arguments: [
            ("1 / 0", CalculatorError.Code.divisionByZero),
            ("5 % (2 - 2)", .divisionByZero),
            ("0 ^ -1", .divisionByZero),
            ("", .empty),
            ("   ", .empty),
            ("2 +", .unexpectedEnd),
            ("(1 + 2", .unbalancedParentheses),
            ("1 + 2)", .unbalancedParentheses),
            (")", .unbalancedParentheses),
            ("abc", .unexpectedCharacter),
            ("2 $ 3", .unexpectedCharacter),
            ("1.2.3", .unexpectedCharacter),
            ("2(3)", .unexpectedCharacter),
            ("exit(0)", .unexpectedCharacter),
            ("2 ^ 0.5", .overflow),
            ("10 ^ 1000 * 10 ^ 1000", .overflow),
            (String(repeating: "(", count: 100) + "1" + String(repeating: ")", count: 100), .tooComplex),
            (String(repeating: "1+", count: 600) + "1", .tooComplex),
        ] as [(String, CalculatorError.Code)])
    func refuses(expression: String, code: CalculatorError.Code) {
        let error = #expect(throws: CalculatorError.self) { try Calculator.evaluate(expression) }
        #expect(error?.code == code)
    }

    @Test func theToolAnswersWithTheExpressionAndItsValue() async throws {
        let context = ToolContext(callID: "c1", logger: quietLogger)
        #expect(try await CalculatorTool().run(["expression": "17*3"], context: context) == "17*3 = 51")
        await #expect(throws: ToolError.self) {
            try await CalculatorTool().run(["expression": "1/0"], context: context)
        }
    }
}

@Suite struct DateMathTests {
    @Test(
        arguments: [
            ("2026-01-31", 1, DateMath.Unit.days, "2026-02-01"),
            ("2026-12-31", 1, .days, "2027-01-01"),
            ("2026-03-01", -1, .days, "2026-02-28"),
            ("2024-03-01", -1, .days, "2024-02-29"),
            ("2026-01-01", 2, .weeks, "2026-01-15"),
            ("2026-01-31", 1, .months, "2026-02-28"),
            ("2024-01-31", 1, .months, "2024-02-29"),
            ("2026-03-31", -1, .months, "2026-02-28"),
            ("2026-05-15", 12, .months, "2027-05-15"),
            ("2024-02-29", 1, .years, "2025-02-28"),
            ("2026-10-25", 1, .days, "2026-10-26"),
        ] as [(String, Int, DateMath.Unit, String)])
    func adds(date: String, amount: Int, unit: DateMath.Unit, expected: String) throws {
        #expect(try DateMath.add(amount, unit, to: date) == expected)
    }

    @Test(arguments: [
        ("2026-01-01", "2026-03-01", 59),
        ("2024-01-01", "2024-03-01", 60),
        ("2026-03-01", "2026-01-01", -59),
        ("2026-06-15", "2026-06-15", 0),
        ("2025-12-25", "2026-12-25", 365),
    ])
    func countsDays(from: String, to: String, expected: Int) throws {
        #expect(try DateMath.days(from: from, to: to) == expected)
    }

    @Test(arguments: ["2026-02-30", "2026-13-01", "26-01-01", "2026/01/01", "tomorrow", ""])
    func refusesWhatIsNotADate(text: String) {
        #expect(throws: DateMath.Failure.self) { try DateMath.parse(text) }
    }

    @Test func theToolAddsSubtractsAndCountsFromToday() async throws {
        let now = try #require(ISO8601DateFormatter().date(from: "2026-12-02T10:00:00Z"))
        let context = ToolContext(callID: "c1", now: now, logger: quietLogger)
        let tool = DateMathTool()
        #expect(
            try await tool.run(
                ["operation": "add", "date": "2026-01-31", "amount": 1, "unit": "month"], context: context)
                == "2026-02-28 (Saturday)")
        #expect(
            try await tool.run(
                ["operation": "subtract", "date": "today", "amount": 2, "unit": "weeks"], context: context)
                == "2026-11-18 (Wednesday)")
        #expect(
            try await tool.run(["operation": "difference", "date": "today", "to": "2026-12-25"], context: context)
                == "23 days from 2026-12-02 to 2026-12-25")
        await #expect(throws: ToolError.self) {
            try await tool.run(["operation": "add", "date": "2026-01-31", "unit": "days"], context: context)
        }
        await #expect(throws: ToolError.self) {
            try await tool.run(["operation": "multiply", "date": "2026-01-31"], context: context)
        }
    }
}

@Suite struct CurrentTimeTests {
    @Test func tellsTheTimeInTheAskedZone() async throws {
        let now = try #require(ISO8601DateFormatter().date(from: "2026-07-01T12:30:00Z"))
        let context = ToolContext(callID: "c1", now: now, logger: quietLogger)
        let tool = CurrentTimeTool()
        #expect(
            try await tool.run(["time_zone": "Europe/Lisbon"], context: context)
                == "2026-07-01T13:30:00+01:00 (Wednesday, 1 July 2026, 13:30, Europe/Lisbon)")
        let utc = try await tool.run([:], context: context)
        #expect(utc == "2026-07-01T12:30:00Z (Wednesday, 1 July 2026, 12:30, UTC)")
        await #expect(throws: ToolError.self) { try await tool.run(["time_zone": "Mars/Olympus"], context: context) }
    }
}

@Suite struct ToolRegistryTests {
    let registry = ToolRegistry([CalculatorTool(), CurrentTimeTool(), DateMathTool(), SideEffectProbe()])
    let context = ToolContext(callID: "job-1/call_1", logger: quietLogger)

    /// A side-effecting tool that only says it ran.
    struct SideEffectProbe: Tool {
        var name: String { "probe_write" }
        var description: String { "writes" }
        var parameters: JSONValue { ["type": "object"] }
        var risk: ToolRisk { .sideEffect }
        func run(_ arguments: JSONValue, context: ToolContext) async throws(ToolError) -> String { "wrote" }
    }

    @Test func exposesDefinitionsAndRisk() {
        #expect(registry.definitions.map(\.name) == ["calculate", "get_current_time", "date_calc", "probe_write"])
        #expect(!registry.requiresApproval("calculate"))
        #expect(registry.requiresApproval("probe_write"))
        #expect(ToolRisk.sideEffect.rawValue == "side_effect")
    }

    @Test func runsAReadToolFromTheModelsCall() async {
        let outcome = await registry.run(
            ToolCallRequest(id: "call_1", name: "calculate", arguments: #"{"expression":"(2+3)*4"}"#), context: context,
            approved: false)
        #expect(outcome == ToolOutcome(callID: "call_1", name: "calculate", content: "(2+3)*4 = 20"))
    }

    @Test func aSideEffectRunsOnlyWhenApproved() async {
        let call = ToolCallRequest(id: "call_2", name: "probe_write", arguments: "{}")
        #expect(await registry.run(call, context: context, approved: false).error?.code == .notApproved)
        #expect(await registry.run(call, context: context, approved: true).content == "wrote")
    }

    @Test(
        arguments: [
            (ToolCallRequest(id: "c", name: "rm_rf", arguments: "{}"), ToolError.Code.unknownTool),
            (ToolCallRequest(id: "c", name: "calculate", arguments: #"{"expression": "#), .invalidArguments),
            (ToolCallRequest(id: "c", name: "calculate", arguments: "[1]"), .invalidArguments),
            (ToolCallRequest(id: "c", name: "calculate", arguments: "{}"), .invalidArguments),
        ] as [(ToolCallRequest, ToolError.Code)])
    func failuresBecomeOutcomesTheModelReads(call: ToolCallRequest, code: ToolError.Code) async {
        let outcome = await registry.run(call, context: context, approved: true)
        #expect(outcome.error?.code == code)
        #expect(outcome.content.hasPrefix("Error: "))
    }
}
