import EV
import Epoll
import EventCore
import Glibc
import Testing
import TestSupport
import TLS

/// Issue "TLS on the loop", 1: TLS for the callback `Connection` - a
/// `TLSLayer` (the same OpenSSL steps as `TLSSocket`'s) under a client and
/// a server connection, on both loops, against each other, `openssl
/// s_server`, and peers that fail: a wrong name, a stall mid-handshake.
@Suite("TLS under the callback Connection")
struct TLSConnectionTests {
    @Test(arguments: LoopKind.allCases)
    func aTLSEchoMovesAMegabyteBothWays(_ kind: LoopKind) throws {
        switch kind {
        case .libev: try echo(Loop())
        case .epoll: try echo(EpollLoop())
        }
    }

    /// A TLS echo server and client on one loop: the client's writes made
    /// before the handshake are queued; a megabyte goes and comes back
    /// (the server reads one record a turn, so OpenSSL holds input no
    /// readiness announces); the client's close sends close_notify, the
    /// server's connection sees a clean end.
    func echo<L: EventLoop>(_ loop: L) throws {
        let fixtures = try TLSFixtures()
        let serverContext = try TLSContext(.server(certificateChain: fixtures.serverCertificate, privateKey: fixtures.serverKey))
        let clientContext = try TLSContext(.client(caFile: fixtures.caCertificate))
        var served: [Recorder] = []
        let listener = try Listener(on: SocketAddress(parsing: "127.0.0.1:0"), loop: loop) { socket, peer in
            let echo = Recorder()
            let connection = try? Connection(adopting: socket, peer: peer, on: loop, layer: serverContext.serverLayer, delegate: echo)
            connection?.maximumReadsPerTurn = 1
            echo.connection = connection
            echo.onReceive = { bytes in connection?.write(bytes) }
            served.append(echo)
        }
        let client = Recorder()
        let connection = try Connection.connect(to: listener.localAddress, on: loop,
                                                layer: clientContext.clientLayer(serverName: "localhost", port: listener.localAddress.port),
                                                delegate: client)
        let payload = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        #expect(connection.write(payload), "queued until the handshake is done")
        #expect(client.log.isEmpty, "nothing is told before connect returns")
        #expect(loop.runUntil { client.received.count >= payload.count || client.log.last?.hasPrefix("closed") == true })
        #expect(client.received == payload, "\(client.received.count) bytes back; \(client.log)")
        #expect(client.log.first == "established")
        #expect(served.first?.log.first == "established", "the server's delegate hears the handshake's end: \(served.first?.log ?? [])")
        // Three records in one burst, read one a turn: OpenSSL has read the
        // last two ahead, and no readiness will say so - they are read all the same.
        connection.maximumReadsPerTurn = 1
        client.received = []
        let server = served.first?.connection as? Connection<L>
        for record in ["one ", "two ", "three"] { server?.write(record) }
        #expect(loop.runUntil(timeout: 5) { client.received.count >= 13 })
        #expect(String(decoding: client.received, as: UTF8.self) == "one two three")
        connection.close()
        #expect(loop.runUntil { served.first?.log.last?.hasPrefix("closed") == true })
        #expect(served.first?.log == ["established", "end", "closed"], "a clean end (close_notify): \(served.first?.log ?? [])")
        listener.close()
        loop.close()
    }

    @Test(arguments: LoopKind.allCases)
    func aRealServerAWrongNameAndAStallEachEndAsTheyShould(_ kind: LoopKind) throws {
        switch kind {
        case .libev: try peers(Loop())
        case .epoll: try peers(EpollLoop())
        }
    }

    func peers<L: EventLoop>(_ loop: L) throws {
        let fixtures = try TLSFixtures()
        let server = try TLSTests.OpenSSLServer(certificate: fixtures.serverCertificate, key: fixtures.serverKey)
        let context = try TLSContext(.client(caFile: fixtures.caCertificate, handshakeTimeout: .milliseconds(300)))
        let address = try SocketAddress(ipv4: "127.0.0.1", port: server.port)
        // openssl s_server -www answers a GET with a page, then closes.
        let reader = Recorder()
        let connection = try Connection.connect(to: address, on: loop, layer: context.clientLayer(serverName: "localhost", port: server.port),
                                                delegate: reader)
        connection.write("GET / HTTP/1.0\r\n\r\n")
        #expect(loop.runUntil { reader.log.last?.hasPrefix("closed") == true })
        #expect(String(decoding: reader.received, as: UTF8.self).hasPrefix("HTTP/1.0 200 ok"), "\(reader.log)")
        // The certificate is for localhost and 127.0.0.1, not this name.
        let wrong = Recorder()
        _ = try Connection.connect(to: address, on: loop, layer: context.clientLayer(serverName: "other.test", port: server.port),
                                   delegate: wrong)
        #expect(loop.runUntil { wrong.log.last?.hasPrefix("closed") == true })
        #expect(wrong.log.count == 1 && wrong.log[0].contains("the certificate is not for this name"), "\(wrong.log)")
        // A listener that never answers the ClientHello: the handshake's time limit.
        let silent = try SocketDescriptor.listening(on: SocketAddress(parsing: "127.0.0.1:0"))
        defer { silent.close() }
        let stalled = Recorder()
        _ = try Connection.connect(to: try silent.localAddress(), on: loop,
                                   layer: context.clientLayer(serverName: "localhost", port: 1), delegate: stalled)
        let start = monotonicSeconds()
        #expect(loop.runUntil { stalled.log.last?.hasPrefix("closed") == true })
        #expect(stalled.log.count == 1 && stalled.log[0].contains("handshake") && stalled.log[0].contains("timed out"), "\(stalled.log)")
        #expect(monotonicSeconds() - start >= 0.29)
        loop.close()
    }
}
