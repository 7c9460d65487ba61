import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A non-blocking TCP connection used from async code on an event loop.
///
/// Every operation follows asyncio's three steps: try the system call; on
/// would-block, await the descriptor's readiness on the loop; try again.
/// Errors are ``EventLoopError``s that name the call, the descriptor and the
/// peer (`read (descriptor 7, peer 127.0.0.1:8000) failed: Connection reset
/// by peer (ECONNRESET)`). Writes never raise `SIGPIPE` (a vanished peer is
/// `EPIPE`).
///
/// ## Tasks
/// A socket is `Sendable`: one task may read while others write - the
/// fan-out a server needs, a task per client reading and other clients'
/// tasks writing to it - and each waits on the loop without blocking the
/// others. Writers take turns in the order they call: a write waits for the
/// one before it to finish, so two tasks' messages never interleave (as
/// asyncio's `writer.write()` and SwiftNIO's outbound writer serialize
/// them). One reader at a time: a second task waiting to read while one
/// does traps with a message, since two readers would share the bytes by
/// chance.
/// Tasks on the loop's executor (`loop.run { }`, `Task(executorPreference:)`)
/// use it without a hop; from another executor each wait hops to the loop
/// and back.
///
/// ## Closing
/// ``close()`` stops the loop's watchers first, then closes the descriptor;
/// closing twice is harmless, every operation after it throws
/// ``EventLoopError/Code/descriptorClosed`` (the number may already be
/// another file's), and a socket closes itself when the last reference
/// goes. ``closeLingering(timeout:)`` closes so that the peer reads what was
/// written last. Close it from one of the tasks that use it: an operation
/// of another task, racing the close, fails.
public final class AsyncSocket: @unchecked Sendable {
    // Sendable because every mutable field is an atomic (the open flag, the
    // read pacing's) or behind a lock (the writers' turns), the descriptor
    // and peer are immutable, and the readiness touches its own state only on the
    // loop's thread (a wait from another thread begins there as a job, and
    // `cancel` hops there too) - so two tasks, a reader and a writer, may
    // use the socket at once, from any executor.

    /// What ``read(maximum:)`` asks for by default: 64 KiB, about what a
    /// socket's receive buffer holds between two reads.
    public static let defaultReadSize = 64 * 1024

    /// The descriptor; valid until ``close()``.
    public let descriptor: SocketDescriptor
    /// The other end, when known.
    public let peer: SocketAddress?
    private let readiness: any DescriptorReadiness
    private let loop: any EventLoopExecutor
    private let closed = Atomic(false)
    /// When a read waits for the loop first: a read that filled less than
    /// its buffer most likely drained the socket (see ``maximumReadsPerTurn``).
    private let pacing = ReadPacing()
    /// The writers' turns, first come first served.
    private let writers = WriterTurns()

    /// How many reads in a row may find data without letting the loop turn:
    /// the next one waits for the loop's next poll first, so that a peer
    /// whose bytes never stop (a client pipelining without pause) cannot
    /// keep this task running while every other connection of the loop
    /// waits. 4 by default, SwiftNIO's `maxMessagesPerRead`; 1 is the
    /// callback engines' one read per readiness event.
    public var maximumReadsPerTurn: Int {
        get { pacing.maximumReadsPerTurn }
        set { pacing.maximumReadsPerTurn = newValue }
    }

    /// The executor of the loop it waits on.
    package var executor: any EventLoopExecutor { loop }

    /// Adopts a connected non-blocking socket.
    ///
    /// - Parameters:
    ///   - descriptor: the connected socket; the new object owns and closes it.
    ///   - peer: the other end, for messages.
    ///   - loop: the executor of the loop whose readiness waits it uses.
    public init(adopting descriptor: SocketDescriptor, peer: SocketAddress?, loop: any EventLoopExecutor) {
        self.descriptor = descriptor
        self.peer = peer
        self.loop = loop
        self.readiness = loop.readiness(for: descriptor.descriptor)
    }

    deinit { close() }

    /// Connects to `address`.
    ///
    /// - Parameters:
    ///   - address: where to connect.
    ///   - loop: the executor of the loop to wait on.
    ///   - timeout: how long to wait for the connection; nil waits as long as
    ///     the kernel does (and the task's own deadline, if it has one).
    /// - Returns: the connected socket (with `TCP_NODELAY`).
    /// - Throws: ``EventLoopError`` naming `connect(ADDRESS)`: `ECONNREFUSED`,
    ///   ``EventLoopError/Code/timedOut`` at the timeout, ...; `CancellationError`.
    nonisolated(nonsending) public static func connect(to address: SocketAddress, on loop: any EventLoopExecutor,
                                                       timeout: Duration? = nil) async throws -> AsyncSocket {
        let descriptor = try SocketDescriptor.stream(address.family)
        let socket = AsyncSocket(adopting: descriptor, peer: address, loop: loop)
        descriptor.setNoDelayIfTCP(address.family)
        if case .wouldBlock = try descriptor.connect(to: address) {
            do {
                try await withTimeout(timeout) { try await socket.readiness.waitWritable() }
            } catch let error as EventLoopError where error.code == .timedOut {
                throw EventLoopError(.timedOut, descriptor: descriptor.descriptor, operation: "connect(\(address))",
                                     peer: address, detail: error.detail)
            }
            try descriptor.connectResult(to: address)
        }
        return socket
    }

    /// Reads what is available into `buffer`, waiting until something is.
    ///
    /// The deadline of ``withTimeout(_:_:)`` holds whether the read waits
    /// or not: data that is already there does not extend it.
    ///
    /// - Returns: the number of bytes read; 0 at end of stream.
    /// - Throws: ``EventLoopError`` (such as `ECONNRESET`, a timeout), `CancellationError`.
    nonisolated(nonsending) public func read(into buffer: UnsafeMutableRawBufferPointer) async throws -> Int {
        try checkOpen()
        if pacing.mustWait {
            try await waitForReadiness()
        } else {
            try Deadline.checkCurrent()
        }
        while true {
            switch try annotated({ () throws(EventLoopError) in try descriptor.read(into: buffer) }) {
            case .processed(let count):
                pacing.read(drained: count < buffer.count)
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
    }

    /// Waits for the loop to report the socket readable: at least one turn
    /// of the loop, in which every other ready task and callback runs.
    nonisolated(nonsending) private func waitForReadiness() async throws {
        try await annotated { try await readiness.waitReadable() }
        pacing.waited()
    }

    /// Waits until the socket can be written without blocking.
    nonisolated(nonsending) public func waitWritable() async throws {
        try checkOpen()
        try await annotated { try await readiness.waitWritable() }
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
            if pacing.mustWait {
                try await waitForReadiness()
            } else {
                try Deadline.checkCurrent()
            }
            var count = 0
            var bytes = try [UInt8](unsafeUninitializedCapacity: maximum) { buffer, initialized in
                switch try annotated({ () throws(EventLoopError) in try descriptor.read(into: UnsafeMutableRawBufferPointer(buffer)) }) {
                case .processed(let read): count = read
                case .wouldBlock: count = -1
                }
                initialized = max(count, 0)
            }
            guard count >= 0 else {
                pacing.foundNothing() // and the buffer goes before the wait
                continue
            }
            pacing.read(drained: count < maximum)
            if count < maximum / 2 { bytes = Array(bytes[...]) } // a copy of its own size: not the big buffer
            return bytes
        }
    }

    /// Reads until the peer ends the stream.
    ///
    /// - Parameter limit: the most bytes to accept; more is an error
    ///   (``EventLoopError/Code/system(_:)`` with `EMSGSIZE`) that names the limit.
    /// - Returns: everything the peer sent.
    nonisolated(nonsending) public func readToEnd(limit: Int = .max) async throws -> [UInt8] {
        var result: [UInt8] = []
        while true {
            let chunk = try await read()
            if chunk.isEmpty { return result }
            guard result.count + chunk.count <= limit else {
                throw EventLoopError.system("read(more than \(limit) bytes)", .messageTooLong, descriptor: descriptor.descriptor, peer: peer)
            }
            result.append(contentsOf: chunk)
        }
    }

    /// Writes all of `bytes`, waiting whenever the socket's buffer is full.
    ///
    /// The caller keeps `bytes` valid until the write returns. A write waits
    /// for the writes other tasks began before it.
    nonisolated(nonsending) public func write(_ bytes: UnsafeRawBufferPointer) async throws {
        try checkOpen()
        try await writers.acquire()
        defer { writers.release() }
        try checkOpen()
        try Deadline.checkCurrent()
        var offset = 0
        while offset < bytes.count {
            switch try annotated({ () throws(EventLoopError) in try descriptor.write(UnsafeRawBufferPointer(rebasing: bytes[offset...])) }) {
            case .processed(let count): offset += count
            case .wouldBlock: try await annotated { try await readiness.waitWritable() }
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
        try await writers.acquire()
        defer { writers.release() }
        try checkOpen()
        try Deadline.checkCurrent()
        var offset = bytes.startIndex
        while offset < bytes.endIndex {
            let result = bytes[offset...].withUnsafeBytes { bytes in
                Result { () throws(EventLoopError) in try descriptor.write(bytes) }
            }
            switch try annotated({ () throws(EventLoopError) in try result.get() }) {
            case .processed(let count): offset += count
            case .wouldBlock: try await annotated { try await readiness.waitWritable() }
            }
        }
    }

    /// Writes `chunks` one after another with gathering writes (`sendmsg`
    /// with many buffers, `writev`'s job): a header and a body, or the
    /// messages queued for a client, go out in one system call instead of
    /// one each, and are not copied into one array first. Waits whenever
    /// the socket's buffer is full, and for the writes other tasks began
    /// before it.
    nonisolated(nonsending) public func write(gathering chunks: [[UInt8]]) async throws {
        try checkOpen()
        try await writers.acquire()
        defer { writers.release() }
        try checkOpen()
        try Deadline.checkCurrent()
        var chunk = 0, offset = 0 // where the unwritten bytes begin
        while chunk < chunks.count {
            if offset == chunks[chunk].count {
                chunk += 1
                offset = 0
                continue
            }
            let result = withBuffers(chunks[chunk...], skippingFirst: offset) { buffers in
                Result { () throws(EventLoopError) in try descriptor.write(gathering: buffers) }
            }
            switch try annotated({ () throws(EventLoopError) in try result.get() }) {
            case .processed(var written):
                while written > 0 {
                    let step = min(written, chunks[chunk].count - offset)
                    written -= step
                    offset += step
                    if offset == chunks[chunk].count, chunk + 1 < chunks.count {
                        chunk += 1
                        offset = 0
                    }
                }
            case .wouldBlock:
                try await annotated { try await readiness.waitWritable() }
            }
        }
    }

    /// Calls `body` with the bytes of `chunks` as buffers - at most 64, one
    /// nested closure each - the first one's first `skipped` bytes left out
    /// (they were written).
    private func withBuffers<R>(_ chunks: ArraySlice<[UInt8]>, skippingFirst skipped: Int,
                                _ body: ([UnsafeRawBufferPointer]) -> R) -> R {
        func nest(_ index: Int, _ buffers: inout [UnsafeRawBufferPointer]) -> R {
            guard index < chunks.endIndex, buffers.count < 64 else { return body(buffers) }
            return chunks[index].withUnsafeBytes { bytes in
                buffers.append(index == chunks.startIndex ? UnsafeRawBufferPointer(rebasing: bytes[skipped...]) : bytes)
                return nest(index + 1, &buffers)
            }
        }
        var buffers: [UnsafeRawBufferPointer] = []
        buffers.reserveCapacity(min(chunks.count, 64))
        return nest(chunks.startIndex, &buffers)
    }

    /// Writes `text` as UTF-8.
    nonisolated(nonsending) public func write(_ text: String) async throws {
        try await write(Array(text.utf8))
    }

    /// Ends the sending direction: the peer reads end of stream; reading still works.
    ///
    /// - Throws: ``EventLoopError``.
    public func shutdownWrite() throws(EventLoopError) {
        try checkOpen()
        try annotated { () throws(EventLoopError) in try descriptor.shutdownWrite() }
    }

    /// Throws the closed error once ``close()`` has been called: the number
    /// may already belong to another file, which no operation may touch.
    @inline(__always)
    private func checkOpen() throws(EventLoopError) {
        if closed.load(ordering: .acquiring) {
            throw EventLoopError(.descriptorClosed, descriptor: descriptor.descriptor, peer: peer)
        }
    }

    /// `body`'s error, naming this socket's descriptor and peer.
    @inline(__always)
    private func annotated<T>(_ body: () throws(EventLoopError) -> T) throws(EventLoopError) -> T {
        do { return try body() } catch { throw error.about(descriptor: descriptor.descriptor, peer: peer) }
    }

    /// `body`'s error, naming this socket's descriptor and peer (an await).
    nonisolated(nonsending) private func annotated<T>(_ body: nonisolated(nonsending) () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as EventLoopError {
            throw error.about(descriptor: descriptor.descriptor, peer: peer)
        }
    }

    /// Stops the loop's watchers for the socket, then closes it. Harmless
    /// when closed already; every operation afterwards throws
    /// ``EventLoopError/Code/descriptorClosed`` (the number may be another
    /// file's by then).
    public func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        readiness.cancel()
        descriptor.close()
    }

    /// Closes so that the peer reads what was written last - nginx's
    /// lingering close: the sending side is shut down (the peer reads end
    /// of stream), then what the peer still sends is read and dropped until
    /// it closes too, for at most `timeout`; then the socket is closed.
    /// Closing at once with unread bytes queued would make the kernel send a
    /// reset, which can overtake the last answer and destroy it.
    ///
    /// Never throws: whatever happens, the socket ends closed.
    ///
    /// It waits for the writes other tasks began before it (not counted in
    /// `timeout`; cancel the task to end that wait), so their bytes go out first.
    nonisolated(nonsending) public func closeLingering(timeout: Duration = .seconds(2)) async {
        defer { close() }
        guard (try? await writers.acquire()) != nil else { return }
        defer { writers.release() }
        guard (try? shutdownWrite()) != nil else { return }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
        defer { buffer.deallocate() }
        _ = try? await withTimeout(timeout) {
            while try await read(into: buffer) > 0 {}
        }
    }
}

/// The writers of one socket, taking turns in the order they ask: the
/// first goes at once, the others wait (cancellable) until the one before
/// them releases its turn, which passes straight to the next.
package final class WriterTurns: Sendable {
    private struct State {
        var busy = false
        var waiting: [(id: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
        /// Waiters cancelled before they were in the queue.
        var cancelledEarly: Set<UInt64> = []
        var nextID: UInt64 = 0
    }

    // LockedValue, not Mutex: ThreadSanitizer sees a pthread lock, not a futex.
    private let state = LockedValue(State())

    package init() {}

    /// Waits for the caller's turn: at once when nobody writes.
    nonisolated(nonsending) package func acquire() async throws {
        let ticket = state.withLock { state -> UInt64? in
            if !state.busy {
                state.busy = true
                return nil
            }
            state.nextID += 1
            return state.nextID
        }
        guard let ticket else { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome = state.withLock { state -> Result<Void, any Error>? in
                    if state.cancelledEarly.remove(ticket) != nil { return .failure(CancellationError()) }
                    if !state.busy {
                        state.busy = true
                        return .success(())
                    }
                    state.waiting.append((ticket, continuation))
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let removed = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                guard let index = state.waiting.firstIndex(where: { $0.id == ticket }) else {
                    state.cancelledEarly.insert(ticket)
                    return nil
                }
                return state.waiting.remove(at: index).continuation
            }
            removed?.resume(throwing: CancellationError())
        }
    }

    /// Ends the caller's turn: the next waiter's begins.
    package func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            guard !state.waiting.isEmpty else {
                state.busy = false
                return nil
            }
            return state.waiting.removeFirst().continuation
        }
        next?.resume()
    }
}
