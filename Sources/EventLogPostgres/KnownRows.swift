/// What a PostgreSQL writer knows of the `kv` table as it stands at the start of a group: rows it read or wrote
/// (keys known absent too), and per table the key ranges of which it holds **every** row, so that a point read or a
/// scan inside one costs no round trip (the claim indexes a decider scans at every claim are small and always
/// covered after their first scan). Valid only while no other process has committed since; the writer drops it
/// otherwise.
struct KnownRows {
    /// Rows by table id and key: a stored value, or `nil` for a key known absent.
    var rows: [UInt32: [RowKey: [UInt8]?]] = [:]
    /// Per table, the ranges of keys of which `rows` holds every stored row.
    var complete: [UInt32: KeyRanges] = [:]
    /// Tables a group tried to load whole since these rows were first known.
    var loaded: Set<UInt32> = []

    /// How many rows (absent keys included) this holds.
    var count: Int { rows.values.reduce(0) { $0 + $1.count } }

    /// Whether `key` of `table` lies in a range of which every row is known.
    func covers(_ table: UInt32, _ key: [UInt8]) -> Bool {
        complete[table]?.end(covering: key) != nil
    }
}

/// Disjoint closed ranges of keys `[low, high]` in LMDB's key order (memcmp, the shorter key first on a common
/// prefix), sorted; a `nil` high runs to the end of the table.
struct KeyRanges: Equatable {
    struct Range: Equatable {
        var low: [UInt8]
        var high: [UInt8]?
    }

    private(set) var ranges: [Range] = []

    /// The high end of the range holding `key`: `.some(nil)` when that range runs to the table's end, `nil` when no
    /// range holds it.
    func end(covering key: [UInt8]) -> [UInt8]?? {
        // The last range starting at or before `key`.
        var low = 0
        var high = ranges.count
        while low < high {
            let middle = (low + high) / 2
            if precedes(key, ranges[middle].low) { high = middle } else { low = middle + 1 }
        }
        guard low > 0 else { return nil }
        let range = ranges[low - 1]
        if let end = range.high, precedes(end, key) { return nil }
        return .some(range.high)
    }

    /// Adds `[low, high]`, merged with the ranges it overlaps.
    mutating func insert(low: [UInt8], high: [UInt8]?) {
        if let high, precedes(high, low) { return }
        // The first range that does not end before `low`.
        var first = 0
        var last = ranges.count
        while first < last {
            let middle = (first + last) / 2
            if let end = ranges[middle].high, precedes(end, low) { first = middle + 1 } else { last = middle }
        }
        var merged = Range(low: low, high: high)
        var end = first
        while end < ranges.count, high == nil || !precedes(high!, ranges[end].low) {
            let range = ranges[end]
            if precedes(range.low, merged.low) { merged.low = range.low }
            if let mergedHigh = merged.high {
                merged.high = range.high.map { precedes(mergedHigh, $0) ? $0 : mergedHigh }
            }
            end += 1
        }
        ranges.replaceSubrange(first..<end, with: [merged])
    }
}

/// A table key as a dictionary key: hashed as one run of bytes (an array of bytes hashes byte by byte, the writer's
/// largest cost once its reads are answered from memory).
struct RowKey: Hashable {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }
}

/// Stored rows in key order, keys and values apart, so a range is read without hashing a key.
struct SortedRows {
    private(set) var keys: [[UInt8]] = []
    private(set) var values: [[UInt8]] = []

    /// The rows of `rows` holding a value.
    init(_ rows: [RowKey: [UInt8]?]) {
        let sorted = rows.compactMap { key, value in value.map { (key.bytes, $0) } }.sorted { precedes($0.0, $1.0) }
        keys = sorted.map(\.0)
        values = sorted.map(\.1)
    }

    /// Adds a row whose key is not here yet.
    mutating func insert(_ key: [UInt8], _ value: [UInt8]) {
        let index = keys.firstIndex(notBefore: key)
        keys.insert(key, at: index)
        values.insert(value, at: index)
    }
}

/// LMDB's key order: memcmp, the shorter key first on a common prefix.
@inline(__always)
func precedes(_ a: [UInt8], _ b: [UInt8]) -> Bool { a.lexicographicallyPrecedes(b) }

extension Array where Element == [UInt8] {
    /// In a sorted array, the index of the first key at or after `key`.
    func firstIndex(notBefore key: [UInt8]) -> Int {
        var low = 0
        var high = count
        while low < high {
            let middle = (low + high) / 2
            if precedes(self[middle], key) { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// In a sorted array, the index of the first key after `key`.
    func firstIndex(after key: [UInt8]) -> Int {
        var low = 0
        var high = count
        while low < high {
            let middle = (low + high) / 2
            if precedes(key, self[middle]) { high = middle } else { low = middle + 1 }
        }
        return low
    }

    /// Inserts `key` (not present) where it keeps the array sorted.
    mutating func insertSorted(_ key: [UInt8]) {
        insert(key, at: firstIndex(notBefore: key))
    }
}
