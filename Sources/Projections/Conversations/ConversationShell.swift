import EventLog
import SwitchboardEvents

/// The conversation controls' shell: loads their state inside the write transaction, calls
/// ``ConversationDecider``, and appends its events.
public enum ConversationShell {
    typealias T = ProjectionTable

    static func conversation(_ id: String, _ tables: some TableReading) throws -> ConversationState? {
        try tables.load(ConversationState.self, T.conversations, Key(id))
    }

    /// The conversation's pending and running jobs: those running (`p.job_running`), the one it may run next
    /// (`p.job_ready`) and those waiting behind it (`p.conversation_jobs`).
    static func activeJobs(_ conversationID: String, _ tables: some TableReading) throws -> [JobState] {
        var ids: [String] = []
        try tables.scan(tables.table(T.jobRunning)) { _, value in
            ids.append(String(decoding: value, as: UTF8.self))
            return true
        }
        let key = Key(conversationID)
        if let queue = try tables.load(ConversationQueueState.self, T.conversationQueues, key), !queue.ready.isEmpty,
            let id = try tables.get(tables.table(T.jobReady), queue.ready)
        {
            ids.append(String(decoding: id, as: UTF8.self))
        }
        let prefix = key.prefix
        try tables.scan(tables.table(T.conversationJobs), from: prefix) { key, value in
            guard hasPrefix(key, prefix) else { return false }
            ids.append(String(decoding: value, as: UTF8.self))
            return true
        }
        return try ids.compactMap { try tables.load(JobState.self, T.jobs, Key($0)) }
            .filter { $0.conversationID == conversationID && ($0.status == .pending || $0.status == .running) }
    }

    /// Stops `jobID` (``ConversationDecider/stop(conversation:job:streamed:awaiting:by:)``).
    public static func stop(conversationID: String, jobID: String, by: String, _ context: inout WriteContext) throws
        -> Result<StopOutcome, ControlRefusal>
    {
        let tables = context.tables
        let job = try tables.load(JobState.self, T.jobs, Key(jobID))
        let streamed = try job.map { try SwitchboardProjector.streamedText(jobID, token: $0.token, tables) } ?? ""
        let awaiting = try TableInboundLookup(tables: tables).awaitingApprovals(conversationID: conversationID)
        return try context.commit(
            ConversationDecider.stop(
                conversation: try conversation(conversationID, tables), job: job, streamed: streamed,
                awaiting: awaiting, by: by))
    }

    /// Enqueues another reply to user message `triggerSeq` (Regenerate), unless `requestID` was seen before (then
    /// the first job answers).
    public static func regenerate(
        conversationID: String, triggerSeq: UInt64, requestID: String, jobID: String, settings: JobSettings,
        _ context: inout WriteContext
    ) throws -> Result<JobEnqueue, ControlRefusal> {
        let tables = context.tables
        var job = NewJob(
            jobID: jobID, idempotencyKey: "regenerate:\(conversationID):\(requestID)", conversationID: conversationID)
        job.kind = JobKind.regenerate.rawValue
        job.triggeringMessageSeq = triggerSeq
        if let first = try tables.get(tables.table(T.jobKeys), Key(job.idempotencyKey).bytes) {
            return .success(JobEnqueue(jobID: String(decoding: first, as: UTF8.self), duplicate: true))
        }
        let trigger = try tables.load(HistoryMessage.self, T.messages, Key(conversationID).appending(triggerSeq))
        switch ConversationDecider.regenerate(
            conversation: try conversation(conversationID, tables), trigger: trigger,
            active: try activeJobs(conversationID, tables))
        {
        case .failure(let refusal): return .failure(refusal)
        case .success: return .success(try JobShell.enqueue(job, settings: settings, &context))
        }
    }

    public static func rename(conversationID: String, title: String, by: String, _ context: inout WriteContext)
        throws -> Result<String, ControlRefusal>
    {
        try context.commit(
            ConversationDecider.rename(
                conversation: try conversation(conversationID, context.tables), title: title, by: by))
    }

    public static func delete(conversationID: String, by: String, _ context: inout WriteContext) throws -> Result<
        DeleteOutcome, ControlRefusal
    > {
        let tables = context.tables
        return try context.commit(
            ConversationDecider.delete(
                conversation: try conversation(conversationID, tables),
                active: try activeJobs(conversationID, tables),
                awaiting: try TableInboundLookup(tables: tables).awaitingApprovals(conversationID: conversationID),
                by: by, nextSeq: context.nextSeq))
    }
}

extension Switchboard {
    /// Stops a conversation's reply job (the web chat's Stop): see
    /// ``ConversationDecider/stop(conversation:job:streamed:awaiting:by:)``.
    public func stopJob(conversationID: String, jobID: String, by: String) async throws -> Result<
        StopOutcome, ControlRefusal
    > {
        try await decide { try ConversationShell.stop(conversationID: conversationID, jobID: jobID, by: by, &$0) }
    }

    /// Asks for another reply to user message `triggerSeq` (Regenerate); a repeated `requestID` answers the first
    /// job.
    public func regenerate(conversationID: String, triggerSeq: UInt64, requestID: String) async throws -> Result<
        JobEnqueue, ControlRefusal
    > {
        let settings = settings.jobs
        let jobID = timeOrderedID("j")
        return try await decide {
            try ConversationShell.regenerate(
                conversationID: conversationID, triggerSeq: triggerSeq, requestID: requestID, jobID: jobID,
                settings: settings, &$0)
        }
    }

    public func renameConversation(_ conversationID: String, title: String, by: String) async throws -> Result<
        String, ControlRefusal
    > {
        try await decide { try ConversationShell.rename(conversationID: conversationID, title: title, by: by, &$0) }
    }

    public func deleteConversation(_ conversationID: String, by: String) async throws -> Result<
        DeleteOutcome, ControlRefusal
    > {
        try await decide { try ConversationShell.delete(conversationID: conversationID, by: by, &$0) }
    }

    /// The conversations deleted, with their deletions (`p.redactions`): what every reader hides.
    public func redactions() throws -> [String: ConversationDeletion] { try reader.redactions() }
}
