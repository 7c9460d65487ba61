@_spi(EventLoops) import EventCore
import HTTP
import TLS
#if canImport(Glibc)
import Glibc
#endif

// MARK: async/await, on libev or epoll (one code)

/// Serves `listener` on `loop` with tasks (``LoopWorkers``' worker for the
/// async engines): a task accepting, a task per connection, a task ticking
/// the timeouts; returns its drain and its figures so far.
package func serveWithTasks<L: EventLoop>(_ loop: L, _ listener: SocketDescriptor, _ options: HTTPServerOptions,
                                  _ report: @escaping @Sendable (HTTPServerStats) -> Void) -> WorkerHandle {
    let worker = AsyncWorker(loop.executor, options, report: report)
    let bound = LoopBound(worker, loop: loop.executor)
    worker.acceptTask = Task(executorPreference: loop.executor) { await bound.value.accept(listener, bound) }
    Task(executorPreference: loop.executor) { await bound.value.tick() }
    return WorkerHandle(drain: worker.drain, context: worker.context)
}

/// A loop's async server: a task accepting, a task per connection. Not
/// `Sendable`: its tasks all run on the loop's executor, and reach it
/// through a ``EventCore/LoopBound`` that checks so.
final class AsyncWorker<Executor: EventLoopExecutor> {
    let executor: Executor
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
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: loopReadBufferBytes, alignment: 16)

    init(_ executor: Executor, _ options: HTTPServerOptions, report: @escaping @Sendable (HTTPServerStats) -> Void) {
        self.executor = executor
        self.options = options
        self.report = report
        context = HTTPServerContext(site: options.site, limits: options.limits)
    }

    deinit { readBuffer.deallocate() }

    func accept(_ listener: SocketDescriptor, _ bound: LoopBound<AsyncWorker>) async {
        let sockets = AsyncListener(adopting: listener, loop: executor)
        defer { sockets.close() } // draining, or the loop is closing
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
            // One read per turn of the loop, as the callback engines read once
            // per readiness event: a client pipelining without pause cannot
            // starve the loop's other connections.
            client.maximumReadsPerTurn = 1
            let http = HTTPServerConnection(context: context, now: monotonicNow())
            connections[client.descriptor.fd] = http
            context.stats.opened()
            let connection = LoopBound(http, loop: executor)
            Task(executorPreference: executor) { await bound.value.serve(client, connection.value) }
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
        if let tls = options.tls {
            // HTTPS: the handshake first, within the context's handshake
            // timeout (a client that stalls in it is closed then).
            guard let secured = try? await TLSSocket.server(over: socket, context: tls) else { return }
            return await serve(stream: secured, http)
        }
        await serve(stream: socket, http)
    }

    /// A connection's requests and responses over `stream` - a plain socket,
    /// or TLS over one (one code for both).
    func serve<Stream: ServedStream>(stream: Stream, _ http: HTTPServerConnection) async {
        // Whether the last read came back short with nothing more held
        // (a plain socket's short read), with no wait since: a clean end then
        // needs no read to know nothing of the peer's is waiting.
        var drained = false
        while !http.isDone {
            if draining && http.isIdle && !http.hasOutput { break }
            if http.wantsInput {
                // No timeout on the read itself: the tick wakes it (see tick()).
                do {
                    let count = try await stream.receive(into: readBuffer)
                    drained = Stream.shortReadDrains && count < readBuffer.count
                    if count == 0 {
                        http.receiveEnd(now: monotonicNow())
                    } else {
                        http.receive(UnsafeRawBufferPointer(rebasing: readBuffer[..<count]), now: monotonicNow())
                    }
                } catch {
                    stream.close() // reset by the peer, or the loop is closing
                    return
                }
            }
            while http.hasOutput && !http.abandoned {
                // Most answers fit the socket's buffer: a non-blocking send
                // straight from the connection's output (no copy, no await);
                // only a full buffer waits for writability.
                do {
                    switch try http.withPendingOutput({ try stream.sendNow($0) }) {
                    case .processed(let count):
                        http.didSend(count, now: monotonicNow())
                    case .wouldBlock:
                        drained = false
                        try await stream.waitWritable()
                    }
                } catch {
                    stream.close() // a peer that went away, or stopped reading (the tick shut it down)
                    return
                }
            }
            if http.abandoned { break }
        }
        if http.abandoned || http.endsCleanly && (drained || stream.nothingPending(readingInto: readBuffer)) {
            // Abandoned: close without a word. Ending as the peer asked, with
            // nothing of its waiting: nothing to linger for (nginx's rule).
            stream.close()
        } else {
            await stream.closeLingering(timeout: options.limits.lingerTimeout)
        }
    }

    /// Once a second: the connections' timeouts, as the callback engines
    /// tick theirs. A connection that timed out is woken by shutting its
    /// socket down: after a 408 its read ends and the answer goes out; an
    /// abandoned one's read or write fails and it closes. (A `withTimeout`
    /// around every read would start and stop a timer per request.)
    func tick() async {
        while !reported {
            do { try await executor.sleep(for: .seconds(1)) } catch { return }
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

/// What the async engines serve a connection over.
protocol ServedStream {
    /// Whether a read that filled less than its buffer means nothing more is
    /// held (true of a socket; not of TLS, which may hold a record read ahead).
    static var shortReadDrains: Bool { get }
    /// Reads what has come: the byte count, 0 at the peer's end.
    func receive(into buffer: UnsafeMutableRawBufferPointer) async throws -> Int
    /// Sends what the socket takes now, without waiting.
    func sendNow(_ bytes: UnsafeRawBufferPointer) throws(EventLoopError) -> IOResult<Int>
    func waitWritable() async throws
    /// Whether nothing of the peer's is waiting (may read into `scratch` to know).
    func nothingPending(readingInto scratch: UnsafeMutableRawBufferPointer) -> Bool
    func close()
    func closeLingering(timeout: Duration) async
}

extension AsyncSocket: ServedStream {
    static var shortReadDrains: Bool { true }
    func receive(into buffer: UnsafeMutableRawBufferPointer) async throws -> Int { try await read(into: buffer) }
    func sendNow(_ bytes: UnsafeRawBufferPointer) throws(EventLoopError) -> IOResult<Int> { try descriptor.write(bytes) }
    func nothingPending(readingInto scratch: UnsafeMutableRawBufferPointer) -> Bool { descriptor.hasNoPendingInput(into: scratch) }
}

extension TLSSocket: ServedStream {
    static var shortReadDrains: Bool { false }

    func receive(into buffer: UnsafeMutableRawBufferPointer) async throws -> Int {
        do {
            return try await read(into: buffer)
        } catch let error as EventLoopError where error.code == .tls(.unexpectedEOF) {
            return 0 // the tick's shutdown (a timeout, a drain) ends a read so
        }
    }

    func sendNow(_ bytes: UnsafeRawBufferPointer) throws(EventLoopError) -> IOResult<Int> { try writeNow(bytes) }
    func waitWritable() async throws { try await socket.waitWritable() }

    func nothingPending(readingInto scratch: UnsafeMutableRawBufferPointer) -> Bool {
        !hasPendingInput && socket.descriptor.hasNoPendingInput(into: scratch) // close_notify still goes out
    }
}
