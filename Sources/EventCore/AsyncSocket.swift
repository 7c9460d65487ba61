#if canImport(Glibc)
import Glibc
#endif

/// A non-blocking TCP connection used from async code on an event loop.
///
/// Every operation follows asyncio's three steps: try the system call; on
/// would-block, await the descriptor's readiness on the loop; try again.
/// Errors are ``SystemCallError``s naming the call and, for connects, the
/// address. Writes never raise `SIGPIPE` (a vanished peer is `EPIPE`).
///
/// Use a socket from one task running on its loop's executor (inside
/// `loop.run { }`, or a task with the loop's executor preference). It is not
/// `Sendable`. ``close()`` stops the loop's watchers first, then closes the
/// descriptor; closing twice is harmless, and a socket closes itself when
/// the last reference goes.
public final class AsyncSocket {
    /// The descriptor; valid until ``close()``.
    public let descriptor: SocketDescriptor
    /// The other end, when known.
    public let peer: SocketAddress?
    private let readiness: any DescriptorReadiness
    private var isClosed = false
    /// Whether the last read filled less than its buffer: the socket is then
    /// most likely drained, so the next read waits for readiness first
    /// instead of trying a `read` that would only say `EAGAIN`.
    private var probablyDrained = false

    /// Adopts a connected non-blocking socket.
    ///
    /// - Parameters:
    ///   - descriptor: the connected socket; the new object owns and closes it.
    ///   - peer: the other end, for messages.
    ///   - loop: the loop whose readiness waits it uses.
    public init(adopting descriptor: SocketDescriptor, peer: SocketAddress?, loop: any AsyncEventLoop) {
        self.descriptor = descriptor
        self.peer = peer
        self.readiness = loop.readiness(for: descriptor.fd)
    }

    deinit { close() }

    /// Connects to `address`.
    ///
    /// - Parameters:
    ///   - address: where to connect.
    ///   - loop: the loop to wait on.
    ///   - timeout: seconds to wait for the connection; nil waits as long as the kernel does.
    /// - Returns: the connected socket (with `TCP_NODELAY`).
    /// - Throws: ``SystemCallError`` naming `connect(ADDRESS)`: `ECONNREFUSED`, `ETIMEDOUT` on timeout, ...
    nonisolated(nonsending) public static func connect(to address: SocketAddress, on loop: any AsyncEventLoop, timeout: Double? = nil) async throws -> sending AsyncSocket {
        let descriptor = try SocketDescriptor.tcp(address.family)
        let socket = AsyncSocket(adopting: descriptor, peer: address, loop: loop)
        try? descriptor.setNoDelay()
        if case .wouldBlock = try descriptor.connect(to: address) {
            do {
                try await withTimeout(timeout) { try await socket.readiness.waitWritable() }
            } catch let error as TimeoutError {
                _ = error
                throw SystemCallError(call: "connect(\(address))", errno: .timedOut)
            }
            try descriptor.connectResult(to: address)
        }
        return socket
    }

    /// Reads what is available into `buffer`, waiting until something is.
    ///
    /// The ``Deadline`` of ``withTimeout(_:_:)`` holds whether the read waits
    /// or not: data that is already there does not extend it.
    ///
    /// - Returns: the number of bytes read; 0 at end of stream.
    /// - Throws: ``SystemCallError`` (such as `ECONNRESET`), ``TimeoutError``, `CancellationError`.
    nonisolated(nonsending) public func read(into buffer: UnsafeMutableRawBufferPointer) async throws -> Int {
        if probablyDrained { try await readiness.waitReadable() } else { try Deadline.checkCurrent() }
        while true {
            switch try descriptor.read(into: buffer) {
            case .processed(let count):
                probablyDrained = count < buffer.count
                return count
            case .wouldBlock:
                try await readiness.waitReadable()
            }
        }
    }

    /// Waits until the socket can be read without blocking (the next read
    /// returns data, or 0 at end of stream).
    nonisolated(nonsending) public func waitReadable() async throws {
        try await readiness.waitReadable()
        probablyDrained = false
    }

    /// Waits until the socket can be written without blocking.
    nonisolated(nonsending) public func waitWritable() async throws {
        try await readiness.waitWritable()
    }

    /// Reads what is available, up to `maximum` bytes, waiting until something is.
    ///
    /// No buffer is held while the read waits (an idle connection parked in
    /// `read()` costs no buffer memory), and the bytes come back in an array
    /// of their own size.
    ///
    /// - Returns: the bytes; empty at end of stream.
    nonisolated(nonsending) public func read(maximum: Int = 65536) async throws -> [UInt8] {
        while true {
            if probablyDrained {
                try await readiness.waitReadable()
                probablyDrained = false
            } else {
                try Deadline.checkCurrent()
            }
            var count = 0
            var bytes = try [UInt8](unsafeUninitializedCapacity: maximum) { buffer, initialized in
                switch try descriptor.read(into: UnsafeMutableRawBufferPointer(buffer)) {
                case .processed(let read): count = read
                case .wouldBlock: count = -1
                }
                initialized = max(count, 0)
            }
            guard count >= 0 else {
                probablyDrained = true // and the buffer goes before the wait
                continue
            }
            probablyDrained = count < maximum
            if count < maximum / 2 { bytes = Array(bytes[...]) } // a copy of its own size: not the big buffer
            return bytes
        }
    }

    /// Reads until the peer ends the stream.
    ///
    /// - Parameter limit: the most bytes to accept; more is an `EMSGSIZE` error.
    /// - Returns: everything the peer sent.
    nonisolated(nonsending) public func readToEnd(limit: Int = .max) async throws -> [UInt8] {
        var result: [UInt8] = []
        while true {
            let chunk = try await read()
            if chunk.isEmpty { return result }
            guard result.count + chunk.count <= limit else {
                throw SystemCallError(call: "read(more than \(limit) bytes from \(peer.map(String.init(describing:)) ?? "peer"))", errno: .messageTooLong)
            }
            result.append(contentsOf: chunk)
        }
    }

    /// Writes all of `bytes`, waiting whenever the socket's buffer is full.
    ///
    /// The caller keeps `bytes` valid until the write returns.
    nonisolated(nonsending) public func write(_ bytes: UnsafeRawBufferPointer) async throws {
        try Deadline.checkCurrent()
        var offset = 0
        while offset < bytes.count {
            switch try descriptor.write(UnsafeRawBufferPointer(rebasing: bytes[offset...])) {
            case .processed(let count): offset += count
            case .wouldBlock: try await readiness.waitWritable()
            }
        }
    }

    /// Writes all of `bytes`, waiting whenever the socket's buffer is full.
    nonisolated(nonsending) public func write(_ bytes: [UInt8]) async throws {
        try Deadline.checkCurrent()
        var offset = 0
        while offset < bytes.count {
            let result = try bytes.withUnsafeBytes { try descriptor.write(UnsafeRawBufferPointer(rebasing: $0[offset...])) }
            switch result {
            case .processed(let count): offset += count
            case .wouldBlock: try await readiness.waitWritable()
            }
        }
    }

    /// Writes `text` as UTF-8.
    nonisolated(nonsending) public func write(_ text: String) async throws {
        try await write(Array(text.utf8))
    }

    /// Ends the sending direction: the peer reads end of stream; reading still works.
    public func shutdownWrite() throws {
        try descriptor.shutdownWrite()
    }

    /// Stops the loop's watchers for the socket, then closes it. Harmless when closed already.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        readiness.cancel()
        descriptor.close()
    }
}

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

    /// Stops accepting and closes the listening socket. Harmless when closed already.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        readiness.cancel()
        descriptor.close()
    }
}
