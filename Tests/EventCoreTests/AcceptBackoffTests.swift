import EventCore
import Glibc
import Testing

@Suite("AcceptBackoff")
struct AcceptBackoffTests {
    /// The thread-per-client servers' blocking accept gives a connection
    /// that is blocking (their threads read and write it so) and close-on-exec
    /// like every descriptor the package makes: a program the app spawns
    /// meanwhile must not hold the client's connection open after the
    /// server closes it.
    @Test func aBlockingAcceptGivesABlockingCloseOnExecConnection() throws {
        let listener = try SocketDescriptor.listening(on: SocketAddress(parsing: "127.0.0.1:0"))
        defer { listener.close() }
        _ = fcntl(listener.fd, F_SETFL, fcntl(listener.fd, F_GETFL) & ~O_NONBLOCK)
        let client = try SocketDescriptor.stream(.ipv4)
        defer { client.close() }
        _ = try client.connect(to: listener.localAddress())
        let accepted = try #require(AcceptBackoff.acceptBlocking(on: listener, stopping: { false }, log: { _ in }))
        defer { accepted.close() }
        #expect(fcntl(accepted.fd, F_GETFD) & FD_CLOEXEC != 0, "close-on-exec")
        #expect(fcntl(accepted.fd, F_GETFL) & O_NONBLOCK == 0, "blocking")
    }
}
