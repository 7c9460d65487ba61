import Engines
import EV
import Epoll
import EventCore
import Glibc

// The classic server: blocking sockets, one client at a time or a thread each.

enum BlockingEngine {
    static func start(_ listener: SocketDescriptor, _ options: PoetryServerOptions, perClientThread: Bool) throws -> PoetryStop {
        // Blocking sockets, as the classic server: accept and send wait.
        _ = fcntl(listener.fd, F_SETFL, fcntl(listener.fd, F_GETFL) & ~O_NONBLOCK)
        let stopping = LockedValue(false) // the clients' poems end at their next chunk
        let accepting = LockedValue(true)
        let acceptorDone = LockedValue(false)
        let serving = LockedValue(0)
        let acceptor = try PlainThread(stackSize: PlainThread.smallStackSize) {
            defer { acceptorDone.withLock { $0 = true } }
            while accepting.withLock({ $0 }) && !stopping.withLock({ $0 }) {
                guard let client = AcceptBackoff.acceptBlocking(on: listener, stopping: { !accepting.withLock { $0 } || stopping.withLock { $0 } },
                                                                log: options.log) else { break }
                serving.withLock { $0 += 1 }
                if perClientThread {
                    do {
                        try PlainThread(stackSize: PlainThread.smallStackSize) {
                            serve(client, options, stopping)
                            serving.withLock { $0 -= 1 }
                        }.detach()
                    } catch {
                        options.log("\(error); closing the client")
                        closeGracefully(client)
                        serving.withLock { $0 -= 1 }
                    }
                } else {
                    serve(client, options, stopping)
                    serving.withLock { $0 -= 1 }
                }
            }
        }
        let stopped = LockedValue(false)
        let stopNow: @Sendable () -> Void = {
            guard !stopped.withLock({ let was = $0; $0 = true; return was }) else { return }
            stopping.withLock { $0 = true }
            accepting.withLock { $0 = false }
            shutdown(listener.fd, Int32(SHUT_RDWR))
            acceptor.join()
            listener.close()
        }
        return PoetryStop(gracefully: { timeout in
            // No new client (accept fails on the shut listener); the ones
            // being served - and, one at a time, the one the classic server
            // is on - get the rest of their poem, within `timeout`.
            accepting.withLock { $0 = false }
            shutdown(listener.fd, Int32(SHUT_RDWR))
            let deadline = ContinuousClock.now.advanced(by: timeout)
            var finished = false
            while ContinuousClock.now < deadline {
                finished = acceptorDone.withLock { $0 } && serving.withLock { $0 } == 0
                if finished { break }
                sleepBlocking(.milliseconds(5))
            }
            stopNow()
            return finished
        }, now: stopNow)
    }

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
