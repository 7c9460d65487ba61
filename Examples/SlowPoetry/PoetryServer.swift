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
    /// Runs the server on a loop of its own thread: a ``EventCore/Listener``,
    /// and per client a ``EventCore/Connection`` and a timer that sends the
    /// next chunk.
    static func start<L: EventLoop>(_ listener: SocketDescriptor, _ options: PoetryServerOptions,
                                    _ make: @escaping @Sendable () throws -> L) throws -> @Sendable () -> Void {
        let thread = try EventLoopThread<L>(make) { loop in
            do {
                _ = try Listener(adopting: listener, loop: loop, log: { options.log(AcceptBackoff.message($0)) }) { socket, peer in
                    let client = Client(loop, options)
                    do {
                        client.connection = try Connection(adopting: socket, peer: peer, on: loop, delegate: client)
                        client.sendNext()
                    } catch {
                        options.log("cannot serve \(peer.map { "\($0)" } ?? "a client"): \(error)")
                    }
                }
            } catch {
                options.log("cannot watch the listener: \(error)")
                listener.close()
            }
        }
        // The Listener owns the socket: closing the loop closes it.
        return {
            thread.stop()
            thread.join()
        }
    }

    /// One client: sends a chunk, waits `delay`, sends the next; a slow
    /// reader's chunk waits in the connection's queue, and the next pause
    /// starts once it has gone out.
    final class Client<L: EventLoop>: ConnectionDelegate {
        let loop: L
        let options: PoetryServerOptions
        var connection: Connection<L>?
        var offset = 0

        init(_ loop: L, _ options: PoetryServerOptions) {
            self.loop = loop
            self.options = options
        }

        func sendNext() {
            guard let connection else { return }
            guard offset < options.poem.count else {
                // A FIN, not a reset: the client's unread request must not
                // turn the close into one that destroys the poem's end.
                return connection.closeLingering()
            }
            let end = min(offset + options.chunkSize, options.poem.count)
            options.poem[offset..<end].withUnsafeBytes { _ = connection.write($0) }
            offset = end
            if connection.queuedBytes == 0 { pause() }
        }

        private func pause() {
            _ = loop.schedule(after: options.delay) { [self] in sendNext() }
        }

        /// The chunk a slow reader held back has gone out: pause, then the next.
        func connectionDrained() { pause() }

        /// The protocol reads no request: what a client sends is dropped.
        func connectionReceived(_ bytes: UnsafeRawBufferPointer) {}

        /// A client that half-closes still gets the whole poem.
        func connectionReachedEnd() -> Bool { true }

        func connectionClosed(_ error: EventLoopError?) {
            if error != nil || offset < options.poem.count {
                options.log("client went away after \(offset) bytes")
            }
            connection = nil
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
