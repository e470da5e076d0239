import EventLog
import Foundation
import SwitchboardEvents

/// Reads the positional binary form ``BinaryStateEncoder`` writes (see ``BinaryState``).
// MARK: Decoder

final class BinaryStateDecoder: Decoder {
    let bytes: [UInt8]
    var offset = 0
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    static func corrupt(_ what: String) -> DecodingError {
        .dataCorrupted(DecodingError.Context(codingPath: [], debugDescription: "binary state: \(what)"))
    }

    func integer<I: FixedWidthInteger>(_ type: I.Type) throws -> I {
        let size = MemoryLayout<I>.size
        guard offset + size <= bytes.count else { throw Self.corrupt("truncated") }
        let value = bytes.withUnsafeBytes { I(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: I.self)) }
        offset += size
        return value
    }

    func raw(_ count: Int) throws -> ArraySlice<UInt8> {
        guard count >= 0, offset + count <= bytes.count else { throw Self.corrupt("truncated") }
        defer { offset += count }
        return bytes[offset..<offset + count]
    }

    func string() throws -> String {
        let count = Int(try integer(UInt32.self))
        return String(decoding: try raw(count), as: UTF8.self)
    }

    func flag() throws -> Bool { try integer(UInt8.self) != 0 }

    func decodeValue<T: Decodable>(_ type: T.Type) throws -> T {
        if T.self == String.self { return try string() as! T }
        if T.self == Int.self { return Int(try integer(Int64.self)) as! T }
        if T.self == Int64.self { return try integer(Int64.self) as! T }
        if T.self == UInt64.self { return try integer(UInt64.self) as! T }
        if T.self == Int32.self { return try integer(Int32.self) as! T }
        if T.self == UInt32.self { return try integer(UInt32.self) as! T }
        if T.self == UInt16.self { return try integer(UInt16.self) as! T }
        if T.self == UInt8.self { return try integer(UInt8.self) as! T }
        if T.self == Bool.self { return try flag() as! T }
        if T.self == Int8.self { return try integer(Int8.self) as! T }
        if T.self == Int16.self { return try integer(Int16.self) as! T }
        if T.self == UInt.self { return UInt(try integer(UInt64.self)) as! T }
        if T.self == Float.self { return Float(bitPattern: try integer(UInt32.self)) as! T }
        if T.self == [Int64].self {
            let count = Int(try integer(UInt32.self))
            guard count <= (bytes.count - offset) / 8 else { throw Self.corrupt("bad array length") }
            var out: [Int64] = []
            out.reserveCapacity(count)
            for _ in 0..<count { out.append(try integer(Int64.self)) }
            return out as! T
        }
        if T.self == Double.self { return Double(bitPattern: try integer(UInt64.self)) as! T }
        if T.self == LogTimestamp.self { return LogTimestamp(microseconds: try integer(Int64.self)) as! T }
        if T.self == Data.self { return Data(try raw(Int(try integer(UInt32.self)))) as! T }
        if T.self == [String: String].self {
            let count = Int(try integer(UInt32.self))
            var out: [String: String] = [:]
            out.reserveCapacity(count)
            for _ in 0..<count { out[try string()] = try string() }
            return out as! T
        }
        return try T(from: self)
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(KeyedContainer<Key>(decoder: self))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer { try UnkeyedContainer(decoder: self) }
    func singleValueContainer() throws -> any SingleValueDecodingContainer { SingleContainer(decoder: self) }

    struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
        let decoder: BinaryStateDecoder
        var codingPath: [any CodingKey] { [] }
        var allKeys: [Key] { [] }

        func contains(_ key: Key) -> Bool { true }
        func decodeNil(forKey key: Key) throws -> Bool { try !decoder.flag() }
        func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try decoder.decodeValue(type) }
        func decode(_ type: String.Type, forKey key: Key) throws -> String { try decoder.string() }
        func decode(_ type: Int.Type, forKey key: Key) throws -> Int { Int(try decoder.integer(Int64.self)) }
        func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try decoder.integer(Int64.self) }
        func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try decoder.integer(UInt64.self) }
        func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try decoder.integer(Int32.self) }
        func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try decoder.integer(UInt32.self) }
        func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try decoder.integer(UInt16.self) }
        func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try decoder.integer(UInt8.self) }
        func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try decoder.flag() }
        func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? {
            try decoder.flag() ? try decoder.string() : nil
        }
        func decodeIfPresent(_ type: UInt64.Type, forKey key: Key) throws -> UInt64? {
            try decoder.flag() ? try decoder.integer(UInt64.self) : nil
        }
        func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
            try decoder.flag() ? try decoder.decodeValue(type) : nil
        }
        func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws -> Int? { try present(type) }
        func decodeIfPresent(_ type: Int64.Type, forKey key: Key) throws -> Int64? { try present(type) }
        func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? { try present(type) }
        func decodeIfPresent(_ type: Double.Type, forKey key: Key) throws -> Double? { try present(type) }
        func decodeIfPresent(_ type: Float.Type, forKey key: Key) throws -> Float? { try present(type) }
        func decodeIfPresent(_ type: Int8.Type, forKey key: Key) throws -> Int8? { try present(type) }
        func decodeIfPresent(_ type: Int16.Type, forKey key: Key) throws -> Int16? { try present(type) }
        func decodeIfPresent(_ type: Int32.Type, forKey key: Key) throws -> Int32? { try present(type) }
        func decodeIfPresent(_ type: UInt.Type, forKey key: Key) throws -> UInt? { try present(type) }
        func decodeIfPresent(_ type: UInt8.Type, forKey key: Key) throws -> UInt8? { try present(type) }
        func decodeIfPresent(_ type: UInt16.Type, forKey key: Key) throws -> UInt16? { try present(type) }
        func decodeIfPresent(_ type: UInt32.Type, forKey key: Key) throws -> UInt32? { try present(type) }
        private func present<T: Decodable>(_ type: T.Type) throws -> T? {
            try decoder.flag() ? try decoder.decodeValue(type) : nil
        }
        func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
            -> KeyedDecodingContainer<NestedKey>
        { try decoder.container(keyedBy: type) }
        func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
            try decoder.unkeyedContainer()
        }
        func superDecoder() throws -> any Decoder { decoder }
        func superDecoder(forKey key: Key) throws -> any Decoder { decoder }
    }

    struct UnkeyedContainer: UnkeyedDecodingContainer {
        let decoder: BinaryStateDecoder
        var codingPath: [any CodingKey] { [] }
        let count: Int?
        var currentIndex = 0
        var isAtEnd: Bool { currentIndex >= (count ?? 0) }

        init(decoder: BinaryStateDecoder) throws {
            self.decoder = decoder
            count = Int(try decoder.integer(UInt32.self))
        }

        mutating func decodeNil() throws -> Bool {
            let isNil = try !decoder.flag()
            currentIndex += 1
            return isNil
        }
        mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
            currentIndex += 1
            return try decoder.decodeValue(type)
        }
        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws
            -> KeyedDecodingContainer<NestedKey>
        {
            currentIndex += 1
            return try decoder.container(keyedBy: type)
        }
        mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
            currentIndex += 1
            return try decoder.unkeyedContainer()
        }
        mutating func superDecoder() throws -> any Decoder { decoder }
    }

    struct SingleContainer: SingleValueDecodingContainer {
        let decoder: BinaryStateDecoder
        var codingPath: [any CodingKey] { [] }
        func decodeNil() -> Bool { (try? decoder.flag()).map { !$0 } ?? true }
        func decode<T: Decodable>(_ type: T.Type) throws -> T { try decoder.decodeValue(type) }
    }
}
