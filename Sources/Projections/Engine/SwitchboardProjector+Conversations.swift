import EventLog
import SwitchboardEvents

// MARK: Conversations: messages, replies, streamed text, titles and deletions

extension SwitchboardProjector {
    /// The `p.reply_deltas` key of a streamed piece: job id, claim token, index. The text streamed under a claim is
    /// the concatenation of its keys' values in key order; a job's entries are dropped when it ends.
    static func deltaKey(_ jobID: String, _ token: UInt64, _ index: Int) -> [UInt8] {
        Key(jobID).appending(token).appending(UInt64(max(0, index))).bytes
    }

    /// The text streamed for `jobID` under `token` so far.
    static func streamedText(_ jobID: String, token: UInt64, _ tables: some TableReading) throws -> String {
        let prefix = Key(jobID).appending(token).prefix
        var text: [UInt8] = []
        try tables.scan(tables.table(.replyDeltas), from: prefix) { key, value in
            guard hasPrefix(key, prefix) else { return false }
            text.append(contentsOf: value)
            return true
        }
        return String(decoding: text, as: UTF8.self)
    }

    func received(_ e: MessageReceived, seq: UInt64, now: LogTimestamp, _ tables: some TableWriting) throws {
        try tables.mark(
            .inbound, Key(e.channel, e.accountID, e.externalID), withUnsafeBytes(of: seq.bigEndian) { Array($0) })
        var conversation =
            try tables.load(ConversationState.self, .conversations, Key(e.conversationID))
            ?? ConversationState(
                conversationID: e.conversationID, channel: e.channel, accountID: e.accountID,
                contactID: e.contactID, firstSeq: seq, lastSeq: seq, messageCount: 0)
        // A channel conversation deleted earlier starts again here: readers begin at its first new message.
        if conversation.deletion != nil, conversation.messageCount == 0 { conversation.firstSeq = seq }
        // A message that names no parent follows the conversation's previous user message (a linear chat).
        let parent = e.parentSeq ?? conversation.lastUserSeq ?? 0
        conversation.lastUserSeq = seq
        try touch(&conversation, seq: seq, tables)
        try tables.store(
            HistoryMessage(
                role: "user", text: e.text, seq: seq, time: now, parentSeq: parent, afterJobID: e.afterJobID,
                sender: e.senderName, unanswered: e.unanswered),
            .messages, Key(e.conversationID).appending(seq))
    }

    func replied(_ e: AssistantMessage, seq: UInt64, now: LogTimestamp, _ tables: some TableWriting) throws {
        guard e.final else { return }
        guard var conversation = try tables.load(ConversationState.self, .conversations, Key(e.conversationID))
        else { return }
        let job = try loadJob(e.jobID, tables)
        try touch(&conversation, seq: seq, tables)
        try tables.store(
            HistoryMessage(
                role: "assistant", text: e.text, seq: seq, time: now, jobID: e.jobID,
                triggerSeq: job?.triggeringMessageSeq, finishReason: e.finishReason),
            .messages, Key(e.conversationID).appending(seq))
    }

    func renamed(_ e: ConversationRenamed, _ tables: some TableWriting) throws {
        guard var conversation = try tables.load(ConversationState.self, .conversations, Key(e.conversationID))
        else { return }
        conversation.title = e.title
        try tables.store(conversation, .conversations, Key(e.conversationID))
    }

    /// Drops everything readable of the conversation (history, summary, tool calls, title) and records the
    /// redaction every reader honours (`p.redactions`).
    func deleted(_ e: ConversationDeleted, now: LogTimestamp, _ tables: some TableWriting) throws {
        guard var conversation = try tables.load(ConversationState.self, .conversations, Key(e.conversationID))
        else { return }
        try removeAll(.messages, prefix: Key(e.conversationID).prefix, tables)
        try tables.remove(.summaries, Key(e.conversationID))
        var calls: [[UInt8]] = []
        try tables.scan(tables.table(.toolCalls)) { key, value in
            if try StateCoding.decode(ToolCallState.self, value).conversationID == e.conversationID {
                calls.append(key)
            }
            return true
        }
        for key in calls { _ = try tables.delete(tables.table(.toolCalls), key) }
        if conversation.messageCount > 0 {
            _ = try tables.delete(
                tables.table(.conversationActivity), activityKey(conversation.lastSeq, e.conversationID))
        }
        let deletion = ConversationDeletion(throughSeq: e.throughSeq, by: e.by, at: now)
        conversation.deletion = deletion
        conversation.firstSeq = e.throughSeq + 1
        conversation.messageCount = 0
        conversation.title = nil
        conversation.lastUserSeq = nil
        try tables.store(conversation, .conversations, Key(e.conversationID))
        try tables.store(deletion, .redactions, Key(e.conversationID))
    }

    /// A pending reply job answers a later message too: its trigger, claim time and count move with it.
    func retriggered(_ e: JobRetriggered, _ tables: some TableWriting) throws {
        guard var job = try loadJob(e.jobID, tables), job.status == .pending else { return }
        let previous = job
        job.triggeringMessageSeq = e.messageSeq
        job.replyToExternalID = e.replyToExternalID
        if let notBefore = e.notBefore { job.notBefore = notBefore }
        job.payload["collected"] = "\(e.collected)"
        try saveJob(job, previous: previous, tables)
    }

    /// A turn that called a tool is not restarted by a steering message (docs/assistant.md, `QUEUE_MODE`).
    func markToolUse(_ jobID: String, _ tables: some TableWriting) throws {
        guard var job = try loadJob(jobID, tables), job.payload["tools"] == nil else { return }
        let previous = job
        job.payload["tools"] = "1"
        try saveJob(job, previous: previous, tables)
    }

    /// `/new`: the conversation's next message follows no earlier one (its history starts there).
    func commanded(_ e: CommandHandled, _ tables: some TableWriting) throws {
        guard e.command == ChatCommand.new.rawValue,
            var conversation = try tables.load(ConversationState.self, .conversations, Key(e.conversationID))
        else { return }
        conversation.lastUserSeq = nil
        try tables.store(conversation, .conversations, Key(e.conversationID))
    }

    func dropDeltas(_ jobID: String, _ tables: some TableWriting) throws {
        try removeAll(.replyDeltas, prefix: Key(jobID).prefix, tables)
    }

    private func removeAll(_ table: ProjectionTable, prefix: [UInt8], _ tables: some TableWriting) throws {
        var keys: [[UInt8]] = []
        try tables.scan(tables.table(table), from: prefix) { key, _ in
            guard hasPrefix(key, prefix) else { return false }
            keys.append(key)
            return true
        }
        for key in keys { _ = try tables.delete(tables.table(table), key) }
    }

    /// Records a message at `seq` in `conversation` and moves it to the front of `p.conversation_activity`.
    private func touch(_ conversation: inout ConversationState, seq: UInt64, _ tables: some TableWriting) throws {
        let activity = tables.table(ProjectionTables.conversationActivity)
        if conversation.messageCount > 0 {
            _ = try tables.delete(activity, activityKey(conversation.lastSeq, conversation.conversationID))
        }
        conversation.lastSeq = seq
        conversation.messageCount += 1
        try tables.store(conversation, ProjectionTables.conversations, Key(conversation.conversationID))
        try tables.put(activity, activityKey(seq, conversation.conversationID), [])
    }
}
