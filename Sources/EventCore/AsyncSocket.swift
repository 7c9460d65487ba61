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
/// descriptor; closing twice is harmless, every operation after it throws
/// ``DescriptorClosedError``, and a socket closes itself when the last
/// reference goes.
public final class AsyncSocket {
    /// What ``read(maximum:)`` asks for by default: 64 KiB, about what a
    /// socket's receive buffer holds between two reads.
    public static let defaultReadSize = 64 * 1024

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
    /// Reads in a row that found data without waiting (see ``maximumReadsPerTurn``).
    private var readsWithoutWaiting = 0

    /// How many reads in a row may find data without letting the loop turn:
    /// the next one waits for the loop's next poll first, so that a peer
    /// whose bytes never stop (a client pipelining without pause) cannot
    /// keep this task running while every other connection of the loop
    /// waits. 4 by default, SwiftNIO's `maxMessagesPerRead`; 1 is the
    /// callback engines' one read per readiness event.
    public var maximumReadsPerTurn = 4 {
        didSet { maximumReadsPerTurn = max(maximumReadsPerTurn, 1) }
    }

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
        try checkOpen()
        if probablyDrained || readsWithoutWaiting >= maximumReadsPerTurn {
            try await waitForReadiness()
        } else {
            try Deadline.checkCurrent()
        }
        while true {
            switch try descriptor.read(into: buffer) {
            case .processed(let count):
                probablyDrained = count < buffer.count
                readsWithoutWaiting += 1
                return count
            case .wouldBlock:
                try await waitForReadiness()
            }
        }
    }

    /// Waits until the socket can be read without blocking (the next read
    /// returns data, or 0 at end of stream).
    nonisolated(nonsending) public func waitReadable() async throws {
        try checkOpen()
        try await waitForReadiness()
        probablyDrained = false
    }

    /// Waits for the loop to report the socket readable: at least one turn
    /// of the loop, in which every other ready task and callback runs.
    nonisolated(nonsending) private func waitForReadiness() async throws {
        try await readiness.waitReadable()
        readsWithoutWaiting = 0
    }

    /// Waits until the socket can be written without blocking.
    nonisolated(nonsending) public func waitWritable() async throws {
        try checkOpen()
        try await readiness.waitWritable()
    }

    /// Reads what is available, up to `maximum` bytes, waiting until something is.
    ///
    /// No buffer is held while the read waits (an idle connection parked in
    /// `read()` costs no buffer memory), and the bytes come back in an array
    /// of their own size.
    ///
    /// - Returns: the bytes; empty at end of stream.
    nonisolated(nonsending) public func read(maximum: Int = AsyncSocket.defaultReadSize) async throws -> [UInt8] {
        try checkOpen()
        while true {
            if probablyDrained || readsWithoutWaiting >= maximumReadsPerTurn {
                try await waitForReadiness()
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
            readsWithoutWaiting += 1
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
        try checkOpen()
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
        try await write(bytes[...])
    }

    /// Writes all of `bytes` - a slice of a larger array, which it shares
    /// rather than copies while a write waits (many connections sending
    /// parts of one document hold one copy of it, not one each) - waiting
    /// whenever the socket's buffer is full.
    nonisolated(nonsending) public func write(_ bytes: ArraySlice<UInt8>) async throws {
        try checkOpen()
        try Deadline.checkCurrent()
        var offset = bytes.startIndex
        while offset < bytes.endIndex {
            let result = try bytes[offset...].withUnsafeBytes { try descriptor.write($0) }
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
        try checkOpen()
        try descriptor.shutdownWrite()
    }

    /// Throws the closed error once ``close()`` has been called: the number
    /// may already belong to another file, which no operation may touch.
    @inline(__always)
    private func checkOpen() throws(DescriptorClosedError) {
        if isClosed { throw DescriptorClosedError(fd: descriptor.fd) }
    }

    /// Stops the loop's watchers for the socket, then closes it. Harmless
    /// when closed already; every operation afterwards throws
    /// ``DescriptorClosedError`` (the number may be another file's by then).
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        readiness.cancel()
        descriptor.close()
    }
}
