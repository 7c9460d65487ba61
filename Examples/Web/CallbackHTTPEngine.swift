import EV
import Epoll
@_spi(EventLoops) import EventCore
import HTTP
import TLS
#if canImport(Glibc)
import Glibc
#endif

// MARK: callbacks, on libev or epoll (one code)

/// A loop's server: accepts, keeps its connections, ticks their timeouts once a second.
package final class CallbackWorker<L: EventLoop> {
    let loop: L
    /// The listening socket, until ``start()`` hands it to ``listener``.
    let listenerSocket: SocketDescriptor
    let options: HTTPServerOptions
    let context: HTTPServerContext
    let report: (HTTPServerStats) -> Void
    var connections = DescriptorTable<CallbackConnection<L>>()
    /// Accepts; paused at the connection cap, closed by the graceful stop.
    var listener: Listener<L>?
    var draining = false
    /// Set by a connection's read that came back short (the socket had no
    /// more), until its readiness callback returns: then a close needs no
    /// read of its own to know nothing is waiting (nginx's `ready` flag).
    var lastReadDrained = false
    /// One read buffer for every connection of the loop.
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: loopReadBufferBytes, alignment: 16)
    /// HTTPS: each connection's TLS layer, by descriptor - beside the
    /// connection, not in it, so that a plain connection's object keeps its
    /// size (nil: plain HTTP).
    var layers: DescriptorTable<TLSState>?

    init(_ loop: L, _ listener: SocketDescriptor, _ options: HTTPServerOptions, report: @escaping (HTTPServerStats) -> Void) {
        self.loop = loop
        listenerSocket = listener
        self.options = options
        self.report = report
        context = HTTPServerContext(site: options.site, limits: options.limits)
        if options.tls != nil { layers = DescriptorTable() }
    }

    deinit { readBuffer.deallocate() }

    /// Serves `listener` on `loop` (``LoopWorkers``' worker for the
    /// callback engines); returns its drain and its figures so far.
    package static func serve(_ loop: L, _ listener: SocketDescriptor, _ options: HTTPServerOptions,
                      _ report: @escaping @Sendable (HTTPServerStats) -> Void) -> WorkerHandle {
        let worker = CallbackWorker(loop, listener, options, report: report)
        worker.start()
        return WorkerHandle(drain: worker.drain, context: worker.context)
    }

    func start() {
        do {
            listener = try Listener(adopting: listenerSocket, loop: loop, log: { [options] in options.log(AcceptBackoff.message($0)) }) {
                [unowned self] client, _ in accepted(client)
            }
        } catch {
            options.log("cannot watch the listener: \(error)")
            listenerSocket.close()
        }
        tick()
    }

    func accepted(_ client: SocketDescriptor) {
        let connection = CallbackConnection(self, client)
        do {
            if let tls = options.tls {
                // The handshake first, within the context's handshake timeout.
                let limit = tls.configuration.handshakeTimeout.inSeconds
                layers?[client.descriptor] = TLSState(layer: try tls.serverLayer(client), deadline: monotonicNow() + limit)
            }
            try connection.startWatching()
            connections[client.descriptor] = connection
            context.stats.opened()
        } catch {
            layers?[client.descriptor]?.layer.release()
            layers?[client.descriptor] = nil
            client.close()
        }
        if connections.count >= options.limits.maxConnections {
            // At the cap: the kernel queues new connections until one closes.
            listener?.pause()
        }
    }

    func closed(_ connection: CallbackConnection<L>) {
        connections[connection.socket.descriptor] = nil
        context.stats.closed()
        if draining {
            if connections.isEmpty { finish() }
        } else if connections.count < options.limits.maxConnections {
            listener?.resume()
        }
    }

    /// Once a second: the connections' timeouts.
    func tick() {
        _ = loop.schedule(after: .seconds(1)) { [weak self] in
            guard let self else { return }
            let now = monotonicNow()
            for connection in connections.values { connection.tick(now) }
            if !draining || !connections.isEmpty { tick() }
        }
    }

    /// A graceful stop: no more accepting; idle connections close now, busy
    /// ones after their response; whatever is left at the timeout closes
    /// then. The loop runs until the last one has closed.
    func drain() {
        guard !draining else { return }
        draining = true
        listener?.close()
        listener = nil
        for connection in connections.values { connection.drain() }
        if connections.isEmpty { return finish() }
        _ = loop.schedule(after: options.stopTimeout) { [weak self] in
            guard let self, draining else { return }
            for connection in connections.values { connection.close() }
        }
    }

    private func finish() {
        report(context.stats)
    }
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
        watch = try worker.loop.watchReadiness(socket.descriptor, .read, handler: self)
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
        var readable = !ready.isDisjoint(with: [.read, .error])
        if worker.layers != nil {
            guard let handshaken = handshake() else { return }
            readable = readable || handshaken // what came with the handshake's end may hold a request
        }
        defer { worker.lastReadDrained = false }
        if readable && wantsInput {
            do throws(EventLoopError) {
                switch try receiveSome(into: worker.readBuffer) {
                case .processed(0):
                    worker.lastReadDrained = true
                    receiveEnd(now: now)
                case .processed(let count):
                    worker.lastReadDrained = count < worker.readBuffer.count && !layerHoldsInput
                    receive(UnsafeRawBufferPointer(rebasing: worker.readBuffer[..<count]), now: now)
                case .wouldBlock:
                    worker.lastReadDrained = true
                }
            } catch {
                return close() // reset by the peer (or TLS failed)
            }
        }
        flush(now)
    }

    // MARK: HTTPS (the worker's layers)

    /// One step of the TLS handshake, if it is not done: nil while it goes
    /// on (or failed: closed), true when this step ended it, false when it
    /// was done before.
    private func handshake() -> Bool? {
        guard let state = worker.layers?[socket.descriptor] else { return false }
        if state.ready { return false }
        do throws(EventLoopError) {
            switch try state.layer.handshake() {
            case .done:
                worker.layers?[socket.descriptor]?.ready = true
                return true
            case .wantRead:
                watch?.interest = .read
            case .wantWrite:
                watch?.interest = .write
            case .ended:
                close()
            }
        } catch {
            close() // a client that is not TLS, or refused it
        }
        return nil
    }

    /// Reads from the socket, or through its TLS layer.
    @inline(__always)
    private func receiveSome(into buffer: UnsafeMutableRawBufferPointer) throws(EventLoopError) -> IOResult<Int> {
        guard let layer = worker.layers?[socket.descriptor]?.layer else { return try socket.read(into: buffer) }
        let step = try layer.read(into: buffer)
        worker.layers?[socket.descriptor]?.readStarved = step == .wantRead
        switch step {
        case .done(let count): return .processed(count)
        case .ended: return .processed(0)
        case .wantRead, .wantWrite: return .wouldBlock
        }
    }

    /// Writes to the socket, or through its TLS layer.
    @inline(__always)
    private func sendSome(_ bytes: UnsafeRawBufferPointer) throws(EventLoopError) -> IOResult<Int> {
        guard let layer = worker.layers?[socket.descriptor]?.layer else { return try socket.write(bytes) }
        switch try layer.write(bytes) {
        case .done(let count): return .processed(count)
        case .ended, .wantRead, .wantWrite: return .wouldBlock
        }
    }

    /// Whether TLS holds input read ahead (no readiness will announce it).
    private var layerHoldsInput: Bool {
        worker.layers?[socket.descriptor]?.layer.hasPendingInput ?? false
    }

    /// Reads the input TLS holds on the next turn - unless its last read
    /// wanted more from the socket (part of a record: readiness will come),
    /// or a read is set already.
    private func readHeldInputLater() {
        guard let state = worker.layers?[socket.descriptor], state.ready, !state.readScheduled, !state.readStarved,
              state.layer.hasPendingInput else { return }
        worker.layers?[socket.descriptor]?.readScheduled = true
        _ = worker.loop.schedule(after: .zero) { [weak self] in
            guard let self, watch != nil, !isLingering else { return }
            worker.layers?[socket.descriptor]?.readScheduled = false
            if wantsInput { ready(.read) }
        }
    }

    /// Writes what is pending, then watches for what comes next.
    func flush(_ now: Double) {
        while hasOutput {
            let result = withPendingOutput { bytes in Result { () throws(EventLoopError) in try sendSome(bytes) } }
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
        // TLS may hold input (pipelined requests) that no readiness announces.
        if wantsInput && worker.layers != nil { readHeldInputLater() }
    }

    /// A lingering close: the server's FIN, then the peer's input read and
    /// dropped until its FIN (or the linger timeout), so that unread input
    /// cannot turn the close into a reset that destroys the last answer.
    func linger() {
        guard !isLingering else { return }
        // The peer said it would close and sent nothing more: no input can
        // reset the close, so there is nothing to linger for (nginx's rule).
        if endsCleanly && (worker.lastReadDrained || socket.hasNoPendingInput(into: worker.readBuffer)) { return close() }
        lingerUntil = monotonicNow() + worker.options.limits.lingerTimeout.inSeconds
        worker.layers?[socket.descriptor]?.layer.shutdownWrite() // close_notify first
        shutdown(socket.fd, Int32(SHUT_WR))
        watch?.interest = .read
        discard()
    }

    func discard() {
        if socket.discardInput(into: worker.readBuffer) == .ended { close() }
    }

    func tick(_ now: Double) {
        if isLingering {
            if now > lingerUntil { close() }
            return
        }
        if let state = worker.layers?[socket.descriptor], !state.ready {
            if now > state.deadline { close() } // stalled in the handshake
            return
        }
        tick(now: now)
        flush(now)
    }

    func drain() {
        if let state = worker.layers?[socket.descriptor], !state.ready { return close() }
        if !isLingering && !hasOutput && isIdle { linger() }
    }

    func close() {
        guard let watch else { return } // closed already
        watch.cancel()
        self.watch = nil
        if let state = worker.layers?[socket.descriptor] {
            if state.ready && !isLingering { state.layer.shutdownWrite() } // close_notify, best effort
            state.layer.release()
            worker.layers?[socket.descriptor] = nil
        }
        socket.close()
        worker.closed(self)
    }
}

/// A connection's TLS, kept by its worker: the layer, whether its
/// handshake is done, and by when it must be.
struct TLSState {
    let layer: any StreamLayer
    var ready = false
    let deadline: Double
    /// A read of held input is set for the next turn.
    var readScheduled = false
    /// The last read wanted more from the socket.
    var readStarved = false

    init(layer: any StreamLayer, deadline: Double) {
        self.layer = layer
        self.deadline = deadline
    }
}
