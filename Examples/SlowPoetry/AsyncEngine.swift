import Engines
import EV
import Epoll
import EventCore
import Glibc

// The evented server with async/await: a task per client, on libev or epoll (one code).

package enum AsyncEngine {
    static func start<L: EventLoop>(_ listener: SocketDescriptor, _ options: PoetryServerOptions,
                                    _ make: @escaping @Sendable () throws -> L) throws -> PoetryStop {
        // The accepting task closes the listener when it ends (with the loop, or cancelled).
        try PoetryStop(make: make) { loop in listen(listener, options, on: loop) }
    }

    /// Serves `listener` on `loop`: a task accepting, a task per client
    /// (the server's thread calls it on its loop; a test, on a `TestLoop`).
    /// The accepting task owns the listener and closes it when it ends.
    ///
    /// - Returns: what stops accepting (on the loop): a graceful stop's first step.
    @discardableResult
    package static func listen<L: EventLoop>(_ listener: SocketDescriptor, _ options: PoetryServerOptions, on loop: L) -> LoopBound<() -> Void> {
        let executor = loop.executor
        let accepting = Task(executorPreference: executor) {
            let sockets = AsyncListener(adopting: listener, loop: executor)
            defer { sockets.close() }
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
        return LoopBound({ accepting.cancel() }, loop: executor)
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
