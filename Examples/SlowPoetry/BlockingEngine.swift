import Engines
import EV
import Epoll
import EventCore
import Glibc

// The classic server: blocking sockets, one client at a time or a thread each.

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
