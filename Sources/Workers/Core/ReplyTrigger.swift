import Projections
import SwitchboardEvents

/// The message a reply job answers.
struct ReplyTrigger: Sendable, Equatable {
    /// The seq of its `message.received`.
    var seq: UInt64
    /// Its provider id (a reply threads to it; WhatsApp's typing indicator marks it read).
    var externalID: String?
}

extension Switchboard {
    /// The message `job` answers, from the job itself (projection format 6). Only for a job whose `job.enqueued`
    /// was written by a build before the provider id was recorded on it is the triggering record read, once.
    func replyTrigger(of job: JobState) throws -> ReplyTrigger? {
        guard let seq = job.triggeringMessageSeq else { return nil }
        if let externalID = job.replyToExternalID { return ReplyTrigger(seq: seq, externalID: externalID) }
        guard let record = try log.records(from: seq, limit: 1).first,
            case .messageReceived(let message)? = try record.event()
        else { return ReplyTrigger(seq: seq, externalID: nil) }
        return ReplyTrigger(seq: seq, externalID: message.externalID)
    }
}
