import EventCore
import HTTP
#if canImport(Glibc)
import Glibc
#endif

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
            let deadline = monotonicNow() + options.stopTimeout.inSeconds
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
                state.clients.insert(client.fd)
                state.stats.opened()
            }
            do {
                try PlainThread(stackSize: PlainThread.smallStackSize) { serve(client.fd, options, shared) }.detach()
            } catch {
                options.log("\(error); closing the client")
                client.close()
                shared.state.withLock { state in
                    state.clients.remove(client.fd)
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
            let sendDeadline = monotonicNow() + options.limits.idleTimeout.inSeconds
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
        // Ending as the peer asked, with nothing of its waiting: nothing to
        // linger for. Else a lingering close (see CallbackConnection.linger()),
        // at most the linger timeout in all, whatever the peer sends meanwhile.
        if http.endsCleanly {
            let count = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if count == 0 || count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return }
        }
        shutdown(fd, Int32(SHUT_WR))
        let lingerDeadline = monotonicNow() + options.limits.lingerTimeout.inSeconds
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
