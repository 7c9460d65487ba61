import Engines
import EV
import Epoll
import EventCore
import Glibc

// The evented server with callbacks: a Listener and a Connection per client, on libev or epoll (one code).

package enum CallbackEngine {
    /// Runs the server on a loop of its own thread: a ``EventCore/Listener``,
    /// and per client a ``EventCore/Connection`` and a timer that sends the
    /// next chunk.
    static func start<L: EventLoop>(_ listener: SocketDescriptor, _ options: PoetryServerOptions,
                                    _ make: @escaping @Sendable () throws -> L) throws -> PoetryStop {
        // The Listener owns the socket: closing the loop closes it.
        try PoetryStop(make: make) { loop in listen(listener, options, on: loop) }
    }

    /// Serves `listener` on `loop` (the server's thread calls it on its
    /// loop; a test, on a `TestLoop`).
    ///
    /// - Returns: what closes the listener (on the loop): a graceful stop's first step.
    @discardableResult
    package static func listen<L: EventLoop>(_ listener: SocketDescriptor, _ options: PoetryServerOptions, on loop: L) -> LoopBound<() -> Void> {
        do {
            let accepting = try Listener(adopting: listener, loop: loop, log: { options.log(AcceptBackoff.message($0)) }) { socket, peer in
                let client = Client(loop, options)
                do {
                    client.connection = try Connection(adopting: socket, peer: peer, on: loop, delegate: client)
                    client.sendNext()
                } catch {
                    options.log("cannot serve \(peer.map { "\($0)" } ?? "a client"): \(error)")
                }
            }
            // Weakly: the Listener's owner stays its watch, which the loop's
            // close drops; held strongly here, it outlived its loop for as
            // long as the server kept this closer.
            return LoopBound({ [weak accepting] in accepting?.close() }, loop: loop.executor)
        } catch {
            options.log("cannot watch the listener: \(error)")
            listener.close()
            return LoopBound({}, loop: loop.executor)
        }
    }

    /// One client: sends a chunk, waits `delay`, sends the next. A chunk is
    /// written from the one poem every client shares (`tryWrite`): what a
    /// slow reader's socket does not take is not copied, but written from
    /// the poem when the socket can take more; the next pause starts once
    /// the chunk has gone out.
    final class Client<L: EventLoop>: ConnectionDelegate {
        let loop: L
        let options: PoetryServerOptions
        var connection: Connection<L>?
        /// How much of the poem the socket took.
        var offset = 0
        /// Where the chunk being sent ends.
        var chunkEnd = 0

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
            chunkEnd = min(offset + options.chunkSize, options.poem.count)
            sendRestOfChunk()
        }

        /// Writes what the socket takes of the chunk; pauses once it is all
        /// out, else waits for ``connectionDrained()``.
        private func sendRestOfChunk() {
            guard let connection, offset < chunkEnd else { return }
            let range = offset..<chunkEnd
            guard let sent = options.poem[range].withUnsafeBytes({ connection.tryWrite($0) }) else { return }
            offset += sent
            if offset == chunkEnd { pause() }
        }

        private func pause() {
            _ = loop.schedule(after: options.delay) { [self] in sendNext() }
        }

        /// A slow reader's socket can take more: the rest of the chunk.
        func connectionDrained() { sendRestOfChunk() }

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
