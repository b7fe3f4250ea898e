import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import VMM

/// Serves `APIRoutes` over HTTP/1.1 on a Unix domain socket, as Firecracker's API does, on one
/// event-loop thread of its own. Requests are small; each is answered and the connection kept.
public final class APIServer: Sendable {
    /// Connections open at once, at most, as Firecracker's API server allows (micro_http's
    /// MAX_CONNECTIONS): one more is answered 503 and closed, so no client can make Ebb hold
    /// descriptors and buffers without bound.
    public static let maximumConnections = 10

    private let stopped = Mutex(false)
    private let confined = Mutex(false)
    private let openConnections = ConnectionCount()
    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    public let socketPath: String

    /// Binds `socketPath` (replacing a stale socket file) and starts serving.
    public init(socketPath: String, routes: APIRoutes) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // The event loop's thread says what it is for, as Ebb's own threads do.
        group.next().execute { ThreadRegistry.registerCurrentThread(as: .api) }
        let openConnections = openConnections
        do {
            let bootstrap = ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 16)
                .childChannelInitializer { channel in
                    guard openConnections.admit() else { return Self.refuse(channel) }
                    channel.closeFuture.whenComplete { _ in openConnections.release() }
                    return channel.pipeline.configureHTTPServerPipeline(withErrorHandling: true).flatMapThrowing {
                        try channel.pipeline.syncOperations.addHandler(APIHandler(routes: routes))
                    }
                }
            channel = try bootstrap.bind(unixDomainSocketPath: socketPath, cleanupExistingSocketFile: true).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
        self.group = group
        self.socketPath = socketPath
    }

    /// Confines the event loop's thread to the API's seccomp list (`Sandbox`), once the machine
    /// exists: before it, the API opens the files `PUT /logger` and `PUT /metrics` name.
    public func confine() {
        try? group.next().submit { Sandbox.confineThisThread(as: .api) }.wait()
        confined.withLock { $0 = true }
    }

    /// One connection too many: a 503 in Firecracker's error shape, then closed.
    private static func refuse(_ channel: any Channel) -> EventLoopFuture<Void> {
        let body = APIResponse.error(503, "too many open connections (at most \(maximumConnections))").body
        let text = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
        var buffer = channel.allocator.buffer(capacity: text.utf8.count)
        buffer.writeString(text)
        channel.writeAndFlush(buffer).whenComplete { _ in channel.close(promise: nil) }
        return channel.eventLoop.makeSucceededVoidFuture()
    }

    /// Closes the socket and ends the event-loop thread; later calls do nothing.
    public func stop() {
        guard stopped.withLock({ done in defer { done = true }; return !done }) else { return }
        try? channel.close().wait()
        // Once confined, the thread stays until the process ends, which is next: NIO's shutdown
        // finishes on a Dispatch queue, whose worker threads the loop's filter may not create.
        if !confined.withLock({ $0 }) { try? group.syncShutdownGracefully() }
        _ = socketPath.withCString { unlink($0) }
    }
}

/// The connections open now, against `APIServer.maximumConnections`.
private final class ConnectionCount: Sendable {
    private let count = Atomic<Int>(0)

    /// Counts one more, unless that would be more than the maximum.
    func admit() -> Bool {
        guard count.wrappingAdd(1, ordering: .relaxed).newValue <= APIServer.maximumConnections else {
            release()
            return false
        }
        return true
    }

    func release() { count.wrappingSubtract(1, ordering: .relaxed) }
}

/// Collects one request (head and body, bounded) and answers it with the routes.
final class APIHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let routes: APIRoutes
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var tooLarge = false

    init(routes: APIRoutes) { self.routes = routes }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case let .head(requestHead):
            head = requestHead
            body = []
            tooLarge = false
        case var .body(buffer):
            if body.count + buffer.readableBytes > APIRoutes.maximumBodyBytes {
                tooLarge = true
            } else if let bytes = buffer.readBytes(length: buffer.readableBytes) {
                body += bytes
            }
        case .end:
            guard let head else { return }
            let path = String(head.uri.split(separator: "?", maxSplits: 1).first ?? "")
            let response = tooLarge ? APIResponse.error(413, "request body too large")
                : routes.handle(method: head.method.rawValue, path: path, body: body)
            respond(context: context, version: head.version, keepAlive: head.isKeepAlive, response: response)
            self.head = nil
        }
    }

    private func respond(context: ChannelHandlerContext, version: HTTPVersion, keepAlive: Bool, response: APIResponse) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Length", value: "\(response.body.utf8.count)")
        if !response.body.isEmpty { headers.add(name: "Content-Type", value: "application/json") }
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let status = HTTPResponseStatus(statusCode: response.status)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: status, headers: headers))), promise: nil)
        if !response.body.isEmpty {
            var buffer = context.channel.allocator.buffer(capacity: response.body.utf8.count)
            buffer.writeString(response.body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        let channel = context.channel
        if !keepAlive { done.whenComplete { _ in channel.close(promise: nil) } }
    }
}

#if canImport(Glibc)
import Glibc
#endif
