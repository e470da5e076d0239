import Foundation
import Projections

/// Splits a reply into parts a channel accepts: at most `limit` UTF-16 code units each (Telegram counts
/// `sendMessage` text after entity parsing in UTF-16 units, WhatsApp's `text.body` allows 4096 characters; a
/// UTF-16 count is never below the character count, so it is safe for both).
///
/// A part ends at the last paragraph break that fits, else the last line break, else the last sentence end
/// (`.`, `!`, `?`, `…` followed by a space), else the last space, else at a character boundary — never inside
/// a character. Whitespace at the cut is dropped; nothing else is.
public enum TextSplitter {
    /// Telegram's and WhatsApp's limit for one text message.
    public static let channelLimit = 4096

    /// The parts of `text`, in order; one part when it fits, none when it is empty.
    public static func split(_ text: String, limit: Int = channelLimit) -> [String] {
        precondition(limit >= 16, "a part must hold at least a few characters")
        var parts: [String] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            if rest.utf16.count <= limit {
                parts.append(String(rest))
                break
            }
            // The longest prefix of whole characters within the limit.
            var end = rest.startIndex
            var units = 0
            for index in rest.indices {
                let width = rest[index].utf16.count
                if units + width > limit { break }
                units += width
                end = rest.index(after: index)
            }
            if end == rest.startIndex { end = rest.index(after: rest.startIndex) }  // one oversized character
            let window = rest[rest.startIndex..<end]
            let cut = boundary(in: window) ?? end
            let part = rest[rest.startIndex..<cut]
            let trimmed = part.trimmingTrailingWhitespace
            parts.append(String(trimmed.isEmpty ? part : trimmed))
            rest = rest[cut...].drop { $0.isWhitespace }
        }
        return parts
    }

    /// Where to cut `window`: after its last paragraph break, line break, sentence end or space — whichever
    /// kind comes first in that order and leaves at least a quarter of the window in the part.
    static func boundary(in window: Substring) -> Substring.Index? {
        let minimum = window.index(window.startIndex, offsetBy: window.count / 4)
        func last(_ matches: (Substring.Index) -> Substring.Index?) -> Substring.Index? {
            var index = window.endIndex
            while index > minimum {
                index = window.index(before: index)
                if let cut = matches(index) { return cut }
            }
            return nil
        }
        let characters = window
        // A paragraph: a blank line.
        if let cut = last({ index in
            guard characters[index] == "\n", index > characters.startIndex else { return nil }
            let previous = characters.index(before: index)
            return characters[previous] == "\n" ? characters.index(after: index) : nil
        }) {
            return cut
        }
        if let cut = last({ characters[$0] == "\n" ? characters.index(after: $0) : nil }) { return cut }
        if let cut = last({ index in
            guard ".!?…".contains(characters[index]) else { return nil }
            let next = characters.index(after: index)
            return next < characters.endIndex && characters[next].isWhitespace ? next : nil
        }) {
            return cut
        }
        if let cut = last({ characters[$0] == " " ? characters.index(after: $0) : nil }) { return cut }
        return nil
    }

    /// The deliveries of one reply: one per part, the idempotency key suffixed `#<part>` when there are several
    /// (`part` counts from 0). A reply that fits keeps its key.
    public static func parts(of delivery: NewDelivery, limit: Int = channelLimit) -> [NewDelivery] {
        let texts = split(delivery.text, limit: limit)
        guard texts.count > 1 else { return [delivery] }
        return texts.enumerated().map { index, text in
            var part = delivery
            part.deliveryID = timeOrderedID("d")
            part.idempotencyKey = "\(delivery.idempotencyKey)#\(index)"
            part.part = index
            part.text = text
            // Only the first part threads to the message it answers.
            if index > 0 { part.replyToExternalID = nil }
            return part
        }
    }
}

extension Switchboard {
    /// Enqueues a reply for a channel as one delivery per part that fits the channel (``TextSplitter``), all in
    /// one transaction; returns the first part's enqueue result.
    public func enqueueReply(_ delivery: NewDelivery, limit: Int = TextSplitter.channelLimit) async throws
        -> DeliveryEnqueue
    {
        let parts = TextSplitter.parts(of: delivery, limit: limit)
        guard parts.count > 1 else { return try await enqueueDelivery(delivery) }
        return try await enqueueDeliveries(parts)[0]
    }
}

extension Substring {
    fileprivate var trimmingTrailingWhitespace: Substring {
        var end = endIndex
        while end > startIndex, self[index(before: end)].isWhitespace { end = index(before: end) }
        return self[startIndex..<end]
    }
}
