import Foundation
import SwitchboardJSON

/// A calculator failed: the expression is not arithmetic, or its value does not exist.
public struct CalculatorError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable {
        case empty
        /// A character that is not part of arithmetic (`offset` says where).
        case unexpectedCharacter = "unexpected_character"
        /// The expression ends where a number or `(` was expected.
        case unexpectedEnd = "unexpected_end"
        case unbalancedParentheses = "unbalanced_parentheses"
        case divisionByZero = "division_by_zero"
        /// The value is too large (or an exponent out of range).
        case overflow
        /// The expression is longer or deeper than the calculator accepts.
        case tooComplex = "too_complex"
    }

    public var code: Code
    public var message: String
    /// The character offset the problem was found at, when there is one.
    public var offset: Int?

    public init(_ code: Code, _ message: String, offset: Int? = nil) {
        self.code = code
        self.message = message
        self.offset = offset
    }

    public var description: String { message }
}

/// Safe arithmetic: a recursive-descent parser and evaluator over `Decimal` (so 0.1 + 0.2 is 0.3). It evaluates
/// numbers, `+ - * / %`, `^` (whole exponents), unary minus and plus, and parentheses, with the usual precedence
/// (`^` binds tightest and to the right, then unary signs, then `* / %`, then `+ -`; `-2^2` is -4). Nothing is ever
/// evaluated as code: no `NSExpression`, no eval. `×` and `÷` are read as `*` and `/`.
public enum Calculator {
    /// The longest expression accepted, in characters.
    public static let maxLength = 1_000
    /// The deepest nesting accepted (parentheses and signs).
    public static let maxDepth = 64

    /// Evaluates `expression`.
    /// - Throws: ``CalculatorError``.
    public static func evaluate(_ expression: String) throws(CalculatorError) -> Decimal {
        let characters = Array(expression)
        guard characters.count <= maxLength else {
            throw CalculatorError(.tooComplex, "the expression is longer than \(maxLength) characters")
        }
        var parser = Parser(characters: characters)
        parser.skipSpaces()
        guard parser.position < characters.count else { throw CalculatorError(.empty, "there is nothing to calculate") }
        let value = try parser.expression(depth: 0)
        parser.skipSpaces()
        if parser.position < characters.count {
            let character = characters[parser.position]
            if character == ")" {
                throw CalculatorError(
                    .unbalancedParentheses, "')' at position \(parser.position + 1) closes nothing",
                    offset: parser.position)
            }
            throw CalculatorError(
                .unexpectedCharacter, "unexpected '\(character)' at position \(parser.position + 1)",
                offset: parser.position)
        }
        return value
    }

    /// The value as text: rounded to 12 decimal places, without trailing zeros (`51`, `0.3`, `0.333333333333`).
    public static func format(_ value: Decimal) -> String {
        var input = value
        var rounded = Decimal()
        NSDecimalRound(&rounded, &input, 12, .plain)
        if rounded.isZero { return "0" }
        return "\(rounded)"
    }

    private struct Parser {
        let characters: [Character]
        var position = 0

        mutating func skipSpaces() {
            while position < characters.count, characters[position].isWhitespace { position += 1 }
        }

        mutating func peek() -> Character? {
            skipSpaces()
            return position < characters.count ? characters[position] : nil
        }

        mutating func expression(depth: Int) throws(CalculatorError) -> Decimal {
            var value = try term(depth: depth)
            while let next = peek(), next == "+" || next == "-" {
                position += 1
                let right = try term(depth: depth)
                value = try checked(next == "+" ? value + right : value - right)
            }
            return value
        }

        mutating func term(depth: Int) throws(CalculatorError) -> Decimal {
            var value = try unary(depth: depth)
            while let next = peek(), ["*", "/", "%", "×", "÷"].contains(next) {
                let at = position
                position += 1
                let right = try unary(depth: depth)
                switch next {
                case "*", "×":
                    value = try checked(value * right)
                default:
                    guard !right.isZero else {
                        throw CalculatorError(
                            .divisionByZero, next == "%" ? "remainder of a division by zero" : "division by zero",
                            offset: at)
                    }
                    if next == "%" {
                        var quotient = value / right
                        var whole = Decimal()
                        // Truncate toward zero (`.down` rounds negatives toward minus infinity), so the remainder takes the
                        // dividend's sign as in C and Swift: -7 % 3 is -1.
                        NSDecimalRound(&whole, &quotient, 0, quotient < 0 ? .up : .down)
                        value = try checked(value - whole * right)
                    } else {
                        value = try checked(value / right)
                    }
                }
            }
            return value
        }

        mutating func unary(depth: Int) throws(CalculatorError) -> Decimal {
            guard depth < Calculator.maxDepth else {
                throw CalculatorError(.tooComplex, "the expression nests deeper than \(Calculator.maxDepth) levels")
            }
            if let next = peek(), next == "-" || next == "+" {
                position += 1
                let value = try unary(depth: depth + 1)
                return next == "-" ? -value : value
            }
            return try power(depth: depth)
        }

        mutating func power(depth: Int) throws(CalculatorError) -> Decimal {
            let base = try primary(depth: depth)
            guard peek() == "^" else { return base }
            let at = position
            position += 1
            let exponent = try unary(depth: depth + 1)
            guard let whole = Int(exactly: NSDecimalNumber(decimal: exponent).doubleValue), Decimal(whole) == exponent,
                abs(whole) <= 1_000
            else {
                throw CalculatorError(.overflow, "only whole exponents up to 1000 are supported", offset: at)
            }
            if whole < 0 {
                guard !base.isZero else { throw CalculatorError(.divisionByZero, "division by zero", offset: at) }
                return try checked(1 / pow(base, -whole))
            }
            return try checked(pow(base, whole))
        }

        mutating func primary(depth: Int) throws(CalculatorError) -> Decimal {
            guard let next = peek() else {
                throw CalculatorError(
                    .unexpectedEnd, "the expression ends where a number was expected", offset: position)
            }
            if next == "(" {
                let open = position
                position += 1
                let value = try expression(depth: depth + 1)
                guard peek() == ")" else {
                    throw CalculatorError(
                        .unbalancedParentheses, "'(' at position \(open + 1) is never closed", offset: open)
                }
                position += 1
                return value
            }
            if next == ")" {
                throw CalculatorError(
                    .unbalancedParentheses, "')' at position \(position + 1) closes nothing", offset: position)
            }
            return try number()
        }

        mutating func number() throws(CalculatorError) -> Decimal {
            let start = position
            var sawDigit = false
            var sawPoint = false
            while position < characters.count {
                let character = characters[position]
                if character.isASCII, character.isNumber {
                    sawDigit = true
                } else if character == ".", !sawPoint {
                    sawPoint = true
                } else {
                    break
                }
                position += 1
            }
            guard sawDigit else {
                position = start
                throw CalculatorError(
                    .unexpectedCharacter, "unexpected '\(characters[start])' at position \(start + 1)", offset: start)
            }
            let text = String(characters[start..<position])
            guard let value = Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")) else {
                throw CalculatorError(.unexpectedCharacter, "'\(text)' is not a number", offset: start)
            }
            return value
        }

        func checked(_ value: Decimal) throws(CalculatorError) -> Decimal {
            guard !value.isNaN else { throw CalculatorError(.overflow, "the result is too large") }
            return value
        }
    }
}

/// The `calculate` tool: evaluates an arithmetic expression with ``Calculator``.
public struct CalculatorTool: Tool {
    public init() {}

    public var name: String { "calculate" }
    public var description: String {
        "Evaluate an arithmetic expression exactly: + - * / % ^, parentheses, decimals, unary minus."
    }
    public var parameters: JSONValue {
        [
            "type": "object",
            "properties": ["expression": ["type": "string", "description": "for example (17 * 3) / 2.5"]],
            "required": ["expression"],
        ]
    }
    public var risk: ToolRisk { .read }

    public func run(_ arguments: JSONValue, context: ToolContext) async throws(ToolError) -> String {
        let expression = try Arguments(value: arguments).string("expression")
        do {
            return "\(expression) = \(Calculator.format(try Calculator.evaluate(expression)))"
        } catch {
            throw ToolError(.invalidArguments, error.message)
        }
    }
}
