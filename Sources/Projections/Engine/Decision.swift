import EventLog
import SwitchboardEvents

/// What a decider decided: a typed outcome and the events that record it, in the order they are appended.
///
/// Deciders are pure functions of (state, command, log time, next seq) → `Decision`: no LMDB, no clock, no
/// I/O, so they are tested table-driven in microseconds. A thin shell inside the write transaction loads the
/// state the decider needs, calls it, and appends ``events`` (see ``WriteContext/commit(_:)``).
public struct Decision<Outcome: Sendable>: Sendable {
    /// The typed result returned to the caller.
    public var outcome: Outcome
    /// The events to append, in order (the first gets the `nextSeq` the decider was given).
    public var events: [SwitchboardEvent]
    /// The correlation id recorded with each of ``events`` (by index; missing entries mean none), e.g. the
    /// conversation a job event concerns.
    public var correlationIDs: [String?]

    public init(_ outcome: Outcome, events: [SwitchboardEvent] = [], correlationIDs: [String?] = []) {
        self.outcome = outcome
        self.events = events
        self.correlationIDs = correlationIDs
    }
}

extension WriteContext {
    /// Appends a decision's events (each applied to the projections as it is appended) and returns its
    /// outcome.
    public mutating func commit<Outcome>(_ decision: Decision<Outcome>) throws -> Outcome {
        for (index, event) in decision.events.enumerated() {
            let correlationID = index < decision.correlationIDs.count ? decision.correlationIDs[index] : nil
            try append(event, correlationID: correlationID)
        }
        return decision.outcome
    }
}
