/// One server-sent event: its `event` name (empty for the default) and its `data` lines joined with newlines.
public struct ServerSentEvent: Sendable, Hashable {
    public var event: String
    public var data: String

    public init(event: String = "", data: String) {
        self.event = event
        self.data = data
    }
}

/// An incremental parser of the `text/event-stream` format (WHATWG HTML §9.2): feed it bytes as they arrive, in
/// chunks of any size, and it returns the events completed so far.
///
/// Lines end with LF, CRLF or CR (a CR at the end of a chunk waits for the next chunk to tell whether LF follows);
/// `data:` lines accumulate, a blank line dispatches, lines starting with `:` are comments, a single space after
/// the colon is dropped, `id`/`retry` and unknown fields are ignored. Bytes are split into lines first and decoded
/// as UTF-8 per line, so a multi-byte character split across chunks stays whole.
public struct ServerSentEventParser: Sendable {
    private var line: [UInt8] = []
    private var data: [String] = []
    private var event = ""
    private var sawCarriageReturn = false
    /// The longest line accepted, so a stream without newlines cannot grow memory without bound.
    public let maxLineBytes: Int

    /// A line longer than ``maxLineBytes``.
    public struct LineTooLong: Error, Sendable, Hashable {}

    public init(maxLineBytes: Int = 4 << 20) {
        self.maxLineBytes = maxLineBytes
    }

    /// Consumes `bytes` and returns the events they complete.
    public mutating func feed(_ bytes: some Sequence<UInt8>) throws(LineTooLong) -> [ServerSentEvent] {
        var events: [ServerSentEvent] = []
        for byte in bytes {
            if sawCarriageReturn {
                sawCarriageReturn = false
                if byte == UInt8(ascii: "\n") { continue }
            }
            switch byte {
            case UInt8(ascii: "\n"):
                if let event = endLine() { events.append(event) }
            case UInt8(ascii: "\r"):
                sawCarriageReturn = true
                if let event = endLine() { events.append(event) }
            default:
                guard line.count < maxLineBytes else { throw LineTooLong() }
                line.append(byte)
            }
        }
        return events
    }

    /// Ends the stream: a last event without its blank line is dispatched (servers that close right after
    /// `data: [DONE]` are common), an incomplete last line is taken as a line.
    public mutating func finish() -> ServerSentEvent? {
        var last: ServerSentEvent?
        if !line.isEmpty { last = endLine() }
        if last == nil, !data.isEmpty { last = dispatch() }
        return last
    }

    private mutating func endLine() -> ServerSentEvent? {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty { return dispatch() }
        if line.first == UInt8(ascii: ":") { return nil }
        let text = String(decoding: line, as: UTF8.self)
        let field: Substring
        var value: Substring
        if let colon = text.firstIndex(of: ":") {
            field = text[..<colon]
            value = text[text.index(after: colon)...]
            if value.first == " " { value = value.dropFirst() }
        } else {
            field = text[...]
            value = ""
        }
        switch field {
        case "data": data.append(String(value))
        case "event": event = String(value)
        default: break
        }
        return nil
    }

    private mutating func dispatch() -> ServerSentEvent? {
        defer {
            data.removeAll()
            event = ""
        }
        guard !data.isEmpty else { return nil }
        return ServerSentEvent(event: event, data: data.joined(separator: "\n"))
    }
}
