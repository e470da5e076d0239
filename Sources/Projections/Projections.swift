import EventLog

/// Projections: state derived purely from the log, and the deciders that turn commands into events inside
/// the write transaction. Built in the Projections issue on ``EventLog/transact(_:)``; this module exists so
/// the dependency direction EventLog <- Projections <- Workers <- executables is in place.
public enum Projections {
    /// The event-log module this layer builds on.
    public static let eventLogFormat = "switchboard-eventlog/1"
}
