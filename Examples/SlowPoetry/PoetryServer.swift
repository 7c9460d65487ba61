import Engines
import EV
import Epoll
import EventCore
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
    private let stopper: @Sendable () -> Void

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
    public func stop() { stopper() }
}

// MARK: blocking and threads

enum BlockingEngine {
    static func start(_ listener: SocketDescriptor, _ options: PoetryServerOptions, perClientThread: Bool) throws -> @Sendable () -> Void {
        // Blocking sockets, as the classic server: accept and send wait.
        _ = fcntl(listener.fd, F_SETFL, fcntl(listener.fd, F_GETFL) & ~O_NONBLOCK)
        let stopping = LockedValue(false)
        let acceptor = try PlainThread(stackSize: PlainThread.smallStackSize) {
            while !stopping.withLock({ $0 }) {
                guard let client = AcceptBackoff.acceptBlocking(on: listener, stopping: { stopping.withLock { $0 } },
                                                                log: options.log) else { break }
                if perClientThread {
                    do {
                        try PlainThread(stackSize: PlainThread.smallStackSize) { serve(client, options, stopping) }.detach()
                    } catch {
                        options.log("\(error); closing the client")
                        closeGracefully(client)
                    }
                } else {
                    serve(client, options, stopping)
                }
            }
        }
        return {
            stopping.withLock { $0 = true }
            shutdown(listener.fd, Int32(SHUT_RDWR))
            acceptor.join()
            listener.close()
        }
    }

    /// Sends the poem to one client, chunk by chunk, sleeping between chunks.
    static func serve(_ client: SocketDescriptor, _ options: PoetryServerOptions, _ stopping: LockedValue<Bool>) {
        defer { closeGracefully(client) }
        var offset = 0
        while offset < options.poem.count && !stopping.withLock({ $0 }) {
            let end = min(offset + options.chunkSize, options.poem.count)
            let sent = options.poem[offset..<end].withUnsafeBytes { bytes in
                sendAll(client.fd, bytes)
            }
            guard sent else {
                options.log("client went away after \(offset) bytes")
                return
            }
            offset = end
            sleepBlocking(options.delay)
        }
    }

    static func sendAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = send(fd, bytes.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL))
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            done += n
        }
        return true
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

// MARK: evented, callbacks (libev or epoll, one code)

enum CallbackEngine {
    /// Runs the server on a loop of its own thread: a readiness watch on the
    /// listener, and per client a timer that sends the next chunk.
    static func start<L: EventLoop>(_ listener: SocketDescriptor, _ options: PoetryServerOptions,
                                    _ make: @escaping @Sendable () throws -> L) throws -> @Sendable () -> Void {
        let thread = try EventLoopThread<L>(make) { loop in
            Acceptor(loop, listener, options).watch()
        }
        return {
            thread.stop()
            thread.join()
            listener.close()
        }
    }

    /// Accepts every waiting client; when accept fails for want of
    /// descriptors or memory, stops watching the listener for
    /// ``AcceptBackoff/delay`` instead of spinning on its readiness.
    ///
    /// The loop owns the acceptor, through the watch's callback (or, during
    /// a back-off, the timer's); the acceptor refers to its watch weakly, so
    /// that closing the loop releases all of it.
    final class Acceptor<L: EventLoop> {
        let loop: L
        let listener: SocketDescriptor
        let options: PoetryServerOptions
        weak var readiness: (any IOWatching)?

        init(_ loop: L, _ listener: SocketDescriptor, _ options: PoetryServerOptions) {
            self.loop = loop
            self.listener = listener
            self.options = options
        }

        func watch() {
            do {
                readiness = try loop.watchReadiness(listener.descriptor, .read) { [self] _ in acceptAll() }
            } catch {
                options.log("cannot watch the listener: \(error)")
            }
        }

        func acceptAll() {
            do throws(EventLoopError) {
                try AcceptBackoff.acceptWaiting(on: listener) { Client(loop, $0, options).sendNext() }
            } catch {
                options.log(AcceptBackoff.message(error))
                readiness?.cancel()
                _ = loop.schedule(after: AcceptBackoff.delay) { [self] in watch() }
            }
        }
    }

    /// One client: sends a chunk, waits `delay`, sends the next; waits for
    /// writability when a slow reader's buffer is full.
    final class Client<L: EventLoop> {
        let loop: L
        let socket: SocketDescriptor
        let options: PoetryServerOptions
        var offset = 0
        var chunkEnd = 0
        var writable: (any IOWatching)?

        init(_ loop: L, _ socket: SocketDescriptor, _ options: PoetryServerOptions) {
            self.loop = loop
            self.socket = socket
            self.options = options
        }

        func sendNext() {
            guard offset < options.poem.count else { return finish() }
            chunkEnd = min(offset + options.chunkSize, options.poem.count)
            flush()
        }

        /// Writes the rest of the chunk; on would-block, waits to be writable.
        func flush() {
            while offset < chunkEnd {
                let result = options.poem[offset..<chunkEnd].withUnsafeBytes { try? socket.write($0) }
                switch result {
                case .processed(let count)?:
                    offset += count
                case .wouldBlock?:
                    if writable == nil {
                        writable = try? loop.watchReadiness(socket.descriptor, .write) { [self] _ in flush() }
                    }
                    return
                case nil:
                    options.log("client went away after \(offset) bytes")
                    return finish()
                }
            }
            writable?.cancel()
            writable = nil
            _ = loop.schedule(after: options.delay) { [self] in sendNext() }
        }

        func finish() {
            writable?.cancel()
            writable = nil
            closeGracefully(socket)
        }
    }
}

// MARK: async/await, on libev or epoll (one code)

enum AsyncEngine {
    static func start<L: EventLoop>(_ listener: SocketDescriptor, _ options: PoetryServerOptions,
                                    _ make: @escaping @Sendable () throws -> L) throws -> @Sendable () -> Void {
        let thread = try EventLoopThread<L>(make) { loop in
            let executor = loop.executor
            Task(executorPreference: executor) {
                let sockets = AsyncListener(adopting: listener, loop: executor)
                while true {
                    let client: AsyncSocket
                    do {
                        client = try await sockets.acceptBackingOff { options.log(AcceptBackoff.message($0)) }
                    } catch {
                        return // the loop is closing
                    }
                    Task(executorPreference: executor) { await serve(client, options, executor) }
                }
            }
        }
        return {
            thread.stop()
            thread.join()
            listener.close()
        }
    }

    static func serve(_ client: AsyncSocket, _ options: PoetryServerOptions, _ executor: some EventLoopExecutor) async {
        var offset = 0
        defer {
            discardInput(client.descriptor) // a FIN, not a reset (see closeGracefully)
            client.close()
        }
        while offset < options.poem.count {
            let end = min(offset + options.chunkSize, options.poem.count)
            do {
                // A slice of the one poem every connection shares: a write
                // that waits for a slow client holds no copy of its chunk.
                try await client.write(options.poem[offset..<end])
                offset = end
                try await executor.sleep(for: options.delay)
            } catch is CancellationError {
                return
            } catch EventLoopError.loopClosed {
                return
            } catch {
                options.log("client went away after \(offset) bytes")
                return
            }
        }
    }
}
