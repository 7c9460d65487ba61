import EV
import Epoll
import EventCore
import HTTP
#if canImport(Glibc)
import Glibc
#endif

/// How an HTTP server serves.
public enum HTTPServerEngine: String, CaseIterable, Sendable {
    /// libev, callbacks (the same code as epoll, through `EventLoop`).
    case libev
    /// The hand-written epoll loop, callbacks.
    case epoll
    /// async/await tasks on the libev loop.
    case async
    /// A thread per connection, blocking sockets.
    case threads
}

/// What an HTTP server serves, where, and within which limits.
public struct HTTPServerOptions: Sendable {
    /// Where to listen; port 0 picks a free one.
    public var address: SocketAddress
    /// Loops (threads for `threads`: accepting threads), one listening socket each (SO_REUSEPORT).
    public var workers = 1
    /// The site.
    public var site: HTTPSite
    /// Limits and timeouts.
    public var limits = HTTPServerLimits()
    /// Seconds a graceful stop waits for responses in flight.
    public var stopTimeout = 4.0
    /// Called with a line to log.
    public var log: @Sendable (String) -> Void

    public init(address: SocketAddress, site: HTTPSite, log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.address = address
        self.site = site
        self.log = log
    }
}

/// A running HTTP server on one of the engines: `server http`.
public final class HTTPServer: Sendable {
    /// The address the server listens on.
    public let address: SocketAddress
    public let engine: HTTPServerEngine
    private let stopper: @Sendable () -> HTTPServerStats

    /// Starts a server on threads of its own; returns at once.
    ///
    /// - Throws: ``EventCore/SystemCallError`` if the address cannot be bound.
    public init(engine: HTTPServerEngine, options: HTTPServerOptions) throws {
        self.engine = engine
        // The first listener picks the port; the others share it (SO_REUSEPORT).
        let reusePort = options.workers > 1
        var listeners = [try SocketDescriptor.listening(on: options.address, reusePort: reusePort)]
        address = try listeners[0].localAddress()
        let bound = try SocketAddress(host: options.address.host, port: address.port)
        while listeners.count < options.workers {
            listeners.append(try SocketDescriptor.listening(on: bound, reusePort: true))
        }
        switch engine {
        case .libev: stopper = try CallbackHTTPEngine.start(listeners, options) { try Loop() }
        case .epoll: stopper = try CallbackHTTPEngine.start(listeners, options) { try EpollLoop() }
        case .async: stopper = try AsyncHTTPEngine.start(listeners, options)
        case .threads: stopper = try ThreadsHTTPEngine.start(listeners, options)
        }
    }

    /// Stops gracefully: stops accepting, lets the responses in flight finish
    /// (at most `stopTimeout` seconds), closes every connection, and returns
    /// what the server counted.
    @discardableResult
    public func stop() -> HTTPServerStats { stopper() }
}

// MARK: callbacks, on libev or epoll

enum CallbackHTTPEngine {
    static func start<L: EventLoop>(_ listeners: [SocketDescriptor], _ options: HTTPServerOptions,
                                    _ make: @escaping @Sendable () throws -> L) throws -> @Sendable () -> HTTPServerStats {
        let totals = LockedValue(HTTPServerStats(pages: options.site.pages))
        let threads = try listeners.map { listener in
            let worker = LoopOwned<CallbackWorker<L>>()
            let thread = try EventLoopThread<L>(make) { loop in
                worker.value = CallbackWorker(loop, listener, options) { stats in totals.withLock { $0.add(stats) } }
                worker.value?.start()
            }
            return (thread, worker)
        }
        return {
            for (thread, worker) in threads { try? thread.executor.submit { worker.value?.drain() } }
            for (thread, _) in threads { thread.join() }
            for listener in listeners { listener.close() }
            return totals.withLock { $0 }
        }
    }
}

/// A loop's server: accepts, keeps its connections, ticks their timeouts once a second.
final class CallbackWorker<L: EventLoop> {
    let loop: L
    let listener: SocketDescriptor
    let options: HTTPServerOptions
    let context: HTTPServerContext
    let report: (HTTPServerStats) -> Void
    var connections = DescriptorTable<CallbackConnection<L>>()
    /// The listener's watch, held here: paused at the connection cap, a
    /// libev watcher is held by nothing else (a weak reference lost it, and
    /// accepting never resumed).
    var acceptWatch: (any IOWatching)?
    var backingOff = false
    var draining = false
    /// One read buffer for every connection of the loop.
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)

    init(_ loop: L, _ listener: SocketDescriptor, _ options: HTTPServerOptions, report: @escaping (HTTPServerStats) -> Void) {
        self.loop = loop
        self.listener = listener
        self.options = options
        self.report = report
        context = HTTPServerContext(site: options.site, limits: options.limits)
    }

    deinit { readBuffer.deallocate() }

    func start() {
        watchListener()
        tick()
    }

    func watchListener() {
        do {
            acceptWatch = try loop.watchReadiness(listener.fd, .read) { [unowned self] _ in acceptAll() }
        } catch {
            options.log("cannot watch the listener: \(error)")
        }
    }

    func acceptAll() {
        let limit = options.limits.maxConnections
        do throws(SystemCallError) {
            try AcceptBackoff.acceptWaiting(on: listener, while: { !draining && connections.count < limit }) { client in
                try? client.setNoDelay()
                let connection = CallbackConnection(self, client)
                do {
                    try connection.startWatching()
                    connections[client.fd] = connection
                    context.stats.opened()
                } catch {
                    client.close()
                }
            }
            if connections.count >= limit {
                // At the limit: stop accepting until a connection closes.
                acceptWatch?.interest = []
            }
        } catch {
            options.log(AcceptBackoff.message(error))
            acceptWatch?.cancel()
            acceptWatch = nil
            backingOff = true
            _ = loop.schedule(after: AcceptBackoff.seconds) { [weak self] in
                guard let self, !draining else { return }
                backingOff = false
                watchListener()
            }
        }
    }

    func closed(_ connection: CallbackConnection<L>) {
        connections[connection.socket.fd] = nil
        context.stats.closed()
        if draining {
            if connections.isEmpty { finish() }
        } else if !backingOff, let acceptWatch, acceptWatch.interest.isEmpty {
            acceptWatch.interest = .read
        }
    }

    /// Once a second: the connections' timeouts.
    func tick() {
        _ = loop.schedule(after: 1) { [weak self] in
            guard let self else { return }
            let now = monotonicNow()
            for connection in connections.values { connection.tick(now) }
            if !draining || !connections.isEmpty { tick() }
        }
    }

    /// A graceful stop: no more accepting; idle connections close now, busy
    /// ones after their response; whatever is left at the timeout closes then.
    func drain() {
        guard !draining else { return }
        draining = true
        acceptWatch?.cancel()
        acceptWatch = nil
        for connection in connections.values { connection.drain() }
        if connections.isEmpty { return finish() }
        _ = loop.schedule(after: options.stopTimeout) { [weak self] in
            guard let self, draining else { return }
            for connection in connections.values { connection.close() }
        }
    }

    private func finish() {
        report(context.stats)
        loop.stop()
    }
}

/// An object of a loop's thread, reached by jobs submitted to that loop.
final class LoopOwned<T: AnyObject>: @unchecked Sendable {
    // Sendable: `value` is set on the loop's thread before the loop runs
    // (EventLoopThread's set-up, which its handshake orders before the
    // thread is returned) and read or changed only by jobs the loop itself
    // runs on that thread.
    var value: T?
    init() {}
}

/// One connection on a loop: reads into the worker's buffer, feeds the
/// sans-I/O ``HTTPServerConnection`` it is, writes what it answers. One
/// object per connection, which is also its watch's handler (no closure
/// context): an idle connection costs this object and its watch.
final class CallbackConnection<L: EventLoop>: HTTPServerConnection, ReadinessHandler {
    // The order of the stored properties is the layout (the descriptor fills
    // the superclass's tail padding).
    let socket: SocketDescriptor
    // unowned(unsafe): the worker owns its connections and closes them all
    // before it goes; a checked unowned reference costs an atomic operation
    // on every use (the worker has a side table: closures refer to it weakly).
    unowned(unsafe) let worker: CallbackWorker<L>
    /// The watch; it holds this connection until ``close()`` cancels and
    /// drops it (nil again once closed).
    var watch: L.Watch?
    /// After the server's FIN: waiting for the peer's until this time;
    /// infinity while not lingering. (With an optional, and an interest and
    /// a closed flag kept here, the object would need the next malloc size.)
    var lingerUntil = Double.infinity
    var isLingering: Bool { lingerUntil.isFinite }

    init(_ worker: CallbackWorker<L>, _ socket: SocketDescriptor) {
        self.socket = socket
        self.worker = worker
        super.init(context: worker.context, now: monotonicNow())
    }

    func startWatching() throws {
        watch = try worker.loop.watchReadiness(socket.fd, .read, handler: self)
    }

    // The protocol's witness for a generic class runs unspecialized code;
    // these make its entry check the loop type once and go on specialized.
    @_specialize(where L == EV.Loop)
    @_specialize(where L == EpollLoop)
    func ready(_ ready: Interest) {
        let now = monotonicNow()
        if isLingering {
            return discard()
        }
        if !ready.isDisjoint(with: [.read, .error]) && wantsInput {
            do throws(SystemCallError) {
                switch try socket.read(into: worker.readBuffer) {
                case .processed(0):
                    receiveEnd(now: now)
                case .processed(let count):
                    receive(UnsafeRawBufferPointer(rebasing: worker.readBuffer[..<count]), now: now)
                case .wouldBlock:
                    break
                }
            } catch {
                return close() // reset by the peer
            }
        }
        flush(now)
    }

    /// Writes what is pending, then watches for what comes next.
    func flush(_ now: Double) {
        while hasOutput {
            let result = withPendingOutput { bytes in Result { () throws(SystemCallError) in try socket.write(bytes) } }
            switch result {
            case .success(.processed(let count)):
                didSend(count, now: now)
            case .success(.wouldBlock):
                return update()
            case .failure:
                return close()
            }
        }
        update()
    }

    func update() {
        if isDone {
            return abandoned ? close() : linger()
        }
        if worker.draining && !hasOutput && isIdle {
            return linger()
        }
        var wanted: Interest = []
        if wantsInput { wanted.insert(.read) }
        if hasOutput { wanted.insert(.write) }
        if let watch, watch.interest != wanted {
            watch.interest = wanted
        }
    }

    /// A lingering close: the server's FIN, then the peer's input read and
    /// dropped until its FIN (or the linger timeout), so that unread input
    /// cannot turn the close into a reset that destroys the last answer.
    func linger() {
        guard !isLingering else { return }
        lingerUntil = monotonicNow() + worker.options.limits.lingerTimeout
        shutdown(socket.fd, Int32(SHUT_WR))
        watch?.interest = .read
        discard()
    }

    func discard() {
        while true {
            do throws(SystemCallError) {
                switch try socket.read(into: worker.readBuffer) {
                case .processed(0): return close()
                case .processed: continue
                case .wouldBlock: return
                }
            } catch {
                return close()
            }
        }
    }

    func tick(_ now: Double) {
        if isLingering {
            if now > lingerUntil { close() }
            return
        }
        tick(now: now)
        flush(now)
    }

    func drain() {
        if !isLingering && !hasOutput && isIdle { linger() }
    }

    func close() {
        guard let watch else { return } // closed already
        watch.cancel()
        self.watch = nil
        socket.close()
        worker.closed(self)
    }
}

// MARK: async/await on the libev loop

enum AsyncHTTPEngine {
    static func start(_ listeners: [SocketDescriptor], _ options: HTTPServerOptions) throws -> @Sendable () -> HTTPServerStats {
        let totals = LockedValue((stats: HTTPServerStats(pages: options.site.pages), reported: 0))
        let threads = try listeners.map { listener in
            let worker = LoopOwned<AsyncWorker>()
            let thread = try LoopThread { loop in
                let executor = loop.executor
                let server = AsyncWorker(executor, options) { stats in totals.withLock { $0.stats.add(stats); $0.reported += 1 } }
                worker.value = server
                server.acceptTask = Task(executorPreference: executor) { await server.accept(listener) }
                Task(executorPreference: executor) { await server.tick() }
            }
            return (thread, worker)
        }
        return {
            for (thread, worker) in threads { try? thread.executor.execute { worker.value?.drain() } }
            // The workers report when their last connection has closed.
            let deadline = monotonicNow() + options.stopTimeout + 1
            while totals.withLock({ $0.reported }) < threads.count && monotonicNow() < deadline { usleep(2_000) }
            for (thread, _) in threads { thread.stop() }
            for (thread, _) in threads { thread.join() }
            for listener in listeners { listener.close() }
            return totals.withLock { $0.stats }
        }
    }
}

/// A loop's async server: a task accepting, a task per connection.
final class AsyncWorker: @unchecked Sendable {
    // Sendable so that its tasks can share it: every one of them runs on the
    // loop's executor (executor preference, nonisolated(nonsending) awaits),
    // so all access happens on the loop's one thread, between awaits.
    let executor: LoopExecutor
    let options: HTTPServerOptions
    let context: HTTPServerContext
    let report: @Sendable (HTTPServerStats) -> Void
    var connections: [Int32: HTTPServerConnection] = [:]
    var acceptTask: Task<Void, Never>?
    /// A connection closed: the accepting task, waiting at the cap, goes on.
    let (capacity, capacityFreed) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    var draining = false
    var reported = false
    /// One read buffer for the loop: a task reads into it and parses
    /// before its next await, so tasks never overlap in it.
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)

    init(_ executor: LoopExecutor, _ options: HTTPServerOptions, report: @escaping @Sendable (HTTPServerStats) -> Void) {
        self.executor = executor
        self.options = options
        self.report = report
        context = HTTPServerContext(site: options.site, limits: options.limits)
    }

    deinit { readBuffer.deallocate() }

    func accept(_ listener: SocketDescriptor) async {
        let sockets = AsyncListener(adopting: listener, loop: executor)
        var freed = capacity.makeAsyncIterator()
        while !draining {
            // Connections count from their accept (not from their task's
            // start), so none can slip in between this check and the next accept.
            if connections.count >= options.limits.maxConnections {
                // At the cap: no accepting until a connection closes.
                guard await freed.next() != nil else { return } // cancelled: draining
                continue
            }
            let client: AsyncSocket
            do {
                client = try await sockets.acceptBackingOff { options.log(AcceptBackoff.message($0)) }
            } catch {
                return // cancelled (draining) or the loop is closing
            }
            let http = HTTPServerConnection(context: context, now: monotonicNow())
            connections[client.descriptor.fd] = http
            context.stats.opened()
            let socket = SocketBox(client)
            Task(executorPreference: executor) { await self.serve(socket.take(), http) }
        }
    }

    func serve(_ socket: AsyncSocket, _ http: HTTPServerConnection) async {
        let fd = socket.descriptor.fd
        defer {
            connections[fd] = nil
            context.stats.closed()
            capacityFreed.yield()
            if draining && connections.isEmpty { finish() }
        }
        while !http.isDone {
            if draining && http.isIdle && !http.hasOutput { break }
            if http.wantsInput {
                // No timeout on the read itself: the tick wakes it (see tick()).
                do {
                    let count = try await socket.read(into: readBuffer)
                    if count == 0 {
                        http.receiveEnd(now: monotonicNow())
                    } else {
                        http.receive(UnsafeRawBufferPointer(rebasing: readBuffer[..<count]), now: monotonicNow())
                    }
                } catch {
                    socket.close() // reset by the peer, or the loop is closing
                    return
                }
            }
            while http.hasOutput && !http.abandoned {
                // Most answers fit the socket's buffer: a non-blocking send
                // straight from the connection's output (no copy, no await);
                // only a full buffer waits for writability.
                do {
                    switch try http.withPendingOutput({ try socket.descriptor.write($0) }) {
                    case .processed(let count):
                        http.didSend(count, now: monotonicNow())
                    case .wouldBlock:
                        try await socket.waitWritable()
                    }
                } catch {
                    socket.close() // a peer that went away, or stopped reading (the tick shut it down)
                    return
                }
            }
            if http.abandoned { break }
        }
        if http.abandoned {
            socket.close()
        } else {
            await linger(socket)
        }
    }

    /// Once a second: the connections' timeouts, as the callback engines
    /// tick theirs. A connection that timed out is woken by shutting its
    /// socket down: after a 408 its read ends and the answer goes out; an
    /// abandoned one's read or write fails and it closes. (A `withTimeout`
    /// around every read would start and stop a timer per request.)
    func tick() async {
        while !reported {
            do { try await executor.sleep(seconds: 1) } catch { return }
            let now = monotonicNow()
            for (fd, http) in connections {
                let wasClosing = http.closing
                http.tick(now: now)
                if http.abandoned {
                    shutdown(fd, Int32(SHUT_RDWR))
                } else if http.closing && !wasClosing {
                    shutdown(fd, Int32(SHUT_RD))
                }
            }
        }
    }

    /// A lingering close (see ``CallbackConnection/linger()``).
    func linger(_ socket: AsyncSocket) async {
        try? socket.shutdownWrite()
        do {
            try await withTimeout(options.limits.lingerTimeout) {
                while try await socket.read(into: readBuffer) > 0 {}
            }
        } catch {}
        socket.close()
    }

    /// A graceful stop: accepting ends, idle connections are woken (their
    /// read ends) and close, busy ones close after their response.
    func drain() {
        guard !draining else { return }
        draining = true
        acceptTask?.cancel()
        for (fd, http) in connections where http.isIdle && !http.hasOutput {
            shutdown(fd, Int32(SHUT_RD))
        }
        if connections.isEmpty { finish() }
    }

    private func finish() {
        guard !reported else { return }
        reported = true
        report(context.stats)
    }
}

/// Hands a new socket to the task that serves it.
final class SocketBox: @unchecked Sendable {
    // Sendable: the accepting task creates it and the serving task, on the
    // same loop thread, takes the socket once; no one else touches it.
    private var socket: AsyncSocket?
    init(_ socket: consuming sending AsyncSocket) { self.socket = socket }
    func take() -> AsyncSocket {
        defer { socket = nil }
        return socket!
    }
}

// MARK: a thread per connection

enum ThreadsHTTPEngine {
    /// What the threads share: the counts, the open connections, the stop flag.
    final class Shared: Sendable {
        let state: LockedValue<(stats: HTTPServerStats, clients: Set<Int32>, stopping: Bool)>
        init(pages: Int) { state = LockedValue((HTTPServerStats(pages: pages), [], false)) }
        var stopping: Bool { state.withLock { $0.stopping } }
    }

    static func start(_ listeners: [SocketDescriptor], _ options: HTTPServerOptions) throws -> @Sendable () -> HTTPServerStats {
        let shared = Shared(pages: options.site.pages)
        let acceptors = try listeners.map { listener in
            // Blocking sockets, as a thread-per-connection server has them.
            _ = fcntl(listener.fd, F_SETFL, fcntl(listener.fd, F_GETFL) & ~O_NONBLOCK)
            return try PlainThread(stackSize: PlainThread.smallStackSize) { acceptLoop(listener, options, shared) }
        }
        return {
            shared.state.withLock { $0.stopping = true }
            for listener in listeners { shutdown(listener.fd, Int32(SHUT_RDWR)) }
            for acceptor in acceptors { acceptor.join() }
            for listener in listeners { listener.close() }
            // The connections notice within half a second, finish what they
            // are doing and close.
            let deadline = monotonicNow() + options.stopTimeout
            while shared.state.withLock({ !$0.clients.isEmpty }) && monotonicNow() < deadline { usleep(2_000) }
            for fd in shared.state.withLock({ $0.clients }) { shutdown(fd, Int32(SHUT_RDWR)) }
            while shared.state.withLock({ !$0.clients.isEmpty }) { usleep(2_000) }
            return shared.state.withLock { $0.stats }
        }
    }

    static func acceptLoop(_ listener: SocketDescriptor, _ options: HTTPServerOptions, _ shared: Shared) {
        while !shared.stopping {
            if shared.state.withLock({ $0.clients.count }) >= options.limits.maxConnections {
                usleep(10_000)
                continue
            }
            guard let client = AcceptBackoff.acceptBlocking(on: listener, stopping: { shared.stopping },
                                                            log: options.log) else { break }
            shared.state.withLock { state in
                state.clients.insert(client)
                state.stats.opened()
            }
            do {
                try PlainThread(stackSize: PlainThread.smallStackSize) { serve(client, options, shared) }.detach()
            } catch {
                options.log("\(error); closing the client")
                Glibc.close(client)
                shared.state.withLock { state in
                    state.clients.remove(client)
                    state.stats.closed()
                }
            }
        }
    }

    /// Serves one connection with blocking calls; poll(2) with a timeout keeps the timeouts.
    static func serve(_ fd: Int32, _ options: HTTPServerOptions, _ shared: Shared) {
        let context = HTTPServerContext(site: options.site, limits: options.limits)
        let http = HTTPServerConnection(context: context, now: monotonicNow())
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        defer {
            Glibc.close(fd)
            shared.state.withLock { state in
                state.clients.remove(fd)
                state.stats.closed()
                state.stats.add(context.stats)
            }
        }
        while !http.isDone {
            if shared.stopping && http.isIdle && !http.hasOutput { break }
            if http.wantsInput {
                // At most half a second, to notice a graceful stop.
                let wait = min(http.secondsUntilTimeout(now: monotonicNow()), 0.5)
                switch waitFor(fd, POLLIN, seconds: wait) {
                case .ready:
                    let count = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
                    if count < 0 {
                        if errno == EINTR || errno == EAGAIN { continue }
                        return // reset
                    }
                    if count == 0 {
                        http.receiveEnd(now: monotonicNow())
                    } else {
                        buffer.withUnsafeBytes { http.receive(UnsafeRawBufferPointer(rebasing: $0[..<count]), now: monotonicNow()) }
                    }
                case .timedOut:
                    http.tick(now: monotonicNow())
                case .failed:
                    return
                }
            }
            // What is pending goes out within the idle timeout in all: a peer
            // that takes a little now and then is no reprieve (the blocking
            // send's own timeout, SO_SNDTIMEO, restarted with every partial send).
            let sendDeadline = monotonicNow() + options.limits.idleTimeout
            while http.hasOutput {
                guard case .ready = waitFor(fd, POLLOUT, seconds: sendDeadline - monotonicNow()) else { return }
                let sent = http.withPendingOutput { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
                if sent < 0 {
                    if errno == EINTR || errno == EAGAIN { continue }
                    return // gone
                }
                http.didSend(sent, now: monotonicNow())
            }
            if http.abandoned { return }
        }
        // A lingering close (see CallbackConnection.linger()), at most the
        // linger timeout in all, whatever the peer sends meanwhile.
        shutdown(fd, Int32(SHUT_WR))
        let lingerDeadline = monotonicNow() + options.limits.lingerTimeout
        while case .ready = waitFor(fd, POLLIN, seconds: lingerDeadline - monotonicNow()) {
            let count = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if count == 0 || count < 0 && errno != EINTR && errno != EAGAIN { return }
        }
    }

    enum Readiness { case ready, timedOut, failed }

    /// poll(2) for `events` on `fd`, at most `seconds` (none left: timed out).
    static func waitFor(_ fd: Int32, _ events: Int32, seconds: Double) -> Readiness {
        guard seconds > 0 else { return .timedOut }
        var poller = pollfd(fd: fd, events: Int16(events), revents: 0)
        // Rounded up to poll's millisecond, so that a wait never ends early.
        let ready = poll(&poller, 1, Int32(min((seconds * 1000).rounded(.up), Double(Int32.max))))
        if ready > 0 { return .ready }
        if ready == 0 { return .timedOut }
        return errno == EINTR ? .ready : .failed
    }
}
