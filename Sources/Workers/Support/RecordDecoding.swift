import EventLog
import Logging
import SwitchboardEvents

extension Record {
    /// The record's event for a follower of the tail, or `nil` for a type this build does not know. A payload
    /// that does not decode is logged with its seq (an operator's `replay verify` names it too) and the follower
    /// goes on: its decisions read projection state, never this event.
    func followedEvent(_ logger: Logger) -> SwitchboardEvent? {
        do {
            return try event()
        } catch {
            logger.error(
                "event.undecodable",
                metadata: ["event.seq": "\(seq)", "event.type": "\(type)", "error": "\(error)"])
            return nil
        }
    }
}
