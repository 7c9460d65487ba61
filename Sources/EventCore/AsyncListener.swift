import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A listening TCP socket that accepts connections from async code on an
/// event loop.
///
/// ```swift
/// let listener = try AsyncListener(on: SocketAddress(parsing: "127.0.0.1:8080"), loop: executor)
/// while true {
///     let client = try await listener.acceptBackingOff { error in print(error) }
///     Task(executorPreference: executor) { await serve(client) }
/// }
/// ```
///
/// `Sendable`, as ``AsyncSocket`` is: one task accepts at a time (a second
/// waiting at once traps with a message).
public final class AsyncListener: @unchecked Sendable {
    // Sendable because its one mutable field is an atomic, the rest are
    // immutable, and the readiness touches its own state only on the loop's
    // thread (see AsyncSocket).

    /// The listening descriptor.
    public let descriptor: SocketDescriptor
    /// The address it listens on (with the port chosen, if port 0 was asked for).
    public let localAddress: SocketAddress
    private let readiness: any DescriptorReadiness
    private let loop: any EventLoopExecutor
    private let closed = Atomic(false)
    /// The socket file it made, removed at close.
    private let socketFile: SocketDescriptor.BoundSocketFile?

    /// Listens on `address` (port 0 picks a free port).
    ///
    /// - Parameters:
    ///   - address: where to listen.
    ///   - loop: the executor of the loop the accepted sockets will use.
    ///   - backlog: the kernel's queue of connections not yet accepted.
    ///   - reusePort: set `SO_REUSEPORT`, for one listener per loop on one port.
    ///   - replacingStaleSocket: for a Unix socket path, remove a stale socket
    ///     file first (see ``SocketDescriptor/listening(on:backlog:reusePort:replacingStaleSocket:)``).
    /// - Throws: ``EventLoopError`` naming the call that failed (`bind(ADDRESS)`: `EADDRINUSE`, ...).
    public init(on address: SocketAddress, loop: any EventLoopExecutor, backlog: Int32 = SocketDescriptor.maximumBacklog,
                reusePort: Bool = false, replacingStaleSocket: Bool = false) throws(EventLoopError) {
        descriptor = try SocketDescriptor.listening(on: address, backlog: backlog, reusePort: reusePort,
                                                    replacingStaleSocket: replacingStaleSocket)
        localAddress = (try? descriptor.localAddress()) ?? address
        self.loop = loop
        readiness = loop.readiness(for: descriptor.descriptor)
        socketFile = SocketDescriptor.BoundSocketFile(address)
    }

    /// Adopts a listening socket made elsewhere (one of several `SO_REUSEPORT`
    /// listeners, say), making it non-blocking; the new object owns and closes it.
    public init(adopting descriptor: SocketDescriptor, loop: any EventLoopExecutor) {
        self.descriptor = descriptor
        localAddress = (try? descriptor.localAddress()) ?? (try! SocketAddress(ipv4: "0.0.0.0", port: 0))
        self.loop = loop
        readiness = loop.readiness(for: descriptor.descriptor)
        socketFile = nil // made elsewhere: whoever made it removes it
        _ = fcntl(descriptor.fd, F_SETFL, fcntl(descriptor.fd, F_GETFL) | O_NONBLOCK)
    }

    deinit { close() }

    /// Waits for the next connection.
    ///
    /// - Returns: the connection, non-blocking, with `TCP_NODELAY`.
    /// - Throws: ``EventLoopError`` (``EventLoopError/Code/descriptorClosed``
    ///   after ``close()``, the errors `accept` reports), `CancellationError`.
    nonisolated(nonsending) public func accept() async throws -> AsyncSocket {
        if closed.load(ordering: .acquiring) { throw EventLoopError(.descriptorClosed, descriptor: descriptor.descriptor) }
        while true {
            switch try descriptor.accept() {
            case .processed(let (client, peer)):
                client.setNoDelayIfTCP(peer?.family)
                return AsyncSocket(adopting: client, peer: peer, loop: loop)
            case .wouldBlock:
                try await readiness.waitReadable()
            }
        }
    }

    /// Waits for the next connection as a server must: the network errors a
    /// new connection may bring are skipped, and when accept fails for want
    /// of descriptors, buffers or memory, `log` gets the error and accepting
    /// pauses for ``AcceptBackoff/delay`` instead of spinning.
    ///
    /// - Throws: only what ends accepting: cancellation, a closing loop, the
    ///   listener closed.
    nonisolated(nonsending) public func acceptBackingOff(log: (EventLoopError) -> Void) async throws -> AsyncSocket {
        while true {
            do {
                return try await accept()
            } catch let error as EventLoopError where error.errno != nil {
                if AcceptBackoff.retriesAtOnce(error) { continue }
                log(error)
                try await loop.sleep(for: AcceptBackoff.delay)
            }
        }
    }

    /// Stops accepting and closes the listening socket; a Unix socket file it
    /// bound is removed, unless another has taken the path since (asyncio's
    /// `cleanup_socket`). Harmless when closed already; ``accept()``
    /// afterwards throws ``EventLoopError/Code/descriptorClosed``.
    public func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        readiness.cancel()
        descriptor.close()
        socketFile?.remove()
    }
}
