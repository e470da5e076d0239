import EventLog
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Projections
import ServiceLifecycle
import Synchronization
import SwitchboardEvents

/// Wakes every waiter once, when the web chat shuts down (its open event streams end cleanly, so the HTTP
/// server's graceful stop does not wait on them).
public final class WebShutdown: Sendable {
    private struct State {
        var fired = false
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())

    public init() {}

    public var hasFired: Bool { state.withLock { $0.fired } }

    /// Fires once; later calls do nothing.
    public func fire() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard !state.fired else { return [] }
            state.fired = true
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns when fired or when the task is cancelled.
    public func wait() async {
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.fired || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume()
        }
    }
}

/// The service that fires ``WebShutdown`` at the start of a graceful shutdown. Put it after the HTTP server in
/// the service group (services stop in reverse order), so event streams end before the server stops.
public struct WebShutdownService: Service {
    let shutdown: WebShutdown

    public init(_ shutdown: WebShutdown) { self.shutdown = shutdown }

    public func run() async throws {
        try? await gracefulShutdown()
        shutdown.fire()
    }
}

/// `GET /api/conversations/<id>/events`: the conversation's records as server-sent events, replayed from the
/// log and then followed on the log's tail (woken by commits, never polling).
///
/// Each event's `id:` is the record's seq and its `event:` the record type; `data:` is the payload JSON. A client
/// resumes with `Last-Event-ID` (or `?after=<seq>`): the stream starts at the next seq, so nothing is missed or
/// repeated. A comment line every `heartbeat` keeps proxies from closing an idle stream.
enum ConversationEvents {
    /// The seq the stream starts at: after `after` (when given), and never before the conversation's first
    /// record. For a conversation that does not exist yet, after the log's current end (read before the
    /// conversation, so a first message committed in between is not skipped).
    /// A deleted conversation's stream starts at its `conversation.deleted` for a client that saw records before
    /// it (so it learns of the deletion), and after it otherwise: nothing it redacts is replayed.
    static func startSeq(engine: Switchboard, conversationID: String, after: UInt64?) throws -> UInt64 {
        let last = try engine.log.lastSeq()
        let conversation = try engine.conversation(conversationID)
        var first = conversation?.firstSeq ?? (last + 1)
        if let deletion = conversation?.deletion, let after, after < deletion.throughSeq {
            first = deletion.throughSeq
        }
        return max(first, (after ?? 0) + 1)
    }

    /// One SSE frame for a record.
    static func frame(_ record: Record) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeString("id: \(record.seq)\nevent: \(record.type)\n")
        // A JSON payload has no raw newlines, but a record's text is split per line as SSE requires.
        for line in record.payloadText.split(separator: "\n", omittingEmptySubsequences: false) {
            buffer.writeString("data: ")
            buffer.writeSubstring(line)
            buffer.writeString("\n")
        }
        buffer.writeString("\n")
        return buffer
    }

    /// - Parameter sidebar: when given, the stream also carries the sidebar's changes (``sidebarFrame(_:views:)``),
    ///   so one connection per tab serves both.
    static func response(
        engine: Switchboard, conversationID: String, start: UInt64, heartbeat: Duration, shutdown: WebShutdown,
        backlog: Int = 4096, sidebar: ChatViews? = nil, logger: Logger
    ) -> Response {
        stream(
            engine: engine, start: start, heartbeat: heartbeat, shutdown: shutdown, backlog: backlog,
            metadata: ["conversation.id": "\(conversationID)"], logger: logger
        ) {
            var filter = ConversationRecordFilter(conversationID: conversationID) { jobID in
                try? engine.job(jobID)?.conversationID
            }
            return { record in
                let side = sidebar.flatMap { sidebarFrame(record, views: $0) }
                guard let event = filter.event(of: record, logger: logger) else { return side }
                // A record the conversation's deletion redacted while this stream was behind is never sent (the
                // deletion itself is: the page clears the thread).
                if case .conversationDeleted = event {
                } else {
                    do {
                        if let deletion = try engine.conversation(conversationID)?.deletion,
                            record.seq <= deletion.throughSeq
                        {
                            return side
                        }
                    } catch {
                        // Whether it was deleted cannot be told: nothing is sent (the page resumes on reconnect).
                        logger.error(
                            "web.events.redaction_unreadable",
                            metadata: ["conversation.id": "\(conversationID)", "error": "\(error)"])
                        return side
                    }
                }
                var out = frame(record)
                if var side { out.writeBuffer(&side) }
                return out
            }
        }
    }

    /// The sidebar's change a record makes, as an `event: conversation` frame carrying the conversation's summary
    /// (`deleted` when it was deleted): for a new message, a finished reply, a rename or a deletion, in any
    /// conversation. It has no `id:` (it is not a record of the stream's conversation); a reconnecting page reloads
    /// the sidebar instead of resuming it.
    static func sidebarFrame(_ record: Record, views: ChatViews) -> ByteBuffer? {
        guard let conversationID = record.correlationID else { return nil }
        switch record.type {
        case MessageReceived.eventType, ConversationRenamed.eventType, ConversationDeleted.eventType: break
        case AssistantMessage.eventType:
            guard case .assistantMessage(let message)? = try? record.event(), message.final else { return nil }
        default: return nil
        }
        guard let summary = try? views.summary(of: conversationID) else { return nil }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let json = try? encoder.encode(summary) else { return nil }
        var buffer = ByteBuffer()
        buffer.writeString("event: conversation\ndata: ")
        buffer.writeBytes(json)
        buffer.writeString("\n\n")
        return buffer
    }

    /// Server-sent events from the log's records at and after `start`, as `frames` maps them (`nil`: skipped),
    /// followed on the tail (woken by commits), with a heartbeat comment and a bounded backlog. `frames` is called
    /// once, inside the stream's task: the mapper it returns may keep state.
    static func stream(
        engine: Switchboard, start: UInt64, heartbeat: Duration, shutdown: WebShutdown, backlog: Int = 4096,
        metadata: Logger.Metadata, logger: Logger,
        frames: @escaping @Sendable () -> (Record) -> ByteBuffer?
    ) -> Response {
        let body = ResponseBody { writer in
            // Bounded: a client that reads slower than its conversation grows is let go once `backlog` frames wait
            // (nothing is lost: it reconnects with Last-Event-ID and resumes after the last frame it got).
            let (stream, continuation) = AsyncStream<ByteBuffer>.makeStream(bufferingPolicy: .bufferingOldest(backlog))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    let map = frames()
                    do {
                        for try await record in engine.log.tail(from: start) {
                            guard let frame = map(record) else { continue }
                            if case .dropped = continuation.yield(frame) {
                                logger.warning("web.events.slow_client", metadata: metadata)
                                break
                            }
                        }
                    } catch {
                        logger.error(
                            "web.events.tail_failed", metadata: metadata.merging(["error": "\(error)"]) { $1 })
                    }
                    // The log closed (or the tail failed): the client reconnects and resumes.
                    continuation.finish()
                }
                group.addTask {
                    while !Task.isCancelled {
                        try await Task.sleep(for: heartbeat)
                        continuation.yield(ByteBuffer(string: ": heartbeat\n\n"))
                    }
                }
                group.addTask {
                    await shutdown.wait()
                    continuation.finish()
                }
                // Tells the browser to wait 2 s before reconnecting after the stream ends.
                try await writer.write(ByteBuffer(string: "retry: 2000\n\n"))
                for await chunk in stream {
                    try await writer.write(chunk)
                }
                group.cancelAll()
            }
            try await writer.finish(nil)
        }
        return Response(
            status: .ok,
            headers: [
                .contentType: "text/event-stream; charset=utf-8", .cacheControl: "no-store",
                .xAccelBuffering: "no",
            ],
            body: body)
    }
}
