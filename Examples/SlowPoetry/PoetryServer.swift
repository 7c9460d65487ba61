import Engines
import EV
import Epoll
import EventCore
import EventLoopServices
import Glibc

/// What a slow poetry server sends, how, and where.
public struct PoetryServerOptions: Sendable {
    /// The poem.
    public var poem: [UInt8]
    /// Bytes per chunk (`--num-bytes`).
    public var chunkSize: Int
    /// The pause between chunks (`--delay`).
    public var delay: Duration
    /// Where to listen; port 0 picks a free one.
    public var address: SocketAddress
    /// Called with a line to log (a client that left early, say).
    public var log: @Sendable (String) -> Void

    /// Options for a server of `poem`, `chunkSize` bytes every `delay`, on `address`.
    public init(poem: [UInt8], chunkSize: Int, delay: Duration, address: SocketAddress,
                log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.poem = poem
        self.chunkSize = chunkSize
        self.delay = delay
        self.address = address
        self.log = log
    }

    /// How long one client's download takes: a chunk, then a pause, per chunk
    /// (the classic server sleeps after the last chunk too, then closes).
    public var downloadTime: Duration {
        delay * ((poem.count + chunkSize - 1) / chunkSize)
    }
}

/// A running slow poetry server: the protocol of twisted-intro's slowpoetry.py.
///
/// Accept a connection; send the next `chunkSize` bytes; sleep `delay`;
/// repeat; close at the end. No request is read. A client that goes away
/// early is logged and does not disturb the others.
public final class PoetryServer: Sendable {
    /// The address the server listens on.
    public let address: SocketAddress
    /// The engine serving.
    public let engine: Engine
    private let stopper: PoetryStop

    /// Starts a server (on threads of its own; it returns at once).
    ///
    /// - Throws: ``EventCore/EventLoopError`` if the address cannot be bound.
    public init(engine: Engine, options: PoetryServerOptions) throws {
        self.engine = engine
        let listener = try SocketDescriptor.listening(on: options.address)
        address = try listener.localAddress()
        switch engine {
        case .blocking: stopper = try BlockingEngine.start(listener, options, perClientThread: false)
        case .threads: stopper = try BlockingEngine.start(listener, options, perClientThread: true)
        case .libev: stopper = try CallbackEngine.start(listener, options) { try Loop() }
        case .epoll: stopper = try CallbackEngine.start(listener, options) { try EpollLoop() }
        case .async: stopper = try AsyncEngine.start(listener, options) { try Loop() }
        case .asyncEpoll: stopper = try AsyncEngine.start(listener, options) { try EpollLoop() }
        }
    }

    /// Stops accepting, drops the clients, and waits for the server's threads.
    public func stop() { stopper.now() }

    /// Stops accepting and lets the clients being served have the rest of
    /// their poem, for up to `timeout`; then stops as ``stop()`` does.
    ///
    /// - Returns: whether every client had its whole poem in time.
    @discardableResult
    public func stopGracefully(timeout: Duration) -> Bool { stopper.gracefully(timeout) }
}

extension PoetryServer: GracefullyStoppable {
    /// ``stopGracefully(timeout:)`` on a thread of its own, for a
    /// `ServiceGroup` (`LoopGroupService`): SIGTERM lets the poems in flight
    /// end, a second signal (``stopNow()``) ends them.
    public func shutdownGracefully(timeout: Duration) async throws {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            do {
                try PlainThread { [self] in
                    stopGracefully(timeout: timeout)
                    continuation.resume()
                }.detach()
            } catch {
                stop()
                continuation.resume()
            }
        }
    }

    /// Stops now (``stop()``), also while a graceful stop waits.
    public func stopNow() { stop() }
}

/// How an engine stops: gracefully within a time (whether every client had
/// its whole poem), or now. Each may be called once or more, from any thread.
struct PoetryStop: Sendable {
    let gracefully: @Sendable (Duration) -> Bool
    let now: @Sendable () -> Void

    init(gracefully: @escaping @Sendable (Duration) -> Bool, now: @escaping @Sendable () -> Void) {
        self.gracefully = gracefully
        self.now = now
    }

    /// The loop engines' start and stop: `listen` runs on a loop of its own
    /// thread made by `make`; the graceful stop runs what it returned (the
    /// listener's close) on the loop and lets the loop run until its clients
    /// are done.
    init<L: EventLoop>(make: @escaping @Sendable () throws -> L,
                       listen: @escaping @Sendable (L) -> LoopBound<() -> Void>) throws {
        let closer = LockedValue<LoopBound<() -> Void>?>(nil)
        let thread = try EventLoopThread<L>(make) { loop in
            let close = listen(loop)
            closer.withLock { $0 = close }
        }
        let stopNow: @Sendable () -> Void = {
            thread.stop()
            thread.join()
        }
        self.init(gracefully: { timeout in
            thread.stopWhenDone(first: { _ in closer.withLock { $0 }?.value() })
            if thread.join(timeout: timeout) { return true }
            stopNow()
            return false
        }, now: stopNow)
    }
}

/// Closes a client's socket with a FIN, not a reset: the protocol reads no
/// request, but clients like the tutorial's send one anyway, and closing a
/// socket with unread input makes the kernel reset the connection - which
/// can discard the end of the poem before the client reads it.
func closeGracefully(_ socket: SocketDescriptor) {
    discardInput(socket)
    socket.close()
}

/// Reads and drops whatever input is waiting, without blocking.
func discardInput(_ socket: SocketDescriptor) {
    var scratch = [UInt8](repeating: 0, count: 4096)
    while recv(socket.fd, &scratch, scratch.count, Int32(MSG_DONTWAIT)) > 0 {}
}
