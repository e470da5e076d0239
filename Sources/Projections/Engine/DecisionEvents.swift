import SwitchboardEvents

/// The events a decider has decided so far, each with its correlation id; ``decision(_:)`` closes them with the
/// outcome.
struct DecisionEvents {
    private(set) var events: [SwitchboardEvent] = []
    private(set) var correlationIDs: [String?] = []
    /// The seq the first event will get.
    let firstSeq: UInt64

    init(firstSeq: UInt64) { self.firstSeq = firstSeq }

    /// The seq the next appended event will get (a claim's token is the seq of its claim event).
    var nextSeq: UInt64 { firstSeq + UInt64(events.count) }

    mutating func append(_ event: SwitchboardEvent, correlationID: String? = nil) {
        events.append(event)
        correlationIDs.append(correlationID)
    }

    /// Appends another decider's events with their correlation ids (a decision composed of several deciders').
    mutating func append<Outcome>(_ decision: Decision<Outcome>) {
        for (index, event) in decision.events.enumerated() {
            append(event, correlationID: index < decision.correlationIDs.count ? decision.correlationIDs[index] : nil)
        }
    }

    func decision<Outcome>(_ outcome: Outcome) -> Decision<Outcome> {
        Decision(outcome, events: events, correlationIDs: correlationIDs)
    }
}
