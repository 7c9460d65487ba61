import Engines
import EV
import Epoll
import EventCore
import HTTP

/// A running HTTP server on one of the engines: `server http`.
public final class HTTPServer: Sendable {
    /// The engines an HTTP server has (no one-client-at-a-time one).
    public static let engines: [Engine] = [.threads, .libev, .epoll, .async, .asyncEpoll]

    /// The address the server listens on.
    public let address: SocketAddress
    public let engine: Engine
    private let stopper: @Sendable () -> HTTPServerStats

    /// Starts a server on threads of its own; returns at once.
    ///
    /// - Precondition: `engine` is one of ``engines``.
    /// - Throws: ``EventCore/EventLoopError`` if the address cannot be bound.
    public init(engine: Engine, options: HTTPServerOptions) throws {
        precondition(Self.engines.contains(engine), "an HTTP server has no \(engine) engine")
        self.engine = engine
        // One listener per loop or accepting thread, on one port.
        let listeners = try SocketDescriptor.listeningGroup(of: options.workers, on: options.address)
        address = try listeners[0].localAddress()
        switch engine {
        case .libev: stopper = try LoopWorkers.start(listeners, options, { try Loop() }, startWorker: CallbackWorker.serve)
        case .epoll: stopper = try LoopWorkers.start(listeners, options, { try EpollLoop() }, startWorker: CallbackWorker.serve)
        case .async: stopper = try LoopWorkers.start(listeners, options, { try Loop() }, startWorker: serveWithTasks)
        case .asyncEpoll: stopper = try LoopWorkers.start(listeners, options, { try EpollLoop() }, startWorker: serveWithTasks)
        case .threads, .blocking: stopper = try ThreadsHTTPEngine.start(listeners, options)
        }
    }

    /// Stops gracefully: stops accepting, lets the responses in flight finish
    /// (at most `stopTimeout` seconds), closes every connection, and returns
    /// what the server counted.
    @discardableResult
    public func stop() -> HTTPServerStats { stopper() }
}
