/// Reed–Solomon error correction codewords over GF(2⁸) as QR codes use them (ISO/IEC 18004, 7.5.2): the field is
/// built on the primitive polynomial x⁸ + x⁴ + x³ + x² + 1 (0x11D), and the generator polynomial of degree n is
/// (x − α⁰)(x − α¹)…(x − αⁿ⁻¹) with α = 2.
enum ReedSolomon {
    /// `exp[i]` is αⁱ, stored twice over (510 entries) so a sum of two logarithms needs no modulo; `log[v]` is the
    /// logarithm of v for v in 1...255.
    private static let field: (exp: [UInt8], log: [UInt8]) = {
        var exp = [UInt8](repeating: 0, count: 510)
        var log = [UInt8](repeating: 0, count: 256)
        var value = 1
        for power in 0..<255 {
            exp[power] = UInt8(value)
            exp[power + 255] = UInt8(value)
            log[value] = UInt8(power)
            value <<= 1
            if value > 0xFF {
                value ^= 0x11D
            }
        }
        return (exp, log)
    }()

    /// The product of two field elements.
    static func multiply(_ a: UInt8, _ b: UInt8) -> UInt8 {
        if a == 0 || b == 0 {
            return 0
        }
        return field.exp[Int(field.log[Int(a)]) + Int(field.log[Int(b)])]
    }

    /// The coefficients of the generator polynomial of the given degree, highest power first; the first one is 1.
    static func generator(degree: Int) -> [UInt8] {
        var polynomial: [UInt8] = [1]
        for power in 0..<degree {
            // Multiply by (x + αᵖᵒʷᵉʳ); in characteristic 2, subtraction is addition is XOR.
            let root = field.exp[power]
            var product = [UInt8](repeating: 0, count: polynomial.count + 1)
            for (index, coefficient) in polynomial.enumerated() {
                product[index] ^= coefficient
                product[index + 1] ^= multiply(coefficient, root)
            }
            polynomial = product
        }
        return polynomial
    }

    /// The error correction codewords of `data`: the remainder of data(x)·xⁿ divided by the generator polynomial,
    /// n = `generator.count - 1` codewords, highest power first.
    static func remainder(of data: [UInt8], generator: [UInt8]) -> [UInt8] {
        let degree = generator.count - 1
        var remainder = [UInt8](repeating: 0, count: degree)
        for codeword in data {
            let factor = codeword ^ remainder[0]
            remainder.removeFirst()
            remainder.append(0)
            if factor != 0 {
                for index in 0..<degree {
                    remainder[index] ^= multiply(generator[index + 1], factor)
                }
            }
        }
        return remainder
    }
}

/// How the codewords of one version and error correction level divide into blocks, and the final interleaved
/// codeword sequence (ISO/IEC 18004, 7.5.1, Table 9, and 7.6).
///
/// A version has a fixed number of codewords; the level fixes how many error correction codewords each block carries
/// and how many blocks there are. When the codewords do not divide evenly, the last blocks hold one more data codeword
/// than the first ones.
struct BlockLayout: Sendable {
    /// All codewords of the symbol, data and error correction.
    let totalCodewords: Int
    /// Error correction codewords in each block.
    let errorCorrectionPerBlock: Int
    /// Number of blocks.
    let blockCount: Int

    /// Data codewords of the symbol: its capacity for the encoded bit stream, in bytes.
    var dataCodewords: Int { totalCodewords - errorCorrectionPerBlock * blockCount }

    init(version: Int, errorCorrection: QRCode.ErrorCorrection) {
        let level = errorCorrection.tableIndex
        totalCodewords = QRMatrix.dataModuleCount(version: version) / 8
        errorCorrectionPerBlock = Self.errorCorrectionCodewordsPerBlock[level][version - 1]
        blockCount = Self.blocks[level][version - 1]
    }

    /// The data codewords split into blocks, each followed by its error correction codewords, interleaved: the first
    /// data codeword of every block, then the second..., then the error correction codewords in the same way.
    func codewords(data: [UInt8]) -> [UInt8] {
        precondition(data.count == dataCodewords, "the data must fill the symbol's data codewords exactly")
        let longBlocks = totalCodewords % blockCount
        let shortBlockData = totalCodewords / blockCount - errorCorrectionPerBlock
        let generator = ReedSolomon.generator(degree: errorCorrectionPerBlock)
        var dataBlocks: [[UInt8]] = []
        var errorCorrectionBlocks: [[UInt8]] = []
        var start = 0
        for block in 0..<blockCount {
            let length = shortBlockData + (block < blockCount - longBlocks ? 0 : 1)
            let blockData = Array(data[start..<(start + length)])
            start += length
            dataBlocks.append(blockData)
            errorCorrectionBlocks.append(ReedSolomon.remainder(of: blockData, generator: generator))
        }
        var result: [UInt8] = []
        result.reserveCapacity(totalCodewords)
        for index in 0...shortBlockData {
            for block in dataBlocks where index < block.count {
                result.append(block[index])
            }
        }
        for index in 0..<errorCorrectionPerBlock {
            for block in errorCorrectionBlocks {
                result.append(block[index])
            }
        }
        return result
    }

    // ISO/IEC 18004 Table 9, by level (L, M, Q, H), then by version 1...40.

    private static let errorCorrectionCodewordsPerBlock: [[Int]] = [
        [
            7, 10, 15, 20, 26, 18, 20, 24, 30, 18, 20, 24, 26, 30, 22, 24, 28, 30, 28, 28,
            28, 28, 30, 30, 26, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30,
        ],
        [
            10, 16, 26, 18, 24, 16, 18, 22, 22, 26, 30, 22, 22, 24, 24, 28, 28, 26, 26, 26,
            26, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28,
        ],
        [
            13, 22, 18, 26, 18, 24, 18, 22, 20, 24, 28, 26, 24, 20, 30, 24, 28, 28, 26, 30,
            28, 30, 30, 30, 30, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30,
        ],
        [
            17, 28, 22, 16, 22, 28, 26, 26, 24, 28, 24, 28, 22, 24, 24, 30, 28, 28, 26, 28,
            30, 24, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30,
        ],
    ]

    private static let blocks: [[Int]] = [
        [
            1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4, 4, 6, 6, 6, 6, 7, 8,
            8, 9, 9, 10, 12, 12, 12, 13, 14, 15, 16, 17, 18, 19, 19, 20, 21, 22, 24, 25,
        ],
        [
            1, 1, 1, 2, 2, 4, 4, 4, 5, 5, 5, 8, 9, 9, 10, 10, 11, 13, 14, 16,
            17, 17, 18, 20, 21, 23, 25, 26, 28, 29, 31, 33, 35, 37, 38, 40, 43, 45, 47, 49,
        ],
        [
            1, 1, 2, 2, 4, 4, 6, 6, 8, 8, 8, 10, 12, 16, 12, 17, 16, 18, 21, 20,
            23, 23, 25, 27, 29, 34, 34, 35, 38, 40, 43, 45, 48, 51, 53, 56, 59, 62, 65, 68,
        ],
        [
            1, 1, 2, 4, 4, 4, 5, 6, 8, 8, 11, 11, 16, 16, 18, 16, 19, 21, 25, 25,
            25, 34, 30, 32, 35, 37, 40, 42, 45, 48, 51, 54, 57, 60, 63, 66, 70, 74, 77, 81,
        ],
    ]
}
