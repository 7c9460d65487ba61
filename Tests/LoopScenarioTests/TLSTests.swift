import EV
import Epoll
import EventCore
import Foundation
import Glibc
import Testing
import TestSupport
import TLS

/// TLS on the loop (OpenSSL over the package's non-blocking sockets), on
/// both loops, against real peers - `openssl s_server`, Python's ssl - and
/// hostile ones: a server that stalls mid-handshake, one that answers
/// garbage, certificates expired, for another name, self-signed, a peer
/// that closes without close_notify.
@Suite("TLS on the loop")
struct TLSTests {
    /// `openssl s_server` on a free port with `certificate`, until the object goes.
    final class OpenSSLServer {
        let process: SpawnedProcess
        let port: UInt16
        init(certificate: String, key: String, extra: [String] = []) throws {
            port = try unusedPort()
            process = try SpawnedProcess("/usr/bin/openssl", ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", certificate,
                                                             "-key", key, "-www", "-alpn", "http/1.1"] + extra)
            _ = process.waitForOutput(containing: "ACCEPT", timeout: 20)
        }
        deinit {
            process.send(SIGKILL)
            _ = try? process.wait(timeout: 5)
        }
    }

    @Test(arguments: LoopKind.allCases)
    func aClientOfOpenSSLsServer(_ kind: LoopKind) throws {
        let fixtures = try TLSFixtures()
        let server = try OpenSSLServer(certificate: fixtures.serverCertificate, key: fixtures.serverKey)
        let port = server.port
        let caFile = fixtures.caCertificate
        let (page, alpn) = try kind.run { executor in
            let context = try TLSContext(.client(caFile: caFile))
            let socket = try await AsyncSocket.connect(to: SocketAddress(ipv4: "127.0.0.1", port: port), on: executor)
            let tls = try await TLSSocket.client(over: socket, serverName: "localhost", context: context)
            defer { tls.close() }
            try await tls.write("GET / HTTP/1.0\r\n\r\n")
            var page: [UInt8] = []
            while case let bytes = try await tls.read(), !bytes.isEmpty { page += bytes }
            return (String(decoding: page, as: UTF8.self), tls.applicationProtocol)
        }
        #expect(page.hasPrefix("HTTP/1.0 200 ok"), "\(page.prefix(200))")
        #expect(alpn == "http/1.1")
    }

    @Test(arguments: LoopKind.allCases)
    func aServerForPythonsSSLClient(_ kind: LoopKind) throws {
        let fixtures = try TLSFixtures()
        let certificate = fixtures.serverCertificate, key = fixtures.serverKey
        let listener = try SocketDescriptor.listening(on: SocketAddress(parsing: "0"))
        let port = try listener.localAddress().port
        let script = """
        import socket, ssl, sys
        context = ssl.create_default_context(cafile=sys.argv[2])
        context.set_alpn_protocols(["http/1.1"])
        with socket.create_connection(("127.0.0.1", int(sys.argv[1]))) as raw:
            with context.wrap_socket(raw, server_hostname="site.test") as tls:
                tls.sendall(b"hello over tls")
                print(tls.recv(100).decode(), tls.selected_alpn_protocol(), tls.version(), flush=True)
        """
        let client = try SpawnedProcess("/usr/bin/env", ["python3", "-c", script, "\(port)", fixtures.caCertificate])
        let alpn = try kind.run { executor in
            let context = try TLSContext(.server(certificateChain: certificate, privateKey: key))
            let accepted = try await AsyncListener(adopting: listener, loop: executor).accept()
            let tls = try await TLSSocket.server(over: accepted, context: context)
            defer { tls.close() }
            let message = try await tls.read()
            try await tls.write(Array("echo: ".utf8) + message)
            return tls.applicationProtocol
        }
        let output = try client.wait(timeout: 30)
        #expect(output.standardOutput.hasPrefix("echo: hello over tls http/1.1 TLSv1.3"), "\(output)")
        #expect(alpn == "http/1.1")
    }

    /// Both ends ours: a second connection resumes the first's session, a
    /// half close (close_notify) is the end of the stream, and a close
    /// without close_notify is an error that says so.
    @Test(arguments: LoopKind.allCases)
    func resumptionHalfCloseAndAnEndWithoutCloseNotify(_ kind: LoopKind) throws {
        let fixtures = try TLSFixtures()
        let certificate = fixtures.serverCertificate, key = fixtures.serverKey, caFile = fixtures.caCertificate
        let (resumed, ends) = try kind.run { executor in
            let serverContext = try TLSContext(.server(certificateChain: certificate, privateKey: key))
            let clientContext = try TLSContext(.client(caFile: caFile))
            let listener = try AsyncListener(on: SocketAddress(parsing: "127.0.0.1:0"), loop: executor)
            defer { listener.close() }
            let address = listener.localAddress
            // The server: three connections; the first two echo until the end, the last is cut without close_notify.
            let server = Task(executorPreference: executor) {
                for number in 0..<3 {
                    let tls = try await TLSSocket.server(over: try await listener.accept(), context: serverContext)
                    if number == 2 {
                        _ = try await tls.read()
                        tls.socket.close() // no close_notify
                        continue
                    }
                    while case let bytes = try await tls.read(), !bytes.isEmpty { try await tls.write(bytes) }
                    tls.close()
                }
            }
            var resumed: [Bool] = []
            var ends: [String] = []
            for number in 0..<3 {
                let socket = try await AsyncSocket.connect(to: address, on: executor)
                let tls = try await TLSSocket.client(over: socket, serverName: "127.0.0.1", context: clientContext)
                resumed.append(tls.isResumed)
                try await tls.write("ping \(number)")
                if number < 2 {
                    _ = try await tls.read() // the echo, and TLS 1.3's session ticket with it
                    try await tls.shutdownWrite()
                    ends.append(try await tls.read().isEmpty ? "clean end" : "more")
                } else {
                    do {
                        while try await !tls.read().isEmpty {}
                        ends.append("clean end")
                    } catch let error as EventLoopError {
                        ends.append("\(error.code)")
                    }
                }
                tls.close()
            }
            try await server.value
            return (resumed, ends)
        }
        #expect(resumed == [false, true, true], "the second and third connections resume the first's session")
        #expect(ends == ["clean end", "clean end", "tls(EventCore.EventLoopError.TLSFailure.unexpectedEOF)"])
    }

    @Test(arguments: LoopKind.allCases)
    func certificatesThatMustNotBeTrusted(_ kind: LoopKind) throws {
        let fixtures = try TLSFixtures()
        let cases: [(certificate: String, key: String, caFile: String?, name: String, expected: EventLoopError.TLSFailure, words: String)] = [
            (fixtures.serverCertificate, fixtures.serverKey, nil, "localhost", .untrustedCertificate, "unable to get local issuer certificate"),
            (fixtures.wrongNameCertificate, fixtures.wrongNameKey, fixtures.caCertificate, "localhost", .nameMismatch, "hostname mismatch"),
            (fixtures.serverCertificate, fixtures.serverKey, fixtures.caCertificate, "elsewhere.test", .nameMismatch, "hostname mismatch"),
            (fixtures.expiredCertificate, fixtures.expiredKey, fixtures.caCertificate, "localhost", .expiredCertificate, "certificate has expired"),
            (fixtures.selfSignedCertificate, fixtures.selfSignedKey, fixtures.caCertificate, "localhost", .untrustedCertificate, "self-signed certificate"),
        ]
        for test in cases {
            let server = try OpenSSLServer(certificate: test.certificate, key: test.key)
            let port = server.port, caFile = test.caFile, name = test.name
            let error = try kind.run { executor -> EventLoopError? in
                let context = try TLSContext(.client(caFile: caFile))
                let socket = try await AsyncSocket.connect(to: SocketAddress(ipv4: "127.0.0.1", port: port), on: executor)
                do {
                    let tls = try await TLSSocket.client(over: socket, serverName: name, context: context)
                    tls.close()
                    return nil
                } catch let error as EventLoopError {
                    return error
                }
            }
            #expect(error?.code == .tls(test.expected), "\(test.certificate) as \(name): \(String(describing: error))")
            #expect(error?.description.contains(test.words) == true, "\(String(describing: error))")
            #expect(error?.description.contains("TLS with \(name):\(port): handshake") == true, "\(String(describing: error))")
        }
        // Verification off (named so where it is used): the self-signed server is accepted.
        let server = try OpenSSLServer(certificate: fixtures.selfSignedCertificate, key: fixtures.selfSignedKey)
        let port = server.port
        let accepted = try kind.run { executor in
            let context = try TLSContext(.client(verifiesPeer: false))
            let socket = try await AsyncSocket.connect(to: SocketAddress(ipv4: "127.0.0.1", port: port), on: executor)
            let tls = try await TLSSocket.client(over: socket, serverName: "localhost", context: context)
            tls.close()
            return true
        }
        #expect(accepted)
    }

    @Test(arguments: LoopKind.allCases)
    func aServerThatStallsOrAnswersGarbage(_ kind: LoopKind) throws {
        let (stalled, garbage, watches, waitsLeft) = try kind.runCheckedTuple { executor in
            let listener = try AsyncListener(on: SocketAddress(parsing: "127.0.0.1:0"), loop: executor)
            defer { listener.close() }
            let address = listener.localAddress
            // Accepts two connections: says nothing on the first, HTTP on the second.
            let server = Task(executorPreference: executor) {
                let silent = try await listener.accept()
                let talker = try await listener.accept()
                _ = try await talker.read()
                try await talker.write("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                _ = try? await silent.read() // until the client gives up
                silent.close()
                talker.close()
            }
            let context = try TLSContext(.client(handshakeTimeout: .milliseconds(300)))
            func attempt() async -> EventLoopError? {
                do {
                    let socket = try await AsyncSocket.connect(to: address, on: executor)
                    let tls = try await TLSSocket.client(over: socket, serverName: "localhost", context: context)
                    tls.close()
                    return nil
                } catch {
                    return error as? EventLoopError
                }
            }
            let stalled = await attempt()
            let garbage = await attempt()
            try await server.value
            return (stalled, garbage)
        }
        #expect(stalled?.code == .timedOut, "\(String(describing: stalled))")
        #expect(stalled?.description.contains("handshake") == true, "\(String(describing: stalled))")
        #expect(garbage?.code == .tls(.handshakeFailed), "\(String(describing: garbage))")
        #expect(garbage?.description.contains("wrong version number") == true, "OpenSSL's words: \(String(describing: garbage))")
        #expect(watches == 0 && !waitsLeft)
    }

    @Test func filesThatDoNotLoadAreNamed() throws {
        let fixtures = try TLSFixtures()
        let missing = #expect(throws: EventLoopError.self) {
            try TLSContext(.server(certificateChain: "/no/such.pem", privateKey: fixtures.serverKey))
        }
        #expect(missing?.code == .tls(.badConfiguration))
        #expect(missing?.description.contains("/no/such.pem") == true, "\(String(describing: missing))")
        let mismatched = #expect(throws: EventLoopError.self) {
            try TLSContext(.server(certificateChain: fixtures.serverCertificate, privateKey: fixtures.wrongNameKey))
        }
        #expect(mismatched?.description.contains("SSL_CTX_check_private_key") == true || mismatched?.description.contains("key values mismatch") == true,
                "\(String(describing: mismatched))")
    }
}

extension LoopKind {
    /// ``runChecked(_:)`` with the result's two values and the leftovers flattened.
    func runCheckedTuple<A: Sendable, B: Sendable>(_ body: sending @escaping (any EventLoopExecutor) async throws -> (A, B)) throws
        -> (A, B, Int, Bool) {
        let (result, watches, waitsLeft) = try runChecked(body)
        return (result.0, result.1, watches, waitsLeft)
    }
}
