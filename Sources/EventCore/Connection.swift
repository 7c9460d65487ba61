#if canImport(Glibc)
import Glibc
#endif

/// What a ``Connection`` tells the object that owns it, on the loop's
/// thread - asyncio's `Protocol` (`connection_made`, `data_received`,
/// `eof_received`, `connection_lost`) for callback code.
///
/// A connection holds its delegate until it has closed and said so with
/// ``connectionClosed(_:)``; the delegate keeps its own reference to the
/// connection, to write and close.
public protocol ConnectionDelegate: AnyObject {
    /// The connection is established (for ``Connection/connect(to:on:timeout:layer:delegate:)``;
    /// an adopted connection is established from the start). Writes made
    /// before it were queued and go out now.
    func connectionEstablished()

    /// Bytes arrived. They are valid only during the call: copy what is kept.
    func connectionReceived(_ bytes: UnsafeRawBufferPointer)

    /// The peer ended its side of the stream (a FIN): no more input will
    /// come. Return `true` to keep writing (a half-close); `false`, the
    /// default, closes the connection once the queued output is written,
    /// as asyncio's `eof_received` does.
    func connectionReachedEnd() -> Bool

    /// Every queued byte has been written, after a write had to wait - or,
    /// after a ``Connection/tryWrite(_:)`` the socket did not take whole,
    /// the socket can take more: the moment to produce more (see
    /// ``Connection/queuedBytes``).
    func connectionDrained()

    /// The connection is closed: `nil` when the app closed it (or the peer
    /// ended it and ``connectionReachedEnd()`` let it close), else the
    /// error that ended it - naming the call, the descriptor and the peer.
    func connectionClosed(_ error: EventLoopError?)
}

extension ConnectionDelegate {
    /// Nothing to do.
    public func connectionEstablished() {}
    /// Closes the connection once the queued output is written.
    public func connectionReachedEnd() -> Bool { false }
    /// Nothing to do.
    public func connectionDrained() {}
}

/// A TCP connection for callback code, on either loop: the twin of
/// ``AsyncSocket`` for code that reacts to readiness instead of awaiting it
/// (libuv's stream, asyncio's transport).
///
/// It reads whatever arrives and hands it to its ``ConnectionDelegate``;
/// ``write(_:)-(UnsafeRawBufferPointer)`` sends at once what the kernel
/// takes and queues the rest, watching for writability only while output
/// waits; ``shutdownWrite()`` half-closes after the queued output,
/// ``closeLingering(timeout:)`` closes so that the peer reads the last
/// answer, ``close()`` closes now.
///
/// ```swift
/// final class Echo: ConnectionDelegate {
///     var connection: Connection<EV.Loop>?
///     func connectionReceived(_ bytes: UnsafeRawBufferPointer) { connection?.write(bytes) }
///     func connectionClosed(_ error: EventLoopError?) { connection = nil }
/// }
/// ```
///
/// ## Lifetime and threads
/// An open connection is held by its loop (through its readiness watch),
/// whether or not the app keeps a reference, until it closes; closing the
/// loop closes it (its delegate hears ``EventLoopError/loopClosed``). Like
/// the loop, it belongs to the loop's thread.
///
/// ## Reading
/// Each readiness event reads up to ``maximumReadsPerTurn`` times into a
/// buffer on the stack (64 KiB), so that a peer that never stops sending
/// cannot hold the loop, and an idle connection holds no buffer.
/// ``pauseReading()`` stops reading (the kernel's buffer then fills and TCP
/// slows the peer down) until ``resumeReading()``.
public final class Connection<L: EventLoop>: ReadinessHandler, ClosesWithLoop {
    /// Where a connection is in its life.
    private enum State {
        case connecting
        /// Connected, its ``StreamLayer``'s opening (a TLS handshake) under way.
        case handshaking
        case open
        /// After ``closeLingering(timeout:)`` has written the output and
        /// sent the FIN: reading and dropping until the peer's.
        case lingering
        case closed
    }

    /// The socket.
    public let socket: SocketDescriptor
    /// The peer's address, when known.
    public let peer: SocketAddress?
    /// The owner, told what happens; let go once the connection is closed.
    public var delegate: (any ConnectionDelegate)?
    /// Reads per readiness event at most (default 4).
    public var maximumReadsPerTurn = 4

    private weak var loop: L?
    private var watch: L.Watch?
    private var watchedInterest: Interest = []
    private var state: State
    /// Output not yet written, from `outputStart`.
    private var output: [UInt8] = []
    private var outputStart = 0
    /// A ``tryWrite(_:)`` was cut short: tell the delegate when the socket is writable.
    private var wantsWritable = false
    private var readingPaused = false
    private var inputEnded = false
    /// What to do once the output is written: shut the sending side down,
    /// close, or linger.
    private var afterOutput: AfterOutput = .nothing
    private var timer: (any Cancellable)?
    /// Its entry in the loop's list of what closes with it.
    private var observer: LoopCloseObserver?
    /// The protocol it speaks over the socket (TLS), if any.
    private var layer: (any StreamLayer)?
    /// The readiness the layer waits for besides what the connection wants
    /// (its handshake's; a read that must first write).
    private var layerWaitsFor: Interest = []
    /// A read on the next turn, for input the layer holds already.
    private var readLater: (any Cancellable)?
    /// The layer's last read wanted more from the socket (it holds part of
    /// a record): only readiness can help, no read on the next turn.
    private var layerReadStarved = false

    private enum AfterOutput { case nothing, shutdown, close, linger }

    private init(socket: SocketDescriptor, peer: SocketAddress?, loop: L, state: State, delegate: any ConnectionDelegate) {
        self.socket = socket
        self.peer = peer
        self.loop = loop
        self.state = state
        self.delegate = delegate
        observer = LoopCloseObserver(self, on: loop)
    }

    /// Makes the layer `makeLayer` gives for the socket, if any.
    private func attach(_ makeLayer: StreamLayerFactory?) throws(EventLoopError) {
        guard let makeLayer else { return }
        layer = try makeLayer(socket)
    }

    /// Takes over `socket`, a connected non-blocking socket (one a
    /// ``Listener`` accepted, say), and starts reading - through the layer
    /// `layer` makes, if given (a TLS server's: the delegate hears
    /// ``ConnectionDelegate/connectionEstablished()`` once its handshake is
    /// done, never within this call, and gets no byte before).
    ///
    /// - Throws: ``EventLoopError`` if the loop cannot watch the socket
    ///   (it is closed, say) or the layer cannot be made; the socket is then closed.
    public convenience init(adopting socket: SocketDescriptor, peer: SocketAddress?, on loop: L,
                            layer: StreamLayerFactory? = nil, delegate: any ConnectionDelegate) throws(EventLoopError) {
        self.init(socket: socket, peer: peer, loop: loop, state: layer == nil ? .open : .handshaking, delegate: delegate)
        do {
            try attach(layer)
            // The handshake's first step on the next turn (a socket is writable at once).
            layerWaitsFor = self.layer == nil ? [] : .write
            try startWatching(loop)
            startHandshakeTimer()
        } catch {
            state = .closed
            observer?.leave()
            self.layer?.release()
            self.layer = nil
            socket.close()
            throw error.about(descriptor: socket.descriptor, peer: peer)
        }
    }

    /// Connects to `address`: returns at once, and tells `delegate`
    /// ``ConnectionDelegate/connectionEstablished()`` - or
    /// ``ConnectionDelegate/connectionClosed(_:)`` with the error (refused,
    /// unreachable, ``EventLoopError/Code/timedOut`` after `timeout`), never
    /// before this returns. Writes made meanwhile are queued. With `layer`
    /// (a TLS client's), the connection is established once the layer's
    /// handshake is done too (within the layer's own time limit).
    ///
    /// - Throws: ``EventLoopError`` only if no socket (or layer) can be made (`EMFILE`, say).
    public static func connect(to address: SocketAddress, on loop: L, timeout: Duration? = nil, layer: StreamLayerFactory? = nil,
                               delegate: any ConnectionDelegate) throws(EventLoopError) -> Connection<L> {
        let socket = try SocketDescriptor.stream(address.family)
        socket.setNoDelayIfTCP(address.family)
        let connection = Connection(socket: socket, peer: address, loop: loop, state: .connecting, delegate: delegate)
        do {
            try connection.attach(layer)
        } catch {
            connection.state = .closed
            connection.observer?.leave()
            socket.close()
            throw error.about(descriptor: socket.descriptor, peer: address)
        }
        do {
            if case .processed = try socket.connect(to: address) { connection.state = .open }
            try connection.startWatching(loop)
        } catch {
            // Told on the next turn, as a refusal found later is.
            connection.timer = loop.schedule(after: .zero) { connection.finish(error) }
            return connection
        }
        if connection.state == .open {
            connection.timer = loop.schedule(after: .zero) { connection.established() }
        } else if let timeout {
            connection.timer = loop.schedule(after: timeout) { [weak connection] in
                guard let connection, connection.state == .connecting else { return }
                connection.finish(EventLoopError(.timedOut, descriptor: socket.descriptor, operation: "connect(\(address))",
                                                 peer: address, detail: "after \(LoopTime.describe(timeout))"))
            }
        }
        return connection
    }

    private func startWatching(_ loop: L) throws(EventLoopError) {
        let interest = wantedInterest
        watch = try loop.watchReadiness(socket.descriptor, interest, handler: self)
        watchedInterest = interest
    }

    // MARK: state

    /// Whether the connection is connecting or open, and no close was asked
    /// for (``closeLingering(timeout:)``, or the end of input with the
    /// delegate's consent): false once it is closing or closed.
    public var isOpen: Bool {
        (state == .connecting || state == .handshaking || state == .open) && afterOutput != .close && afterOutput != .linger
    }

    /// Bytes written but not yet taken by the kernel: what a producer
    /// checks to stop producing (and resumes at ``ConnectionDelegate/connectionDrained()``).
    public var queuedBytes: Int { output.count - outputStart }

    // MARK: writing

    /// Writes `bytes`: what the kernel takes now goes at once, the rest is
    /// queued (copied) and written as the socket becomes writable.
    ///
    /// - Returns: false, and writes nothing, if the connection is closing or
    ///   closed or its sending side was shut down.
    @discardableResult
    public func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard isOpen, afterOutput == .nothing else { return false }
        guard let sent = sendNow(bytes) else { return true } // failed: closed, and the delegate told why
        if sent < bytes.count {
            output.append(contentsOf: bytes[sent...])
            updateInterest()
        }
        return true
    }

    /// Sends what the socket takes of `bytes` now - nothing while output is
    /// queued or before the connection is open: how many bytes went, or nil
    /// if the send failed (the connection is then closed).
    private func sendNow(_ bytes: UnsafeRawBufferPointer) -> Int? {
        var sent = 0
        guard state == .open && queuedBytes == 0 else { return 0 }
        while sent < bytes.count {
            switch send(UnsafeRawBufferPointer(rebasing: bytes[sent...])) {
            case .processed(let count)?: sent += count
            case .wouldBlock?: return sent
            case nil: return nil
            }
        }
        return sent
    }

    /// Writes what the kernel takes of `bytes` now and queues nothing
    /// (libuv's `uv_try_write`): for bytes the app keeps anyway - a file's
    /// contents, one buffer many connections share - which
    /// ``write(_:)-(UnsafeRawBufferPointer)`` would copy into each
    /// connection's queue when a reader is slow. When fewer than all went
    /// out, ``ConnectionDelegate/connectionDrained()`` follows once the
    /// socket can take more; write the rest then, from the app's own bytes.
    ///
    /// Nothing goes out while earlier output is queued, or before the
    /// connection is established (0 is returned; the drain is told as usual).
    ///
    /// - Returns: how many bytes the kernel took (0 to `bytes.count`); nil
    ///   if the connection is closing or closed, its sending side was shut
    ///   down, or the send failed (the connection then closes, and the
    ///   delegate hears why).
    public func tryWrite(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard isOpen, afterOutput == .nothing else { return nil }
        guard let sent = sendNow(bytes) else { return nil } // failed: closed, and the delegate told why
        if sent < bytes.count && queuedBytes == 0 {
            wantsWritable = true
            updateInterest()
        }
        return sent
    }

    /// Writes `bytes` (see ``write(_:)-(UnsafeRawBufferPointer)``).
    @discardableResult
    public func write(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { write($0) }
    }

    /// Writes `text` as UTF-8 (see ``write(_:)-(UnsafeRawBufferPointer)``).
    @discardableResult
    public func write(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { write(UnsafeRawBufferPointer($0)) }
    }

    /// One `send` (through the layer, if any); nil when it failed (the
    /// connection is then closed with the error).
    private func send(_ bytes: UnsafeRawBufferPointer) -> IOResult<Int>? {
        do throws(EventLoopError) {
            guard let layer else { return try socket.write(bytes) }
            switch try layer.write(bytes) {
            case .done(let count): return .processed(count)
            case .wantWrite, .wantRead: return .wouldBlock // a layer refuses a write that must read (TLS)
            case .ended: throw EventLoopError(.endOfStream, descriptor: socket.descriptor, operation: "write", peer: peer)
            }
        } catch {
            finish(error.about(descriptor: socket.descriptor, peer: peer))
            return nil
        }
    }

    /// Writes queued output while the socket takes it; then does what was
    /// asked for after it (shut down, close, linger).
    private func flush() {
        while queuedBytes > 0 {
            let start = outputStart
            switch output.withUnsafeBytes({ bytes in send(UnsafeRawBufferPointer(rebasing: bytes[start...])) }) {
            case .processed(let count)?: outputStart += count
            case .wouldBlock?: return updateInterest()
            case nil: return // closed
            }
        }
        output.removeAll(keepingCapacity: output.capacity <= 64 * 1024)
        outputStart = 0
        switch afterOutput {
        case .nothing:
            updateInterest()
            delegate?.connectionDrained()
        case .shutdown:
            if let layer {
                layer.shutdownWrite() // the layer's end (close_notify); the socket stays open both ways
            } else {
                do {
                    try socket.shutdownWrite()
                } catch {
                    return finish(error.about(descriptor: socket.descriptor, peer: peer))
                }
            }
            updateInterest()
        case .close:
            finish(nil)
        case .linger:
            startLingering()
        }
    }

    // MARK: reading

    /// Stops reading until ``resumeReading()``.
    public func pauseReading() {
        readingPaused = true
        updateInterest()
    }

    /// Reads again after ``pauseReading()``.
    public func resumeReading() {
        readingPaused = false
        updateInterest()
        readHeldInputLater()
    }

    /// Input the layer holds gets no readiness event: read it on the next turn.
    private func readHeldInputLater() {
        guard readLater == nil, !layerReadStarved, state == .open, !readingPaused, !inputEnded,
              layer?.hasPendingInput == true else { return }
        readLater = loop?.schedule(after: .zero) { [weak self] in
            guard let self else { return }
            readLater = nil
            readAvailable()
        }
    }

    /// One read, through the layer if any.
    private func readSome(into buffer: UnsafeMutableRawBufferPointer) throws(EventLoopError) -> IOResult<Int> {
        guard let layer else { return try socket.read(into: buffer) }
        let step = try layer.read(into: buffer)
        layerReadStarved = step == .wantRead
        switch step {
        case .done(let count): return .processed(count)
        case .ended: return .processed(0)
        case .wantRead: return .wouldBlock
        case .wantWrite:
            layerWaitsFor = .write
            updateInterest()
            return .wouldBlock
        }
    }

    /// Reads what is waiting now, as a readiness event would (a watchdog
    /// about to give up on a peer, say, while the loop was held up and has
    /// not polled yet). Nothing happens when reading is paused or over.
    public func readNow() {
        readAvailable()
    }

    private func readAvailable() {
        withUnsafeTemporaryAllocation(byteCount: 64 * 1024, alignment: 16) { buffer in
            for _ in 0..<max(1, maximumReadsPerTurn) {
                guard state == .open, !readingPaused, !inputEnded else { return }
                let count: Int
                do throws(EventLoopError) {
                    guard case .processed(let read) = try readSome(into: buffer) else { return }
                    count = read
                } catch {
                    return finish(error.about(descriptor: socket.descriptor, peer: peer))
                }
                if count == 0 { return reachedEnd() }
                delegate?.connectionReceived(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
                if count < buffer.count && layer?.hasPendingInput != true { return }
            }
        }
        readHeldInputLater()
    }

    private func reachedEnd() {
        inputEnded = true
        let keepOpen = delegate?.connectionReachedEnd() ?? false
        guard state == .open else { return }
        if !keepOpen && afterOutput != .linger {
            afterOutput = .close
            if queuedBytes == 0 { return finish(nil) }
        }
        updateInterest()
    }

    // MARK: closing

    /// Shuts the sending side down once the queued output is written (the
    /// peer reads end of stream); reading goes on. Later writes are refused.
    public func shutdownWrite() {
        guard isOpen, afterOutput == .nothing else { return }
        afterOutput = .shutdown
        if state == .open && queuedBytes == 0 { flush() }
    }

    /// Closes now: queued output is dropped, the delegate hears
    /// ``ConnectionDelegate/connectionClosed(_:)`` with nil. Harmless when closed.
    public func close() {
        guard state != .closed else { return }
        finish(nil)
    }

    /// Closes so that the peer reads what was written last - nginx's
    /// lingering close: the queued output is written, the sending side shut
    /// down (the peer reads end of stream), then what the peer still sends
    /// is read and dropped until it closes too, for at most `timeout`
    /// (counted from the call); then the connection closes. Closing at once
    /// with unread input queued would make the kernel send a reset, which
    /// can overtake the last answer and destroy it.
    public func closeLingering(timeout: Duration = .seconds(2)) {
        guard state == .connecting || state == .open, afterOutput != .linger else { return }
        timer?.cancel()
        timer = loop?.schedule(after: timeout) { [weak self] in self?.finish(nil) }
        if inputEnded {
            // The peer has closed its side: nothing to wait for after the output.
            afterOutput = .close
        } else {
            afterOutput = .linger
        }
        if state == .open && queuedBytes == 0 { flush() }
    }

    private func startLingering() {
        layer?.shutdownWrite()
        do {
            try socket.shutdownWrite()
        } catch {
            return finish(nil) // the peer is gone already: nothing to protect
        }
        state = .lingering
        updateInterest()
        discardInput()
    }

    private func discardInput() {
        withUnsafeTemporaryAllocation(byteCount: 4096, alignment: 16) { buffer in
            if socket.discardInput(into: buffer) == .ended { finish(nil) }
        }
    }

    private func established() {
        guard state == .open || state == .connecting || state == .handshaking else { return }
        timer?.cancel()
        timer = nil
        if layer != nil && state != .handshaking && layerWaitsFor.isEmpty && !layerReady {
            // Connected: the layer's handshake comes first.
            state = .handshaking
            startHandshakeTimer()
            return advanceHandshake()
        }
        state = .open
        delegate?.connectionEstablished()
        guard state == .open else { return }
        if queuedBytes > 0 || afterOutput != .nothing { flush() } else { updateInterest() }
    }

    /// Whether the layer's handshake is done.
    private var layerReady = false

    private func startHandshakeTimer() {
        guard state == .handshaking, let limit = layer?.handshakeTimeout else { return }
        timer?.cancel()
        timer = loop?.schedule(after: limit) { [weak self] in
            guard let self, state == .handshaking else { return }
            finish(EventLoopError(.timedOut, descriptor: socket.descriptor, operation: "handshake", peer: peer,
                                  detail: "after \(LoopTime.describe(limit))"))
        }
    }

    /// One step of the layer's handshake: established when it is done,
    /// else the readiness it waits for is watched.
    private func advanceHandshake() {
        guard state == .handshaking, let layer else { return }
        do throws(EventLoopError) {
            switch try layer.handshake() {
            case .done:
                layerReady = true
                layerWaitsFor = []
                established()
            case .ended:
                throw EventLoopError(.endOfStream, descriptor: socket.descriptor, operation: "handshake", peer: peer,
                                     detail: "the peer closed the connection")
            case .wantRead:
                layerWaitsFor = .read
                updateInterest()
            case .wantWrite:
                layerWaitsFor = .write
                updateInterest()
            }
        } catch {
            finish(error.about(descriptor: socket.descriptor, peer: peer))
        }
    }

    /// Ends the connection, once: the watch and timer go, the layer says
    /// its end when the close is clean, the socket is closed, and the
    /// delegate - let go of - hears why.
    private func finish(_ error: EventLoopError?) {
        guard state != .closed else { return }
        let wasOpen = state == .open
        state = .closed
        observer?.leave()
        observer = nil
        watch?.cancel()
        watch = nil
        timer?.cancel()
        timer = nil
        readLater?.cancel()
        readLater = nil
        if let layer {
            if error == nil && wasOpen { layer.shutdownWrite() }
            layer.release()
            self.layer = nil
        }
        socket.close()
        output = []
        outputStart = 0
        let delegate = delegate
        self.delegate = nil
        delegate?.connectionClosed(error)
    }

    /// The loop is closing: the connection closes, and its delegate hears
    /// ``EventLoopError/loopClosed``.
    package func loopClosing(_ error: EventLoopError) {
        finish(error.about(descriptor: socket.descriptor, peer: peer))
    }

    // MARK: readiness

    private var wantedInterest: Interest {
        switch state {
        case .connecting: return .write
        case .handshaking: return layerWaitsFor
        case .lingering: return .read
        case .closed: return []
        case .open:
            var wanted: Interest = []
            if !readingPaused && !inputEnded { wanted.insert(.read) }
            if queuedBytes > 0 || wantsWritable { wanted.insert(.write) }
            return wanted.union(layerWaitsFor)
        }
    }

    private func updateInterest() {
        let wanted = wantedInterest
        guard wanted != watchedInterest, let watch else { return }
        watchedInterest = wanted
        do {
            try watch.setInterest(wanted)
        } catch {
            finish(error.about(descriptor: socket.descriptor, peer: peer))
        }
    }

    /// The loop's readiness callback (``ReadinessHandler``): not for apps.
    public func ready(_ events: Interest) {
        switch state {
        case .connecting:
            guard !events.isDisjoint(with: [.write, .error]) else { return }
            do {
                try socket.connectResult(to: peer!)
            } catch {
                return finish(error)
            }
            established()
        case .handshaking:
            advanceHandshake()
        case .open:
            var readable = !events.isDisjoint(with: [.read, .error])
            if !layerWaitsFor.isEmpty && !events.isDisjoint(with: layerWaitsFor.union(.error)) {
                // The layer's read waited for this (TLS writing before it reads).
                layerWaitsFor = []
                updateInterest()
                readable = true
            }
            if readable { readAvailable() }
            if state == .open && queuedBytes > 0 && !events.isDisjoint(with: [.write, .error]) {
                flush()
            } else if state == .open && wantsWritable && !events.isDisjoint(with: [.write, .error]) {
                wantsWritable = false
                updateInterest()
                delegate?.connectionDrained()
            }
        case .lingering:
            discardInput()
        case .closed:
            break
        }
    }
}

extension SocketDescriptor {
    /// What ``discardInput(into:)`` found.
    package enum DiscardOutcome {
        /// The peer closed its side, or the socket failed: close it now.
        case ended
        /// Nothing more is waiting; more may come.
        case waiting
    }

    /// Whether nothing is waiting to be read: one `read` into `buffer` that
    /// would block, or finds the end of the stream (or fails). A byte that
    /// was waiting is read and dropped, and the answer is false.
    package func hasNoPendingInput(into buffer: UnsafeMutableRawBufferPointer) -> Bool {
        switch try? read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<min(buffer.count, 4096)])) {
        case .wouldBlock?, .processed(0)?, nil: true
        case .processed: false
        }
    }

    /// Reads and drops what is waiting on a non-blocking socket, with
    /// `buffer` as scratch: a lingering close's wait for the peer's FIN,
    /// written once for every engine that lingers.
    package func discardInput(into buffer: UnsafeMutableRawBufferPointer) -> DiscardOutcome {
        while true {
            do {
                switch try read(into: buffer) {
                case .processed(0): return .ended
                case .processed: continue
                case .wouldBlock: return .waiting
                }
            } catch {
                return .ended
            }
        }
    }
}
