import CLinux
#if canImport(Glibc)
import Glibc
#endif
import SystemPackage

/// What a server does when `accept` fails, so that it neither dies nor spins.
///
/// A listener with a connection waiting stays readable: a server that met
/// `EMFILE` and simply waited for readiness again would be woken at once,
/// forever, at 100 % CPU. So, as asyncio (`ACCEPT_RETRY_DELAY`) and SwiftNIO
/// (`AcceptBackoffHandler`) do, a server stops accepting for
/// ``delay`` when it runs out of descriptors, buffers or memory, and goes
/// on serving the clients it has; they free the resources it lacks.
public enum AcceptBackoff {
    /// How long to stop accepting after a failure: 1 s, asyncio's and SwiftNIO's default.
    public static let delay = Duration.seconds(1)

    /// Whether the failed accept can be retried at once: Linux hands the
    /// network errors already pending on a new connection to `accept`
    /// (accept(2): "treat them like EAGAIN by retrying"); the connection is
    /// gone and the next one may be fine. Every other error - out of
    /// descriptors (`EMFILE`, `ENFILE`), buffers (`ENOBUFS`) or memory
    /// (`ENOMEM`), or anything unexpected - calls for the back-off.
    public static func retriesAtOnce(_ error: EventLoopError) -> Bool {
        switch error.errno?.rawValue {
        case ECONNABORTED, EINTR, EPROTO, ENOPROTOOPT, ENETDOWN, ENETUNREACH,
             EHOSTDOWN, EHOSTUNREACH, ENONET, EOPNOTSUPP, EPERM:
            true
        default:
            false
        }
    }

    /// Accepts the connections waiting on a non-blocking `listener`, handing
    /// each (and its peer) to `accepted`, while `more()` allows; skips the
    /// network errors a new connection may bring (see ``retriesAtOnce(_:)``).
    /// Returns when no connection is left or `more()` says stop - what
    /// ``Listener`` does when its socket is readable.
    ///
    /// - Throws: the error that calls for the back-off (`EMFILE` and the
    ///   like): stop watching the listener for ``delay``.
    package static func acceptWaiting(on listener: SocketDescriptor, while more: () -> Bool = { true },
                                      _ accepted: (SocketDescriptor, SocketAddress?) -> Void) throws(EventLoopError) {
        while more() {
            do throws(EventLoopError) {
                guard case .processed(let (client, peer)) = try listener.accept() else { return }
                accepted(client, peer)
            } catch where retriesAtOnce(error) {
                continue
            }
        }
    }

    /// The line a server logs when it backs off.
    public static func message(_ error: EventLoopError) -> String {
        "\(error); accepting again in \(LoopTime.describe(delay))"
    }

    /// Waits for the next connection on a blocking `listener`, as a
    /// thread-per-client server must: skips a new connection's network
    /// errors, and when accept fails for want of resources hands `log` the
    /// line to log and sleeps ``delay`` instead of spinning.
    ///
    /// - Returns: the new connection; nil when accept failed because the
    ///   server is stopping (`stopping()`; shutting the listener down wakes it).
    package static func acceptBlocking(on listener: SocketDescriptor, stopping: () -> Bool,
                                       log: (String) -> Void) -> SocketDescriptor? {
        while true {
            let client = CLinux_accept4(listener.fd, nil, nil, CLinux_SOCK_CLOEXEC) // blocking, close-on-exec
            if client >= 0 { return SocketDescriptor(client) }
            let error = EventLoopError.system("accept", descriptor: listener.descriptor)
            if stopping() { return nil }
            if retriesAtOnce(error) { continue }
            log(message(error))
            sleepBlocking(delay)
        }
    }
}
