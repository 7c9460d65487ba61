/// A listening TCP socket for callback code, on either loop: hands every
/// connection it accepts to a closure, on the loop's thread - the twin of
/// ``AsyncListener``.
///
/// ```swift
/// let listener = try Listener(on: SocketAddress(parsing: "127.0.0.1:7000"), loop: loop) { socket, peer in
///     let echo = Echo()
///     echo.connection = try? Connection(adopting: socket, peer: peer, on: loop, delegate: echo)
/// }
/// ```
///
/// When `accept` fails for want of descriptors, buffers or memory
/// (`EMFILE` and the like), it logs the error through `log` and stops
/// accepting for ``AcceptBackoff/delay`` instead of spinning on the
/// listener's readiness; the errors a new connection may bring with it are
/// skipped (see ``AcceptBackoff``). ``pause()`` and ``resume()`` stop and
/// restart accepting - at a connection limit, say: the kernel then queues
/// new connections in the listen backlog.
///
/// The loop holds an open listener (through its watch) until ``close()``;
/// closing the loop closes it. Loop thread only.
public final class Listener<L: EventLoop>: ClosesWithLoop {
    /// The listening socket.
    public let socket: SocketDescriptor
    /// The address it listens on (with the port the kernel chose for port 0).
    public let localAddress: SocketAddress

    private weak var loop: L?
    private var watch: L.Watch?
    /// The socket file it made, removed at close.
    private var socketFile: SocketDescriptor.BoundSocketFile?
    private var backoff: (any Cancellable)?
    private var paused = false
    private var closed = false
    private let accepted: (SocketDescriptor, SocketAddress?) -> Void
    private let log: (EventLoopError) -> Void
    private var observer: LoopCloseObserver?

    /// Listens on `address` and accepts on `loop`.
    ///
    /// - Parameters:
    ///   - address: where to listen; port 0 picks a free port (``localAddress`` says which).
    ///   - loop: the loop to accept on.
    ///   - backlog: the kernel's queue of connections not yet accepted.
    ///   - reusePort: `SO_REUSEPORT`, for one listener per loop on one port
    ///     (see ``EventLoopGroup/listeners(on:backlog:)``).
    ///   - replacingStaleSocket: for a Unix socket path, remove a stale socket
    ///     file first (see ``SocketDescriptor/listening(on:backlog:reusePort:replacingStaleSocket:)``).
    ///   - log: told each error that makes the listener back off.
    ///   - accepted: called with each new connection (non-blocking, `TCP_NODELAY`
    ///     for TCP) and the peer's address; it owns the socket.
    /// - Throws: ``EventLoopError`` if the address cannot be bound or watched.
    public convenience init(on address: SocketAddress, loop: L, backlog: Int32 = SocketDescriptor.maximumBacklog,
                            reusePort: Bool = false, replacingStaleSocket: Bool = false,
                            log: @escaping (EventLoopError) -> Void = { _ in },
                            accepted: @escaping (SocketDescriptor, SocketAddress?) -> Void) throws(EventLoopError) {
        let socket = try SocketDescriptor.listening(on: address, backlog: backlog, reusePort: reusePort,
                                                    replacingStaleSocket: replacingStaleSocket)
        do {
            try self.init(adopting: socket, loop: loop, log: log, accepted: accepted)
            socketFile = SocketDescriptor.BoundSocketFile(address)
        } catch {
            socket.close()
            throw error
        }
    }

    /// Accepts on `socket`, a listening non-blocking socket (one of
    /// ``EventLoopGroup/listeners(on:backlog:)``, say), which the listener
    /// then owns.
    ///
    /// - Throws: ``EventLoopError`` if the socket's address cannot be read
    ///   or the loop cannot watch it.
    public init(adopting socket: SocketDescriptor, loop: L, log: @escaping (EventLoopError) -> Void = { _ in },
                accepted: @escaping (SocketDescriptor, SocketAddress?) -> Void) throws(EventLoopError) {
        self.socket = socket
        self.loop = loop
        self.accepted = accepted
        self.log = log
        localAddress = try socket.localAddress()
        try startWatching(loop)
        observer = LoopCloseObserver(self, on: loop)
    }

    private func startWatching(_ loop: L) throws(EventLoopError) {
        // The closure holds the listener while it is watched: an open
        // listener lives as long as its loop, as an active watcher does.
        watch = try loop.watchReadiness(socket.descriptor, paused ? [] : .read) { [self] _ in acceptWaiting() }
    }

    /// Whether ``pause()`` stopped accepting.
    public var isPaused: Bool { paused }

    /// Stops accepting until ``resume()``.
    public func pause() {
        guard !paused, !closed else { return }
        paused = true
        watch?.interest = []
    }

    /// Accepts again after ``pause()``.
    public func resume() {
        guard paused, !closed else { return }
        paused = false
        if backoff == nil { watch?.interest = .read }
    }

    /// Stops listening and closes the socket; a Unix socket file it bound is
    /// removed, unless another has taken the path since. Harmless twice.
    public func close() {
        guard !closed else { return }
        closed = true
        observer?.leave()
        observer = nil
        watch?.cancel()
        watch = nil
        backoff?.cancel()
        backoff = nil
        socket.close()
        socketFile?.remove()
        socketFile = nil
    }

    /// The loop is closing: so is the listener.
    package func loopClosing(_ error: EventLoopError) { close() }

    private func acceptWaiting() {
        do throws(EventLoopError) {
            try AcceptBackoff.acceptWaiting(on: socket, while: { !paused && !closed }) { client, peer in
                client.setNoDelayIfTCP(peer?.family)
                accepted(client, peer)
            }
        } catch {
            log(error)
            guard let loop, !closed else { return }
            watch?.interest = []
            backoff = loop.schedule(after: AcceptBackoff.delay) { [weak self] in
                guard let self, !closed else { return }
                backoff = nil
                if !paused { watch?.interest = .read }
            }
        }
    }
}
