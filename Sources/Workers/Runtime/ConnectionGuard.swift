import Foundation
import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// The deadlines and bounds of the agent's HTTP connections (docs/channels.md, "Connection limits"). Nobody who
/// can reach the port can hold a socket, a buffer or a task longer than these allow.
public struct ConnectionLimits: Sendable, Equatable {
    /// Connections open at once; past it the listener stops accepting until one closes (new ones wait in the
    /// kernel's accept backlog). `HTTP_MAX_CONNECTIONS`, default 256.
    public var maxConnections = 256
    /// A complete request head must arrive within this of the connection opening, or of the previous response's
    /// end (the keep-alive idle time). `HTTP_HEAD_TIMEOUT_SECONDS`, default 10.
    public var headTimeout: Duration = .seconds(10)
    /// A request's whole body must arrive within this of its head. `HTTP_BODY_TIMEOUT_SECONDS`, default 30.
    public var bodyTimeout: Duration = .seconds(30)
    /// A client that reads none of a response for this long (the socket stays unwritable) is disconnected.
    /// `HTTP_WRITE_TIMEOUT_SECONDS`, default 30. Long responses that are read (the web chat's event stream) are
    /// not affected.
    public var writeTimeout: Duration = .seconds(30)
    /// After the connection's last response (the client asked to close, or the response left part of the request
    /// unread), the rest of the request is read and discarded for at most this long and at most ``drainLimit``
    /// bytes, so the client sees the response before the connection closes.
    public var lingerTimeout: Duration = .seconds(2)
    /// See ``lingerTimeout``.
    public var drainLimit = 64 * 1024

    public init() {}
}

/// Enforces ``ConnectionLimits`` on one HTTP/1 connection, between the HTTP codec and Hummingbird's request
/// loop.
///
/// Why it exists: Hummingbird 2.x (`HTTPChannelHandler.handleHTTP`), after answering a request that carries
/// `Connection: close`, half-closes its output and waits for the *client* to close, without reading the rest of
/// the request; a keep-alive request answered early has its body read to the end, unbounded. A client that sends
/// a large body to any path (404, 401, 413 all answer early) and never closes held its socket, its unread data
/// and the kernel's TCP buffers for as long as it liked, and nothing bounded how slowly a head or body may
/// arrive. Upstream would need: a bounded drain (or a close) after an early response, and read deadlines for
/// heads and bodies.
///
/// What it does: a response whose head is written before the request's end is marked `Connection: close`; after
/// the last response of a connection its output is shut, the rest of the request is discarded (bounded by
/// ``ConnectionLimits/drainLimit`` and ``ConnectionLimits/lingerTimeout``) and the connection closed. Heads,
/// bodies and blocked writes have deadlines; any one missed closes the connection.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let limits: ConnectionLimits
    /// Heads received and responses ended: equal when the connection waits for its next request.
    private var heads = 0
    private var responsesEnded = 0
    /// A head arrived and its end has not.
    private var requestOpen = false
    /// The response being written is the connection's last.
    private var lastResponse = false
    /// After the last response: inbound data is discarded and the connection closes soon.
    private var lingering = false
    private var drained = 0
    /// The head, body or linger deadline in force (one at a time).
    private var deadline: Scheduled<Void>?
    /// The deadline of a write the client does not read.
    private var writeDeadline: Scheduled<Void>?
    /// Whether the connection's first deadline was set (on whichever of `handlerAdded`/`channelActive` came first).
    private var active = false

    /// The largest read from the socket.
    static let readSize = 16 * 1024

    init(limits: ConnectionLimits) {
        self.limits = limits
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { opened(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelDeadlines()
    }

    func channelActive(context: ChannelHandlerContext) {
        opened(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelDeadlines()
        context.fireChannelInactive()
    }

    private func opened(_ context: ChannelHandlerContext) {
        guard !active else { return }
        active = true
        // Reads of at most 16 KiB: what a connection holds while its request is not consumed (the framework
        // buffers several reads before it stops reading) stays small however fast the client sends. With NIO's
        // default of up to 64 KiB a read, 1 000 early-answered requests left the agent's heap 30 MB larger
        // (glibc keeps what a burst of connections freed); with 16 KiB, 3 MB.
        try? context.channel.syncOptions?.setOption(
            ChannelOptions.recvAllocator,
            value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 2048, maximum: Self.readSize))
        schedule(limits.headTimeout, context)
    }

    private func cancelDeadlines() {
        deadline?.cancel()
        deadline = nil
        writeDeadline?.cancel()
        writeDeadline = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if lingering {
            switch part {
            case .body(let buffer):
                drained += buffer.readableBytes
                if drained > limits.drainLimit { context.close(promise: nil) }
            case .head, .end:
                // The request is read (or the client pipelined another after the last response): nothing more
                // will be answered on this connection.
                context.close(promise: nil)
            }
            return
        }
        switch part {
        case .head(let head):
            heads += 1
            requestOpen = true
            if Self.asksToClose(head.headerFields) { lastResponse = true }
            schedule(limits.bodyTimeout, context)
        case .body:
            break
        case .end:
            requestOpen = false
            deadline?.cancel()
            deadline = nil
        }
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // Discarding: keep reading whatever the request loop above has stopped asking for.
        if lingering { context.read() }
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            writeDeadline?.cancel()
            writeDeadline = nil
        } else if writeDeadline == nil {
            writeDeadline = context.eventLoop.assumeIsolated().scheduleTask(in: limits.writeTimeout.timeAmount) {
                context.close(promise: nil)
            }
        }
        context.fireChannelWritabilityChanged()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var response):
            if requestOpen {
                // Answered before the request was read to its end: this is the connection's last response.
                lastResponse = true
            }
            if lastResponse {
                response.headerFields[.connection] = "close"
                context.write(wrapOutboundOut(.head(response)), promise: promise)
                return
            }
            context.write(data, promise: promise)
        case .body:
            context.write(data, promise: promise)
        case .end:
            responsesEnded += 1
            context.write(data, promise: promise)
            if lastResponse {
                linger(context)
            } else if responsesEnded == heads, !requestOpen {
                schedule(limits.headTimeout, context)
            }
        }
    }

    /// Shuts the output once the response is written (the client sees its end), discards the rest of the request
    /// and closes the connection: when the request's end arrives, past ``ConnectionLimits/drainLimit`` bytes, or at
    /// the linger deadline, whichever is first. A client that has sent everything usually closes first.
    private func linger(_ context: ChannelHandlerContext) {
        lingering = true
        context.flush()
        context.close(mode: .output, promise: nil)
        schedule(limits.lingerTimeout, context)
        if requestOpen { context.read() }  // the request loop above has stopped asking for its body
    }

    private func schedule(_ timeout: Duration, _ context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: timeout.timeAmount) {
            context.close(promise: nil)
        }
    }

    /// Whether a request's `Connection` header lists `close` (any case, among other tokens).
    static func asksToClose(_ fields: HTTPFields) -> Bool {
        fields[values: .connection].contains { value in
            value.split(separator: ",").contains { $0.trimmingCharacters(in: .whitespaces).lowercased() == "close" }
        }
    }
}

extension Duration {
    /// The duration as NIO's `TimeAmount` (nanoseconds).
    var timeAmount: TimeAmount {
        .nanoseconds(components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000)
    }
}
