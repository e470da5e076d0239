/// A QR code symbol (ISO/IEC 18004 Model 2), encoded from text in byte mode.
///
/// The encoder picks the smallest version (1...40) that holds the data at the chosen error correction level, and the
/// data mask with the lowest penalty score. The text's UTF-8 bytes are encoded as they are, without an ECI header:
/// phone scanners read byte-mode data as UTF-8.
///
/// ```swift
/// let code = try QRCode("2@AbC…,…")
/// print(code.terminalText())
/// let markup = code.svg()
/// ```
public struct QRCode: Sendable {
    /// How much of the symbol may be damaged and still be read: about 7 % (low), 15 % (medium), 25 % (quartile) or
    /// 30 % (high) of the codewords. Higher levels need bigger symbols for the same data.
    public enum ErrorCorrection: Sendable, CaseIterable {
        case low, medium, quartile, high

        /// The level's two bits in the format information (ISO/IEC 18004, Table 12).
        var formatBits: Int {
            switch self {
            case .low: 0b01
            case .medium: 0b00
            case .quartile: 0b11
            case .high: 0b10
            }
        }

        /// The level's row in the capacity tables (L, M, Q, H).
        var tableIndex: Int {
            switch self {
            case .low: 0
            case .medium: 1
            case .quartile: 2
            case .high: 3
            }
        }
    }

    /// Why a QR code could not be made.
    public struct Error: Swift.Error, Sendable, Equatable, CustomStringConvertible {
        /// A stable classification of the error.
        public enum Code: String, Sendable {
            /// The data does not fit in a version 40 symbol at the requested error correction level.
            case tooLong = "too_long"
        }

        /// The classification of this error.
        public var code: Code
        /// What went wrong, for humans.
        public var message: String

        public init(_ code: Code, _ message: String) {
            self.code = code
            self.message = message
        }

        public var description: String { "\(code.rawValue): \(message)" }
    }

    /// The number of modules on each side: 17 + 4 × ``version``, without the quiet zone.
    public let size: Int
    /// The symbol version, 1...40.
    public let version: Int
    /// The data mask pattern applied, 0...7.
    public let mask: Int
    /// The error correction level.
    public let errorCorrection: ErrorCorrection
    /// Row-major modules, `true` = dark.
    private let modules: [Bool]

    /// Encodes the UTF-8 bytes of `text` in byte mode.
    ///
    /// - Throws: ``Error`` with code ``Error/Code/tooLong`` when the bytes do not fit in version 40 at this level
    ///   (2953 bytes at most at low, 2331 at medium, 1663 at quartile, 1273 at high).
    public init(_ text: String, errorCorrection: ErrorCorrection = .low) throws(Error) {
        try self.init(bytes: Array(text.utf8), errorCorrection: errorCorrection)
    }

    /// Encodes `bytes` in byte mode.
    ///
    /// - Throws: ``Error`` with code ``Error/Code/tooLong`` when the bytes do not fit in version 40 at this level.
    public init(bytes: [UInt8], errorCorrection: ErrorCorrection = .low) throws(Error) {
        try self.init(bytes: bytes, errorCorrection: errorCorrection, forcedMask: nil)
    }

    /// Encodes `bytes`, with the given mask pattern instead of the best one when `forcedMask` is not nil.
    init(bytes: [UInt8], errorCorrection: ErrorCorrection, forcedMask: Int?) throws(Error) {
        let unmasked = try Self.unmaskedMatrix(bytes: bytes, errorCorrection: errorCorrection)
        let mask = forcedMask ?? Self.bestMask(unmasked)
        var matrix = unmasked
        matrix.applyMask(mask)
        matrix.drawFormatAndVersion(errorCorrection: errorCorrection, mask: mask)
        self.size = matrix.size
        self.version = matrix.version
        self.mask = mask
        self.errorCorrection = errorCorrection
        self.modules = matrix.modules
    }

    /// Whether the module in column `x`, row `y` is dark; (0, 0) is the top-left module. Coordinates outside
    /// `0..<size` are light (the quiet zone).
    public subscript(x: Int, y: Int) -> Bool {
        guard (0..<size).contains(x), (0..<size).contains(y) else { return false }
        return modules[y * size + x]
    }

    // MARK: Encoding

    /// The penalty score of each of the eight masks for this data (see `QRMatrix.penalty()`).
    static func maskPenalties(bytes: [UInt8], errorCorrection: ErrorCorrection) throws(Error) -> [Int] {
        let unmasked = try unmaskedMatrix(bytes: bytes, errorCorrection: errorCorrection)
        return (0..<8).map { mask in
            var candidate = unmasked
            candidate.applyMask(mask)
            return candidate.penalty()
        }
    }

    /// The mask with the lowest penalty; the lowest-numbered one on a tie.
    private static func bestMask(_ unmasked: QRMatrix) -> Int {
        var best = (mask: 0, penalty: Int.max)
        for mask in 0..<8 {
            var candidate = unmasked
            candidate.applyMask(mask)
            let penalty = candidate.penalty()
            if penalty < best.penalty {
                best = (mask, penalty)
            }
        }
        return best.mask
    }

    /// The symbol of the smallest version that holds the data, with its codewords placed but not yet masked.
    private static func unmaskedMatrix(bytes: [UInt8], errorCorrection: ErrorCorrection) throws(Error) -> QRMatrix {
        guard
            let version = (1...40).first(where: { version in
                let needed = 4 + characterCountBits(version: version) + 8 * bytes.count
                return needed <= 8 * BlockLayout(version: version, errorCorrection: errorCorrection).dataCodewords
            })
        else {
            throw Error(.tooLong, "\(bytes.count) bytes do not fit in a QR code at level \(errorCorrection)")
        }
        let layout = BlockLayout(version: version, errorCorrection: errorCorrection)
        let data = dataCodewords(bytes: bytes, version: version, capacity: layout.dataCodewords)
        var matrix = QRMatrix(version: version)
        matrix.place(codewords: layout.codewords(data: data))
        return matrix
    }

    /// The length of the byte-mode character count indicator (ISO/IEC 18004, Table 3).
    private static func characterCountBits(version: Int) -> Int { version <= 9 ? 8 : 16 }

    /// The bit stream (ISO/IEC 18004, 7.4): mode indicator 0100 (byte), character count, the bytes, a terminator of
    /// up to four 0 bits, 0 bits to a byte boundary, then the pad codewords 11101100 and 00010001 alternately until
    /// the symbol's data capacity is filled.
    private static func dataCodewords(bytes: [UInt8], version: Int, capacity: Int) -> [UInt8] {
        var bits: [Bool] = []
        bits.reserveCapacity(capacity * 8)
        func append(_ value: Int, count: Int) {
            for shift in stride(from: count - 1, through: 0, by: -1) {
                bits.append((value >> shift) & 1 == 1)
            }
        }
        append(0b0100, count: 4)
        append(bytes.count, count: characterCountBits(version: version))
        for byte in bytes {
            append(Int(byte), count: 8)
        }
        append(0, count: min(4, capacity * 8 - bits.count))
        append(0, count: (8 - bits.count % 8) % 8)
        var codewords = stride(from: 0, to: bits.count, by: 8).map { start in
            bits[start..<(start + 8)].reduce(UInt8(0)) { $0 << 1 | ($1 ? 1 : 0) }
        }
        var pad: UInt8 = 0xEC
        while codewords.count < capacity {
            codewords.append(pad)
            pad = pad == 0xEC ? 0x11 : 0xEC
        }
        return codewords
    }
}

// MARK: - Rendering

extension QRCode {
    /// The symbol drawn with Unicode half blocks ("█", "▀", "▄" and space), two module rows per line, for printing in
    /// a terminal; lines are separated by "\n", with no newline after the last one.
    ///
    /// **Dark modules are printed as spaces, and light modules and the quiet zone as block characters.** In a
    /// terminal with light text on a dark background (the common default) this shows dark modules on a light field,
    /// as a scanner expects; the light quiet zone is drawn too, so the terminal's background around it does not
    /// matter. In a terminal with dark text on a light background the code shows inverted (light on dark), which
    /// many scanners refuse: show ``svg(moduleSize:quietZone:)`` there instead.
    ///
    /// - Parameter quietZone: the light border, in modules. The standard asks for 4; 2 is enough for phone cameras
    ///   and saves terminal lines. Negative values count as 0.
    /// - Returns: (size + 2 × quietZone + 1) / 2 lines of size + 2 × quietZone characters each.
    public func terminalText(quietZone: Int = 2) -> String {
        let border = max(0, quietZone)
        let extent = size + 2 * border
        /// Whether a character cell half is drawn: light modules and the quiet zone are; nothing past the extent.
        func ink(_ x: Int, _ y: Int) -> Bool { y < extent && !self[x - border, y - border] }
        var lines: [String] = []
        lines.reserveCapacity((extent + 1) / 2)
        for top in stride(from: 0, to: extent, by: 2) {
            var line = ""
            line.reserveCapacity(extent * 3)
            for x in 0..<extent {
                switch (ink(x, top), ink(x, top + 1)) {
                case (true, true): line += "█"
                case (true, false): line += "▀"
                case (false, true): line += "▄"
                case (false, false): line += " "
                }
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }

    /// A standalone SVG element of the symbol: a white background `<rect>` and one black `<path>` of the dark
    /// modules, with `shape-rendering="crispEdges"` and no external references, to embed in a web page or save as a
    /// `.svg` file.
    ///
    /// The `viewBox` is in modules, `0 0 n n` with n = size + 2 × quietZone; `width` and `height` are n × moduleSize
    /// pixels, and CSS may scale the image freely.
    ///
    /// - Parameters:
    ///   - moduleSize: the side of one module in pixels, for the `width` and `height` attributes; at least 1.
    ///   - quietZone: the light border, in modules (the standard asks for 4). Negative values count as 0.
    public func svg(moduleSize: Int = 8, quietZone: Int = 4) -> String {
        let border = max(0, quietZone)
        let extent = size + 2 * border
        let pixels = extent * max(1, moduleSize)
        var path = ""
        for y in 0..<size {
            var x = 0
            while x < size {
                guard self[x, y] else {
                    x += 1
                    continue
                }
                let start = x
                while x < size && self[x, y] {
                    x += 1
                }
                path += "M\(start + border) \(y + border)h\(x - start)v1h-\(x - start)z"
            }
        }
        return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(pixels)\" height=\"\(pixels)\""
            + " viewBox=\"0 0 \(extent) \(extent)\" shape-rendering=\"crispEdges\">"
            + "<rect width=\"\(extent)\" height=\"\(extent)\" fill=\"#fff\"/>"
            + "<path fill=\"#000\" d=\"\(path)\"/></svg>"
    }
}
