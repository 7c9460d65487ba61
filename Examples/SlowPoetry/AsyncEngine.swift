import Engines
import EV
import Epoll
import EventCore
import Glibc

// The evented server with async/await: a task per client, on libev or epoll (one code).

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
