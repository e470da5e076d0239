import EventLog
import SwitchboardEvents
import Foundation

/// A compact positional binary form for projection state (not for events).
///
/// Fields are written in the order a type's `Codable` conformance encodes them, without names; optionals carry
/// a presence byte; integers are little-endian fixed width; strings and byte arrays are length-prefixed.
/// State is derived from the log, so its format can change freely: a changed format only needs a rebuild.
/// It is about an order of magnitude cheaper than JSON for the writer thread, which matters because every
/// decider reads and the projector rewrites state inside the write transaction.
enum BinaryState {
    /// A hot state type's form, statically dispatched (no dynamic cast to find the hand-written coder).
    static func encode<T: HotState & Encodable>(_ value: T) -> [UInt8] {
        let encoder = BinaryStateEncoder()
        value.write(to: encoder)
        return encoder.bytes
    }

    static func decode<T: HotState & Decodable>(_ type: T.Type, _ bytes: [UInt8]) throws -> T {
        let decoder = BinaryStateDecoder(bytes)
        let value = try T(from: decoder as BinaryStateDecoder)
        guard decoder.offset == bytes.count else { throw BinaryStateDecoder.corrupt("trailing bytes") }
        return value
    }

    static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = BinaryStateEncoder()
        if let hot = value as? any HotState {
            hot.write(to: encoder)
        } else {
            try encoder.encodeValue(value)
        }
        return encoder.bytes
    }

    static func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) throws -> T {
        let decoder = BinaryStateDecoder(bytes)
        let value: T
        if let hot = type as? any HotState.Type {
            value = try hot.init(from: decoder) as! T
        } else {
            value = try decoder.decodeValue(type)
        }
        guard decoder.offset == bytes.count else { throw BinaryStateDecoder.corrupt("trailing bytes") }
        return value
    }
}

// MARK: Encoder

final class BinaryStateEncoder: Encoder {
    // A growable raw buffer: state is encoded on the writer thread for every decision, and appending through
    // `[UInt8]` costs about twice as much per field.
    private var storage: UnsafeMutableRawPointer
    private var capacity = 256
    /// Bytes written so far.
    private(set) var count = 0
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init() { storage = .allocate(byteCount: capacity, alignment: 8) }

    deinit { storage.deallocate() }

    /// The encoded bytes.
    var bytes: [UInt8] { [UInt8](UnsafeRawBufferPointer(start: storage, count: count)) }

    private func reserve(_ more: Int) {
        guard count + more > capacity else { return }
        let grown = max(capacity * 2, count + more)
        let larger = UnsafeMutableRawPointer.allocate(byteCount: grown, alignment: 8)
        larger.copyMemory(from: storage, byteCount: count)
        storage.deallocate()
        storage = larger
        capacity = grown
    }

    func byte(_ value: UInt8) { integer(value) }

    func integer<I: FixedWidthInteger>(_ value: I) {
        reserve(MemoryLayout<I>.size)
        storage.storeBytes(of: value.littleEndian, toByteOffset: count, as: I.self)
        count += MemoryLayout<I>.size
    }

    func append(_ raw: UnsafeRawBufferPointer) {
        guard let base = raw.baseAddress, raw.count > 0 else { return }
        reserve(raw.count)
        (storage + count).copyMemory(from: base, byteCount: raw.count)
        count += raw.count
    }

    /// Overwrites a `UInt32` written earlier at `offset`.
    func patch(_ value: UInt32, at offset: Int) {
        precondition(offset + 4 <= count)
        storage.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt32.self)
    }

    func string(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            integer(UInt32(utf8.count))
            append(UnsafeRawBufferPointer(utf8))
        }
    }

    func encodeValue<T: Encodable>(_ value: T) throws {
        switch value {
        case let v as String: string(v)
        case let v as Int: integer(Int64(v))
        case let v as Int64: integer(v)
        case let v as UInt64: integer(v)
        case let v as Int32: integer(v)
        case let v as UInt32: integer(v)
        case let v as UInt16: integer(v)
        case let v as UInt8: integer(v)
        case let v as Bool: byte(v ? 1 : 0)
        case let v as Int8: integer(v)
        case let v as Int16: integer(v)
        case let v as UInt: integer(UInt64(v))
        case let v as Float: integer(v.bitPattern)
        case let v as [Int64]:
            integer(UInt32(v.count))
            for element in v { integer(element) }
        case let v as Double: integer(v.bitPattern)
        case let v as LogTimestamp: integer(v.microseconds)
        case let v as Data:
            integer(UInt32(v.count))
            v.withUnsafeBytes { append($0) }
        case let v as [String: String]:
            integer(UInt32(v.count))
            for key in v.keys.sorted() {
                string(key)
                string(v[key]!)
            }
        default:
            try value.encode(to: self)
        }
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        KeyedEncodingContainer(KeyedContainer<Key>(encoder: self))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer { UnkeyedContainer(encoder: self) }
    func singleValueContainer() -> any SingleValueEncodingContainer { SingleContainer(encoder: self) }

    struct KeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
        let encoder: BinaryStateEncoder
        var codingPath: [any CodingKey] { [] }

        mutating func encodeNil(forKey key: Key) throws { encoder.byte(0) }
        mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws { try encoder.encodeValue(value) }
        mutating func encode(_ value: String, forKey key: Key) throws { encoder.string(value) }
        mutating func encode(_ value: Int, forKey key: Key) throws { encoder.integer(Int64(value)) }
        mutating func encode(_ value: Int64, forKey key: Key) throws { encoder.integer(value) }
        mutating func encode(_ value: UInt64, forKey key: Key) throws { encoder.integer(value) }
        mutating func encode(_ value: Int32, forKey key: Key) throws { encoder.integer(value) }
        mutating func encode(_ value: UInt32, forKey key: Key) throws { encoder.integer(value) }
        mutating func encode(_ value: UInt16, forKey key: Key) throws { encoder.integer(value) }
        mutating func encode(_ value: UInt8, forKey key: Key) throws { encoder.integer(value) }
        mutating func encode(_ value: Bool, forKey key: Key) throws { encoder.byte(value ? 1 : 0) }
        mutating func encodeIfPresent(_ value: String?, forKey key: Key) throws {
            if let value {
                encoder.byte(1)
                encoder.string(value)
            } else {
                encoder.byte(0)
            }
        }
        mutating func encodeIfPresent(_ value: UInt64?, forKey key: Key) throws {
            if let value {
                encoder.byte(1)
                encoder.integer(value)
            } else {
                encoder.byte(0)
            }
        }
        mutating func encodeIfPresent<T: Encodable>(_ value: T?, forKey key: Key) throws {
            if let value {
                encoder.byte(1)
                try encoder.encodeValue(value)
            } else {
                encoder.byte(0)
            }
        }
        mutating func encodeIfPresent(_ value: Int?, forKey key: Key) throws { try encodeIfPresent(value as Int?, key) }
        mutating func encodeIfPresent(_ value: Int64?, forKey key: Key) throws {
            try encodeIfPresent(value as Int64?, key)
        }
        mutating func encodeIfPresent(_ value: Bool?, forKey key: Key) throws {
            try encodeIfPresent(value as Bool?, key)
        }
        mutating func encodeIfPresent(_ value: Double?, forKey key: Key) throws {
            try encodeIfPresent(value as Double?, key)
        }
        mutating func encodeIfPresent(_ value: Float?, forKey key: Key) throws {
            try encodeIfPresent(value as Float?, key)
        }
        mutating func encodeIfPresent(_ value: Int8?, forKey key: Key) throws {
            try encodeIfPresent(value as Int8?, key)
        }
        mutating func encodeIfPresent(_ value: Int16?, forKey key: Key) throws {
            try encodeIfPresent(value as Int16?, key)
        }
        mutating func encodeIfPresent(_ value: Int32?, forKey key: Key) throws {
            try encodeIfPresent(value as Int32?, key)
        }
        mutating func encodeIfPresent(_ value: UInt?, forKey key: Key) throws {
            try encodeIfPresent(value as UInt?, key)
        }
        mutating func encodeIfPresent(_ value: UInt8?, forKey key: Key) throws {
            try encodeIfPresent(value as UInt8?, key)
        }
        mutating func encodeIfPresent(_ value: UInt16?, forKey key: Key) throws {
            try encodeIfPresent(value as UInt16?, key)
        }
        mutating func encodeIfPresent(_ value: UInt32?, forKey key: Key) throws {
            try encodeIfPresent(value as UInt32?, key)
        }
        private mutating func encodeIfPresent<T: Encodable>(_ value: T?, _ key: Key) throws {
            if let value {
                encoder.byte(1)
                try encoder.encodeValue(value)
            } else {
                encoder.byte(0)
            }
        }
        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key)
            -> KeyedEncodingContainer<NestedKey>
        { encoder.container(keyedBy: keyType) }
        mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
            encoder.unkeyedContainer()
        }
        mutating func superEncoder() -> any Encoder { encoder }
        mutating func superEncoder(forKey key: Key) -> any Encoder { encoder }
    }

    /// Unkeyed containers (arrays) are length-prefixed: the count is patched in when the array ends, so the
    /// count slot is reserved now and filled on each element.
    struct UnkeyedContainer: UnkeyedEncodingContainer {
        let encoder: BinaryStateEncoder
        let countOffset: Int
        var codingPath: [any CodingKey] { [] }
        var count = 0

        init(encoder: BinaryStateEncoder) {
            self.encoder = encoder
            countOffset = encoder.count
            encoder.integer(UInt32(0))
        }

        private mutating func bump() {
            count += 1
            encoder.patch(UInt32(count), at: countOffset)
        }

        mutating func encodeNil() throws {
            encoder.byte(0)
            bump()
        }
        mutating func encode<T: Encodable>(_ value: T) throws {
            try encoder.encodeValue(value)
            bump()
        }
        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type)
            -> KeyedEncodingContainer<NestedKey>
        {
            bump()
            return encoder.container(keyedBy: keyType)
        }
        mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
            bump()
            return encoder.unkeyedContainer()
        }
        mutating func superEncoder() -> any Encoder { encoder }
    }

    struct SingleContainer: SingleValueEncodingContainer {
        let encoder: BinaryStateEncoder
        var codingPath: [any CodingKey] { [] }
        mutating func encodeNil() throws { encoder.byte(0) }
        mutating func encode<T: Encodable>(_ value: T) throws { try encoder.encodeValue(value) }
    }
}
