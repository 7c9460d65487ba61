import Engines
import EV
import Epoll
import EventCore
import Glibc

// The evented server with callbacks: a Listener and a Connection per client, on libev or epoll (one code).

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
