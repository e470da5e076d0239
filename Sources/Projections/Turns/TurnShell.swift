import EventLog
import SwitchboardEvents

// MARK: Shell

/// The TurnDecider's shell: loads its state inside the write transaction, calls the pure decider with the
/// transaction's log time and next seq, and appends its events.
public enum TurnShell {
    typealias T = ProjectionTables

    /// Loads the job and the stored calls `events` name, decides, and appends.
    public static func record(
        _ events: [SwitchboardEvent], jobID: String, token: UInt64, owner: Owner, _ context: inout WriteContext
    ) throws -> TurnWriteResult {
        let tables = context.tables
        let job = try tables.load(JobState.self, T.jobs, Key(jobID))
        var calls: [String: ToolCallState] = [:]
        for event in events {
            let callID: String
            switch event {
            case .toolCall(let e): callID = e.callID
            case .toolApproval(let e): callID = e.callID
            case .toolResult(let e): callID = e.callID
            default: continue
            }
            if calls[callID] == nil, let call = try tables.load(ToolCallState.self, T.toolCalls, Key(callID)) {
                calls[callID] = call
            }
        }
        return try context.commit(
            TurnDecider.record(
                events, job: job, jobID: jobID, token: token, owner: owner, calls: calls, now: context.now,
                nextSeq: context.nextSeq))
    }

    public static func answer(callID: String, approve: Bool, by: String, _ context: inout WriteContext) throws
        -> ApprovalAnswer
    {
        let call = try context.tables.load(ToolCallState.self, T.toolCalls, Key(callID))
        return try context.commit(TurnDecider.answer(call, callID: callID, approve: approve, by: by, now: context.now))
    }

    public static func expire(_ context: inout WriteContext) throws -> [String] {
        let tables = context.tables
        let now = context.now
        var due: [ToolCallState] = []
        var callIDs: [String] = []
        try tables.scan(tables.table(T.approvalsDue)) { key, _ in
            guard key.count > 9, dueTime(key) < orderKey(now) else { return false }
            callIDs.append(String(decoding: key[9...], as: UTF8.self))
            return true
        }
        for callID in callIDs {
            if let call = try tables.load(ToolCallState.self, T.toolCalls, Key(callID)) { due.append(call) }
        }
        return try context.commit(TurnDecider.expire(due, now: now))
    }

    static func dueTime(_ key: [UInt8]) -> UInt64 {
        key.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }
}

// MARK: Engine
