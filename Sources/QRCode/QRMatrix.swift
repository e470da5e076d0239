/// The module grid of a symbol while it is built (ISO/IEC 18004, 7.7-7.9): function patterns, codeword placement,
/// masking, format and version information, and the penalty score that picks the mask (7.8.3).
///
/// Coordinates are (x, y) = (column, row), with (0, 0) the top-left module; `true` is a dark module.
struct QRMatrix: Sendable {
    let version: Int
    let size: Int
    private(set) var modules: [Bool]
    /// Modules of function patterns and of the reserved format and version information areas, which data placement
    /// and masking skip.
    private var isFunction: [Bool]

    /// A grid with its function patterns drawn and its format and version information areas reserved (light).
    init(version: Int) {
        precondition((1...40).contains(version), "QR code versions are 1...40")
        self.version = version
        size = 17 + 4 * version
        modules = Array(repeating: false, count: size * size)
        isFunction = Array(repeating: false, count: size * size)
        drawFunctionPatterns()
    }

    /// The number of modules left for codewords (and remainder bits) once the function patterns, format and version
    /// information are placed: the size squared, less three finder patterns with their separators (3 × 64), the format
    /// information with the dark module (31), the two timing patterns between the separators, the alignment patterns
    /// (less the timing modules they overlap) and, from version 7 on, two version information blocks (36).
    static func dataModuleCount(version: Int) -> Int {
        let size = 17 + 4 * version
        var count = size * size - 3 * 64 - 31 - 2 * (size - 16)
        if version >= 2 {
            let perSide = version / 7 + 2
            count -= 25 * (perSide * perSide - 3) - 10 * (perSide - 2)
        }
        if version >= 7 {
            count -= 36
        }
        return count
    }

    /// The row and column coordinates of the alignment pattern centres (ISO/IEC 18004, Annex E): 6, then evenly
    /// spaced up to `size - 7` with an even step; version 32 is the one exception to the step formula.
    static func alignmentCoordinates(version: Int) -> [Int] {
        guard version >= 2 else { return [] }
        let count = version / 7 + 2
        let last = 4 * version + 10
        let step = version == 32 ? 26 : (last - 6 + 2 * (count - 1) - 1) / (2 * (count - 1)) * 2
        return [6] + (0..<(count - 1)).reversed().map { last - $0 * step }
    }

    // MARK: Function patterns

    private mutating func setFunction(_ x: Int, _ y: Int, _ dark: Bool) {
        modules[y * size + x] = dark
        isFunction[y * size + x] = true
    }

    private mutating func drawFunctionPatterns() {
        // Timing patterns first: the finder separators then overwrite their ends.
        for index in 0..<size {
            setFunction(6, index, index % 2 == 0)
            setFunction(index, 6, index % 2 == 0)
        }
        drawFinderPattern(centerX: 3, centerY: 3)
        drawFinderPattern(centerX: size - 4, centerY: 3)
        drawFinderPattern(centerX: 3, centerY: size - 4)
        let coordinates = Self.alignmentCoordinates(version: version)
        let last = size - 7
        for y in coordinates {
            for x in coordinates where !(x == 6 && y == 6) && !(x == 6 && y == last) && !(x == last && y == 6) {
                drawAlignmentPattern(centerX: x, centerY: y)
            }
        }
        // Reserve the format and version information areas; `drawFormatAndVersion` fills them in.
        for bit in 0..<15 {
            let (first, second) = formatPositions(bit: bit)
            setFunction(first.x, first.y, false)
            setFunction(second.x, second.y, false)
        }
        setFunction(8, size - 8, false)
        if version >= 7 {
            for bit in 0..<18 {
                setFunction(size - 11 + bit % 3, bit / 3, false)
                setFunction(bit / 3, size - 11 + bit % 3, false)
            }
        }
    }

    /// A 7 × 7 finder pattern and its one-module light separator (the part of it inside the symbol).
    private mutating func drawFinderPattern(centerX: Int, centerY: Int) {
        for dy in -4...4 {
            for dx in -4...4 {
                let x = centerX + dx
                let y = centerY + dy
                guard (0..<size).contains(x), (0..<size).contains(y) else { continue }
                let ring = max(abs(dx), abs(dy))
                setFunction(x, y, ring != 2 && ring != 4)
            }
        }
    }

    /// A 5 × 5 alignment pattern: dark centre, light ring, dark ring.
    private mutating func drawAlignmentPattern(centerX: Int, centerY: Int) {
        for dy in -2...2 {
            for dx in -2...2 {
                setFunction(centerX + dx, centerY + dy, max(abs(dx), abs(dy)) != 1)
            }
        }
    }

    /// Where bit `bit` (0 = least significant) of the 15-bit format information goes in each of its two copies: the
    /// first around the top-left finder pattern, the second split between the top-right and bottom-left ones.
    private func formatPositions(bit: Int) -> (first: (x: Int, y: Int), second: (x: Int, y: Int)) {
        let first: (x: Int, y: Int)
        switch bit {
        case 0..<6: first = (8, bit)
        case 6: first = (8, 7)
        case 7: first = (8, 8)
        case 8: first = (7, 8)
        default: first = (14 - bit, 8)
        }
        let second: (x: Int, y: Int) = bit < 8 ? (size - 1 - bit, 8) : (8, size - 15 + bit)
        return (first, second)
    }

    // MARK: Data

    /// Places the codewords' bits, most significant first, in two-module-wide columns from the bottom-right corner,
    /// going up then down alternately, skipping function modules and the vertical timing column (ISO/IEC 18004,
    /// 7.7.3). Modules left over (remainder bits) stay light.
    mutating func place(codewords: [UInt8]) {
        let bitCount = codewords.count * 8
        var bitIndex = 0
        var upward = true
        var right = size - 1
        while right > 0 {
            if right == 6 {
                right = 5
            }
            for step in 0..<size {
                let y = upward ? size - 1 - step : step
                for x in [right, right - 1] where !isFunction[y * size + x] {
                    if bitIndex < bitCount {
                        modules[y * size + x] = (codewords[bitIndex / 8] >> (7 - bitIndex % 8)) & 1 == 1
                    }
                    bitIndex += 1
                }
            }
            upward.toggle()
            right -= 2
        }
    }

    /// Inverts the non-function modules where the data mask pattern's condition holds (ISO/IEC 18004, Table 10);
    /// i is the row and j the column.
    mutating func applyMask(_ mask: Int) {
        for i in 0..<size {
            for j in 0..<size where !isFunction[i * size + j] {
                let invert: Bool
                switch mask {
                case 0: invert = (i + j) % 2 == 0
                case 1: invert = i % 2 == 0
                case 2: invert = j % 3 == 0
                case 3: invert = (i + j) % 3 == 0
                case 4: invert = (i / 2 + j / 3) % 2 == 0
                case 5: invert = (i * j) % 2 + (i * j) % 3 == 0
                case 6: invert = ((i * j) % 2 + (i * j) % 3) % 2 == 0
                case 7: invert = ((i + j) % 2 + (i * j) % 3) % 2 == 0
                default: preconditionFailure("mask patterns are 0...7")
                }
                if invert {
                    modules[i * size + j].toggle()
                }
            }
        }
    }

    /// Fills the format information (level and mask, BCH(15,5)-protected and XORed with 101010000010010), the dark
    /// module and, from version 7 on, the version information (BCH(18,6)) (ISO/IEC 18004, 7.9).
    mutating func drawFormatAndVersion(errorCorrection: QRCode.ErrorCorrection, mask: Int) {
        let formatData = errorCorrection.formatBits << 3 | mask
        let format = (formatData << 10 | Self.bchRemainder(formatData << 10, generator: 0x537)) ^ 0x5412
        for bit in 0..<15 {
            let dark = (format >> bit) & 1 == 1
            let (first, second) = formatPositions(bit: bit)
            setFunction(first.x, first.y, dark)
            setFunction(second.x, second.y, dark)
        }
        setFunction(8, size - 8, true)
        guard version >= 7 else { return }
        let versionBits = version << 12 | Self.bchRemainder(version << 12, generator: 0x1F25)
        for bit in 0..<18 {
            let dark = (versionBits >> bit) & 1 == 1
            setFunction(size - 11 + bit % 3, bit / 3, dark)
            setFunction(bit / 3, size - 11 + bit % 3, dark)
        }
    }

    // MARK: Mask penalty

    /// The penalty score of the grid as it stands (ISO/IEC 18004, 7.8.3.1, Table 11); the lower, the better:
    ///
    /// - N1: each run of five or more same-coloured modules in a row or column scores 3 + (length − 5);
    /// - N2: each 2 × 2 block of one colour scores 3 (overlapping blocks count separately);
    /// - N3: each 1:1:3:1:1 finder-like pattern with four light modules on one side — 10111010000 or 00001011101 in a
    ///   row or column, within the symbol — scores 40;
    /// - N4: 10 points for each full 5 % by which the share of dark modules departs from 50 %.
    ///
    /// The encoder scores each mask before the format and version information are filled in (the reserved modules and
    /// the dark module count as light), following the order of the encoding procedure (masking is step 6, format and
    /// version information step 7). python-qrcode does the same; encoders that score the finished symbol may choose a
    /// different mask, which is as valid.
    func penalty() -> Int {
        var score = 0
        for line in 0..<size {
            score += Self.linePenalty((0..<size).map { modules[line * size + $0] })
            score += Self.linePenalty((0..<size).map { modules[$0 * size + line] })
        }
        for y in 0..<(size - 1) {
            for x in 0..<(size - 1) {
                let colour = modules[y * size + x]
                if modules[y * size + x + 1] == colour && modules[(y + 1) * size + x] == colour
                    && modules[(y + 1) * size + x + 1] == colour
                {
                    score += 3
                }
            }
        }
        let total = size * size
        let dark = modules.reduce(0) { $0 + ($1 ? 1 : 0) }
        score += 10 * (abs(dark * 20 - total * 10) / total)
        return score
    }

    /// 1:1:3:1:1 (dark:light:dark:light:dark) then four light modules: 10111010000.
    private static let finderLikeBefore: [Bool] = [1, 0, 1, 1, 1, 0, 1, 0, 0, 0, 0].map { $0 == 1 }
    private static let finderLikeAfter: [Bool] = finderLikeBefore.reversed()

    /// Rules N1 and N3 on one row or column.
    private static func linePenalty(_ line: [Bool]) -> Int {
        var score = 0
        var run = 0
        for index in line.indices {
            if index > 0 && line[index] == line[index - 1] {
                run += 1
            } else {
                if run >= 5 {
                    score += run - 2
                }
                run = 1
            }
        }
        if run >= 5 {
            score += run - 2
        }
        let width = finderLikeBefore.count
        if line.count >= width {
            for start in 0...(line.count - width) {
                let window = line[start..<(start + width)]
                if window.elementsEqual(finderLikeBefore) || window.elementsEqual(finderLikeAfter) {
                    score += 40
                }
            }
        }
        return score
    }

    /// The remainder of the binary polynomial `dividend` divided by `generator` (long division over GF(2)).
    private static func bchRemainder(_ dividend: Int, generator: Int) -> Int {
        let degree = Int.bitWidth - 1 - generator.leadingZeroBitCount
        var remainder = dividend
        var bit = Int.bitWidth - 1 - remainder.leadingZeroBitCount
        while bit >= degree {
            if (remainder >> bit) & 1 == 1 {
                remainder ^= generator << (bit - degree)
            }
            bit -= 1
        }
        return remainder
    }
}
