import Foundation
import Testing

@testable import QRCode

/// The encoder against python-qrcode (Fixtures/OracleFixtures.swift, made by Fixtures/generate.py), and the
/// renderings against the matrix they draw.
@Suite("QR code")
struct QRCodeTests {
    static let automatic = Oracle.symbols.filter { $0.forcedMask == nil }
    static let forced = Oracle.symbols.filter { $0.forcedMask != nil }
    static let whatsApp = Oracle.symbols.first { $0.name == "WhatsApp payload at low" }!.text

    /// The symbol's rows as the fixtures write them: "1" = dark.
    static func rows(_ code: QRCode) -> [String] {
        (0..<code.size).map { y in String((0..<code.size).map { x in code[x, y] ? "1" : "0" }) }
    }

    @Test("same version, mask and modules as python-qrcode", arguments: automatic)
    func matchesOracle(_ fixture: Oracle.Symbol) throws {
        let code = try QRCode(fixture.text, errorCorrection: fixture.level)
        #expect(code.version == fixture.version)
        #expect(code.size == 17 + 4 * fixture.version)
        #expect(code.mask == fixture.mask)
        #expect(code.errorCorrection == fixture.level)
        #expect(Self.rows(code) == fixture.rows)
    }

    @Test("same penalty for every mask as python-qrcode, and the lowest one chosen", arguments: automatic)
    func maskPenaltiesMatchOracle(_ fixture: Oracle.Symbol) throws {
        let penalties = try QRCode.maskPenalties(bytes: Array(fixture.text.utf8), errorCorrection: fixture.level)
        #expect(penalties == fixture.maskPenalties)
        let lowest = try #require(penalties.min())
        #expect(try QRCode(fixture.text, errorCorrection: fixture.level).mask == penalties.firstIndex(of: lowest))
    }

    @Test("each mask pattern draws the modules python-qrcode draws", arguments: forced)
    func forcedMaskMatchesOracle(_ fixture: Oracle.Symbol) throws {
        let mask = try #require(fixture.forcedMask)
        let code = try QRCode(bytes: Array(fixture.text.utf8), errorCorrection: fixture.level, forcedMask: mask)
        #expect(code.version == fixture.version)
        #expect(code.mask == mask)
        #expect(Self.rows(code) == fixture.rows)
    }

    @Test("error correction blocks of every version and level match python-qrcode")
    func blockStructureMatchesOracle() {
        let levels: [QRCode.ErrorCorrection] = [.low, .medium, .quartile, .high]
        #expect(Oracle.blockStructure.count == 40)
        for (index, perLevel) in Oracle.blockStructure.enumerated() {
            for (level, expected) in zip(levels, perLevel) {
                let layout = BlockLayout(version: index + 1, errorCorrection: level)
                #expect(
                    [layout.blockCount, layout.errorCorrectionPerBlock, layout.dataCodewords] == expected,
                    "version \(index + 1), level \(level)")
            }
        }
    }

    @Test("the UTF-8 bytes are encoded: a string and its bytes give the same symbol")
    func stringIsUTF8() throws {
        let text = "Grüße 東京 🚀"
        let fromString = try QRCode(text, errorCorrection: .medium)
        let fromBytes = try QRCode(bytes: Array(text.utf8), errorCorrection: .medium)
        #expect(Self.rows(fromString) == Self.rows(fromBytes))
    }

    @Test("too long for version 40")
    func tooLong() throws {
        let error = #expect(throws: QRCode.Error.self) {
            try QRCode(String(repeating: "x", count: 3000), errorCorrection: .high)
        }
        #expect(error?.code == .tooLong)
        // The byte-mode capacities of version 40 (ISO/IEC 18004, Table 7): exactly full fits, one more byte does not.
        let capacities: [(QRCode.ErrorCorrection, Int)] = [(.low, 2953), (.high, 1273)]
        for (level, capacity) in capacities {
            #expect(try QRCode(bytes: Array(repeating: 0x5A, count: capacity), errorCorrection: level).version == 40)
            let error = #expect(throws: QRCode.Error.self) {
                try QRCode(bytes: Array(repeating: 0x5A, count: capacity + 1), errorCorrection: level)
            }
            #expect(error?.code == .tooLong)
        }
    }

    @Test("coordinates outside the symbol are light")
    func outsideIsLight() throws {
        let code = try QRCode("hello")
        #expect(code[0, 0])  // the top-left finder pattern's corner
        #expect(!code[-1, 0] && !code[0, -1] && !code[code.size, 0] && !code[0, code.size])
    }

    @Test(
        "terminal text: dark modules as spaces, light modules and quiet zone as half-block ink",
        arguments: [0, 1, 2, 5])
    func terminalText(quietZone: Int) throws {
        let code = try QRCode(Self.whatsApp)
        let lines = code.terminalText(quietZone: quietZone).split(separator: "\n", omittingEmptySubsequences: false)
        let extent = code.size + 2 * quietZone
        #expect(lines.count == (extent + 1) / 2)
        // Decode the picture back: each character is a top and a bottom half, inked or not.
        var ink = [[Bool]](repeating: [], count: lines.count * 2)
        for (row, line) in lines.enumerated() {
            #expect(line.count == extent)
            for character in line {
                let halves: (Bool, Bool)? =
                    switch character {
                    case "█": (true, true)
                    case "▀": (true, false)
                    case "▄": (false, true)
                    case " ": (false, false)
                    default: nil
                    }
                let (top, bottom) = try #require(halves, "unexpected character \(character)")
                ink[2 * row].append(top)
                ink[2 * row + 1].append(bottom)
            }
        }
        for y in 0..<extent {
            for x in 0..<extent {
                // Ink is light: a light module or the quiet zone.
                #expect(ink[y][x] == !code[x - quietZone, y - quietZone], "module (\(x), \(y)) of the picture")
            }
        }
        if extent % 2 == 1 {
            #expect(ink[extent].allSatisfy { !$0 }, "the half line past the picture is blank")
        }
    }

    @Test("SVG: viewBox in modules, pixel size, white background, one path covering exactly the dark modules")
    func svg() throws {
        let code = try QRCode(Self.whatsApp)
        let svg = code.svg(moduleSize: 5, quietZone: 3)
        let extent = code.size + 6
        #expect(svg.hasPrefix("<svg xmlns=\"http://www.w3.org/2000/svg\""))
        #expect(svg.hasSuffix("</svg>"))
        #expect(svg.contains("viewBox=\"0 0 \(extent) \(extent)\""))
        #expect(svg.contains("width=\"\(extent * 5)\" height=\"\(extent * 5)\""))
        #expect(svg.contains("shape-rendering=\"crispEdges\""))
        #expect(svg.contains("<rect width=\"\(extent)\" height=\"\(extent)\" fill=\"#fff\"/>"))
        #expect(svg.components(separatedBy: "<path").count == 2)
        #expect(!svg.contains("href"))

        // Paint the path's runs ("M<x> <y>h<n>v1h-<n>z") and compare with the modules.
        let start = try #require(svg.range(of: " d=\""))
        let end = try #require(svg.range(of: "\"", range: start.upperBound..<svg.endIndex))
        var painted = [[Bool]](repeating: [Bool](repeating: false, count: extent), count: extent)
        for run in svg[start.upperBound..<end.lowerBound].split(separator: "z") {
            let numbers = run.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
            try #require(numbers.count == 5, "run \(run)")
            let (x0, y, length) = (numbers[0], numbers[1], numbers[2])
            try #require(run == "M\(x0) \(y)h\(length)v1h-\(length)", "run \(run)")
            for x in x0..<(x0 + length) {
                #expect(!painted[y][x], "module (\(x), \(y)) painted twice")
                painted[y][x] = true
            }
        }
        for y in 0..<extent {
            for x in 0..<extent {
                #expect(painted[y][x] == code[x - 3, y - 3], "module (\(x), \(y)) of the picture")
            }
        }
    }
}
