import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A non-blocking datagram socket - UDP over IPv4 or IPv6, or a Unix-domain
/// datagram socket - used from async code on an event loop: asyncio's
/// datagram endpoint, SwiftNIO's `DatagramChannel`.
///
/// ```swift
/// let server = try DatagramSocket(bindingTo: SocketAddress(parsing: "127.0.0.1:0"), loop: executor)
/// let request = try await server.receive()
/// try await server.send(request.bytes, to: request.address)   // echo it back
/// ```
///
/// - Bound (``init(bindingTo:connectingTo:loop:)``) it receives from anyone,
///   each ``Datagram`` with its sender, and sends to any address; connected
///   (`connectingTo`) it exchanges datagrams with one peer only, and
///   ``send(_:to:)`` without an address goes there.
/// - A datagram larger than the buffer it is received into is cut, and says
///   so: ``Datagram/isTruncated`` and ``Datagram/size``, never hidden.
/// - ``receiveBatch(count:maximumSize:)`` and ``sendBatch(_:)`` move many
///   datagrams in one system call (`recvmmsg`, `sendmmsg`), for a loop that
///   reads many.
/// - A flood cannot take the loop: after ``maximumReceivesPerTurn`` receives
///   in a row that found a datagram waiting, the next waits for the loop's
///   next poll, so its timers and other sockets are served in between.
///
/// Errors are ``EventLoopError``s naming the call, the descriptor and the
/// address. ``close()`` stops the loop's watch and closes the socket; every
/// operation after it throws ``EventLoopError/Code/descriptorClosed``; the
/// socket closes itself when the last reference goes. A Unix datagram
/// socket bound to a path leaves its file behind, as `bind` does.
public final class DatagramSocket: @unchecked Sendable {
    // Sendable as AsyncSocket is: every mutable field is an atomic (the open
    // flag, the pacing), the descriptor and addresses are immutable, and the
    // readiness touches its own state only on the loop's thread (a wait from
    // another thread begins there as a job, and `cancel` hops there too).

    /// The descriptor; valid until ``close()``.
    public let descriptor: SocketDescriptor
    /// The address the socket is bound to: the port the kernel picked for
    /// port 0, or at connect for a socket made with only a peer; nil for an
    /// unbound Unix-domain socket.
    public let localAddress: SocketAddress?
    /// The one peer of a connected socket; nil for a bound one.
    public let peer: SocketAddress?
    private let readiness: any DescriptorReadiness
    private let closed = Atomic(false)
    private let pacing = ReadPacing()

    /// How many receives in a row may find a datagram waiting before the
    /// next waits for the loop's next poll (4 by default, at least 1).
    public var maximumReceivesPerTurn: Int {
        get { pacing.maximumReadsPerTurn }
        set { pacing.maximumReadsPerTurn = newValue }
    }

    /// A datagram socket bound to `address` (port 0: a free port; nil: none,
    /// for a client the kernel binds at its first send), and connected to
    /// `peer` if given.
    ///
    /// - Parameters:
    ///   - address: where to receive; its family is the socket's.
    ///   - peer: the one address to exchange datagrams with.
    ///   - loop: the executor of the loop whose readiness waits it uses.
    /// - Throws: ``EventLoopError`` naming `bind(ADDRESS)` or `connect(ADDRESS)`.
    public init(bindingTo address: SocketAddress?, connectingTo peer: SocketAddress? = nil,
                loop: any EventLoopExecutor) throws(EventLoopError) {
        guard let family = address?.family ?? peer?.family else {
            throw EventLoopError(.invalidArgument, operation: "DatagramSocket", detail: "neither an address to bind nor a peer")
        }
        if let address, let peer, address.family != peer.family {
            throw EventLoopError(.invalidArgument, operation: "DatagramSocket",
                                 detail: "the address \(address) and the peer \(peer) are of different families")
        }
        let socket = try SocketDescriptor.datagram(family)
        do {
            if let address { try socket.bind(to: address) }
            // A datagram socket's connect completes at once: never would-block.
            if let peer { _ = try socket.connect(to: peer) }
            if address != nil {
                localAddress = try socket.localAddress()
            } else {
                // Connected over IP, the kernel bound it to a free port at
                // connect; an unbound Unix socket has no address.
                localAddress = family == .unix ? nil : try? socket.localAddress()
            }
        } catch {
            socket.close()
            throw error
        }
        descriptor = socket
        self.peer = peer
        readiness = loop.readiness(for: socket.descriptor)
    }

    /// A datagram socket connected to `peer`, bound to a free port of its
    /// family by the kernel (for a Unix-domain peer: unbound, so it can send
    /// but not be answered - bind one with ``init(bindingTo:connectingTo:loop:)``).
    public convenience init(connectingTo peer: SocketAddress, loop: any EventLoopExecutor) throws(EventLoopError) {
        try self.init(bindingTo: nil, connectingTo: peer, loop: loop)
    }

    deinit { close() }

    /// Sends one datagram of `bytes` to `address`, or to the peer of a
    /// connected socket when nil, waiting while the socket's buffer is full.
    ///
    /// - Throws: ``EventLoopError``: `EMSGSIZE` for a datagram over the
    ///   protocol's limit (65,507 bytes for UDP over IPv4), `ECONNREFUSED`
    ///   when an earlier datagram to a connected peer found nobody there,
    ///   `EDESTADDRREQ` with no address on an unconnected socket.
    nonisolated(nonsending) public func send(_ bytes: [UInt8], to address: SocketAddress? = nil) async throws {
        try checkOpen()
        try Deadline.checkCurrent()
        while true {
            let result = bytes.withUnsafeBytes { buffer in
                Result { () throws(EventLoopError) in try descriptor.send(buffer, to: address) }
            }
            switch try annotated({ () throws(EventLoopError) in try result.get() }, address) {
            case .processed: return
            case .wouldBlock: try await annotated({ try await readiness.waitWritable() }, address)
            }
        }
    }

    /// Sends every datagram of `datagrams` (each to its address; nil: the
    /// connected peer), in as few `sendmmsg` calls as the kernel allows,
    /// waiting while the socket's buffer is full.
    nonisolated(nonsending) public func sendBatch(_ datagrams: [Datagram]) async throws {
        try checkOpen()
        try Deadline.checkCurrent()
        var rest = datagrams[...]
        while !rest.isEmpty {
            switch try annotated({ () throws(EventLoopError) in try descriptor.sendBatch(Array(rest)) }, nil) {
            case .processed(let count): rest = rest.dropFirst(max(count, 1))
            case .wouldBlock: try await annotated({ try await readiness.waitWritable() }, nil)
            }
        }
    }

    /// Receives the next datagram, waiting until one comes; one larger than
    /// `maximumSize` comes back cut (``Datagram/isTruncated``).
    ///
    /// - Parameter maximumSize: the most bytes kept of a datagram: 65,536
    ///   by default, which holds any UDP datagram over IPv4.
    /// - Throws: ``EventLoopError`` (`ECONNREFUSED` on a connected socket
    ///   whose peer has no one listening, a timeout), `CancellationError`.
    nonisolated(nonsending) public func receive(maximumSize: Int = 65536) async throws -> Datagram {
        try checkOpen()
        let maximumSize = max(maximumSize, 1)
        while true {
            if pacing.mustWait { try await waitForReadiness() } else { try Deadline.checkCurrent() }
            var received: (count: Int, size: Int, sender: SocketAddress?)?
            let bytes = try [UInt8](unsafeUninitializedCapacity: maximumSize) { buffer, initialized in
                switch try annotated({ () throws(EventLoopError) in try descriptor.receive(into: UnsafeMutableRawBufferPointer(buffer)) }, nil) {
                case .processed(let outcome):
                    received = outcome
                    initialized = outcome.count
                case .wouldBlock:
                    initialized = 0
                }
            }
            guard let received else {
                pacing.foundNothing()
                continue
            }
            // Another datagram may well be waiting: only the count paces.
            pacing.read(drained: false)
            return Datagram(bytes: bytes.count < maximumSize / 2 ? Array(bytes[...]) : bytes, from: received.sender, size: received.size)
        }
    }

    /// Receives the datagrams waiting now - at least one, at most `count` -
    /// in one `recvmmsg` call, waiting until one comes.
    ///
    /// - Parameters:
    ///   - count: the most datagrams to take.
    ///   - maximumSize: the most bytes kept of each (more: truncated).
    nonisolated(nonsending) public func receiveBatch(count: Int = 64, maximumSize: Int = 2048) async throws -> [Datagram] {
        try checkOpen()
        while true {
            if pacing.mustWait { try await waitForReadiness() } else { try Deadline.checkCurrent() }
            switch try annotated({ () throws(EventLoopError) in try descriptor.receiveBatch(count: count, maximumSize: maximumSize) }, nil) {
            case .processed(let datagrams):
                pacing.read(drained: datagrams.count < count)
                return datagrams
            case .wouldBlock:
                pacing.foundNothing()
            }
        }
    }

    /// Waits until a datagram can be received without blocking.
    nonisolated(nonsending) public func waitReadable() async throws {
        try checkOpen()
        try await waitForReadiness()
    }

    nonisolated(nonsending) private func waitForReadiness() async throws {
        try await annotated({ try await readiness.waitReadable() }, nil)
        pacing.waited()
    }

    /// Stops the loop's watch for the socket, then closes it. Harmless twice.
    public func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        readiness.cancel()
        descriptor.close()
    }

    @inline(__always)
    private func checkOpen() throws(EventLoopError) {
        if closed.load(ordering: .acquiring) {
            throw EventLoopError(.descriptorClosed, descriptor: descriptor.descriptor, peer: peer)
        }
    }

    /// `body`'s error, naming this socket's descriptor and the address it
    /// was about (the one sent to, else the connected peer).
    @inline(__always)
    private func annotated<T>(_ body: () throws(EventLoopError) -> T, _ address: SocketAddress?) throws(EventLoopError) -> T {
        do { return try body() } catch { throw error.about(descriptor: descriptor.descriptor, peer: address ?? peer) }
    }

    nonisolated(nonsending) private func annotated<T>(_ body: nonisolated(nonsending) () async throws -> T,
                                                      _ address: SocketAddress?) async throws -> T {
        do {
            return try await body()
        } catch let error as EventLoopError {
            throw error.about(descriptor: descriptor.descriptor, peer: address ?? peer)
        }
    }
}
