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

    public init(_ outcome: Outcome, events: [SwitchboardEvent] = []) {
        self.outcome = outcome
        self.events = events
    }
}

extension WriteContext {
    /// Appends a decision's events (each applied to the projections as it is appended) and returns its
    /// outcome.
    public mutating func commit<Outcome>(_ decision: Decision<Outcome>) throws -> Outcome {
        for event in decision.events { try append(event) }
        return decision.outcome
    }
}
