import Engines
import EV
import Epoll
import EventCore
import EventLoopServices
import HTTP

/// A running HTTP server on one of the engines: `server http`. It stops as
/// a loop group does (``EventLoopServices/GracefullyStoppable``), so a
/// swift-service-lifecycle `ServiceGroup` runs it through
/// ``EventLoopServices/LoopGroupService``.
public final class HTTPServer: GracefullyStoppable {
    /// The engines an HTTP server has (no one-client-at-a-time one).
    public static let engines: [Engine] = [.threads, .libev, .epoll, .async, .asyncEpoll]

    /// The address the server listens on.
    public let address: SocketAddress
    public let engine: Engine
    private let control: LoopServerControl
    /// The figures of the stop, once stopped (the stop runs once).
    private let stopped = LockedValue<HTTPServerStats?>(nil)

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
        let name = engine.rawValue
        switch engine {
        case .libev:
            control = try LoopWorkers.start(listeners, options, engine: name, { try Loop() }, startWorker: CallbackWorker.serve)
        case .epoll:
            control = try LoopWorkers.start(listeners, options, engine: name, { try EpollLoop() }, startWorker: CallbackWorker.serve)
        case .async:
            control = try LoopWorkers.start(listeners, options, engine: name, { try Loop() }, startWorker: serveWithTasks)
        case .asyncEpoll:
            control = try LoopWorkers.start(listeners, options, engine: name, { try EpollLoop() }, startWorker: serveWithTasks)
        case .threads, .blocking:
            // Its threads stop within the stop timeout; there is nothing to hurry.
            control = LoopServerControl(stop: try ThreadsHTTPEngine.start(listeners, options), stopNow: {})
        }
    }

    /// Stops gracefully: stops accepting, lets the responses in flight finish
    /// (at most `stopTimeout` seconds), closes every connection, and returns
    /// what the server counted. A second call returns the same figures.
    @discardableResult
    public func stop() -> HTTPServerStats {
        stopped.withLock { stats in
            if let stats { return stats }
            let counted = control.stop()
            stats = counted
            return counted
        }
    }

    /// ``stop()`` on a thread of its own, for a `ServiceGroup`'s graceful
    /// shutdown (the server's own `stopTimeout` bounds it, not `timeout`).
    public func shutdownGracefully(timeout: Duration) async throws {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            do {
                try PlainThread { [self] in
                    stop()
                    continuation.resume()
                }.detach()
            } catch {
                stop()
                continuation.resume()
            }
        }
    }

    /// Stops the loops now (a second signal): the graceful stop in progress
    /// returns at once, its connections cut.
    public func stopNow() { control.stopNow() }
}
