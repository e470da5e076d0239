import Foundation

extension Inspection {
    /// The keys and value sizes of the `local` session store in `directory` (one file per namespace), never the
    /// values — `replay session list --store local`. Sizes are of the stored (sealed, when encrypted) values.
    public static func localSessionEntries(directory: String, namespace: String?) throws -> [SessionEntryReport] {
        let files = LocalSessionFiles(directory: directory)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var reports: [SessionEntryReport] = []
        for name in names.sorted() where name.hasSuffix(".json") {
            guard let decoded = LocalSessionFiles.namespace(fileName: String(name.dropLast(".json".count))),
                namespace == nil || decoded == namespace
            else { continue }
            for (key, entry) in try files.read(decoded).sorted(by: { $0.key < $1.key }) {
                reports.append(
                    SessionEntryReport(
                        namespace: decoded, key: key, bytes: entry.value.count, encrypted: entry.encrypted))
            }
        }
        return reports
    }
}

extension LocalSessionFiles {
    /// The namespace a file name (without `.json`) stands for: the inverse of ``path(_:)``'s `%xx` escapes.
    static func namespace(fileName: String) -> String? {
        var bytes: [UInt8] = []
        var characters = fileName.utf8.makeIterator()
        while let byte = characters.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            var hex = ""
            // `path(_:)` writes the escape without padding: one or two hex digits.
            while hex.count < 2, let next = characters.next() {
                guard let scalar = Unicode.Scalar(UInt32(next)), scalar.properties.isASCIIHexDigit else {
                    return nil
                }
                hex.append(Character(scalar))
            }
            guard let value = UInt8(hex, radix: 16) else { return nil }
            bytes.append(value)
        }
        return String(bytes: bytes, encoding: .utf8)
    }
}
