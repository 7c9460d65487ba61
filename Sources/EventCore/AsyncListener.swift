#if canImport(Glibc)
import Glibc
#endif

/// A listening TCP socket that accepts connections from async code on an event loop.
public final class AsyncListener {
    /// The listening descriptor.
    public let descriptor: SocketDescriptor
    /// The address it listens on (with the port chosen, if port 0 was asked for).
    public let localAddress: SocketAddress
    private let readiness: any DescriptorReadiness
    private let loop: any AsyncEventLoop
    private var isClosed = false

    /// Listens on `address` (port 0 picks a free port).
    ///
    /// - Parameters:
    ///   - address: where to listen.
    ///   - loop: the loop accepted sockets will use.
    ///   - backlog: the kernel's queue of connections not yet accepted.
    ///   - reusePort: set `SO_REUSEPORT`, for one listener per loop on one port.
    public init(on address: SocketAddress, loop: any AsyncEventLoop, backlog: Int32 = SocketDescriptor.maximumBacklog, reusePort: Bool = false) throws {
        descriptor = try SocketDescriptor.listening(on: address, backlog: backlog, reusePort: reusePort)
        localAddress = (try? descriptor.localAddress()) ?? address
        self.loop = loop
        readiness = loop.readiness(for: descriptor.fd)
    }

    /// Adopts a listening socket made elsewhere (one of several `SO_REUSEPORT`
    /// listeners, say); the new object owns and closes it.
    public init(adopting descriptor: SocketDescriptor, loop: any AsyncEventLoop) {
        self.descriptor = descriptor
        localAddress = (try? descriptor.localAddress()) ?? (try! SocketAddress(ipv4: "0.0.0.0", port: 0))
        self.loop = loop
        readiness = loop.readiness(for: descriptor.fd)
        _ = fcntl(descriptor.fd, F_SETFL, fcntl(descriptor.fd, F_GETFL) | O_NONBLOCK)
    }

    deinit { close() }

    /// Waits for the next connection.
    ///
    /// - Returns: the connection, non-blocking, with `TCP_NODELAY`; `sending`,
    ///   so it can be handed to a task of its own.
    nonisolated(nonsending) public func accept() async throws -> sending AsyncSocket {
        if isClosed { throw DescriptorClosedError(fd: descriptor.fd) }
        while true {
            switch try descriptor.accept() {
            case .processed(let (client, peer)):
                try? client.setNoDelay()
                return AsyncSocket(adopting: client, peer: peer, loop: loop)
            case .wouldBlock:
                try await readiness.waitReadable()
            }
        }
    }

    /// Waits for the next connection as a server must: the network errors a
    /// new connection may bring are skipped, and when accept fails for want
    /// of descriptors, buffers or memory, `log` gets the error and accepting
    /// pauses for ``AcceptBackoff/seconds`` instead of spinning.
    ///
    /// - Throws: only what ends accepting: cancellation, a closing loop.
    nonisolated(nonsending) public func acceptBackingOff(log: (SystemCallError) -> Void) async throws -> sending AsyncSocket {
        while true {
            do {
                return try await accept()
            } catch let error as SystemCallError {
                if AcceptBackoff.retriesAtOnce(error) { continue }
                log(error)
                try await loop.sleep(seconds: AcceptBackoff.seconds)
            }
        }
    }

    /// Stops accepting and closes the listening socket. Harmless when closed
    /// already; ``accept()`` afterwards throws ``DescriptorClosedError``.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        readiness.cancel()
        descriptor.close()
    }
}
