import EventCore
import Foundation
import Glibc
import Testing
import TestSupport

/// evcat, the package's netcat, against real peers: Python sockets
/// (Examples/Netcat/scripts/peers.py), ncat, socat, cat and tr as --exec'd
/// programs, dnsmasq for names - on both loops.
@Suite("evcat, against Python, ncat and socat")
struct NetcatTests {
    static let evcat = builtProductsDirectory() + "/evcat"
    static let peers = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Examples/Netcat/scripts/peers.py").path

    /// Runs `command` with /bin/sh (pipes and redirections), `evcat` standing for the program.
    func shell(_ command: String, timeout: Double = 30) throws -> ProcessOutput {
        try runProcess("/bin/sh", ["-c", command.replacingOccurrences(of: "evcat ", with: "'\(Self.evcat)' ")], timeout: timeout)
    }

    /// A Python peer of `mode` on a free port, once it listens.
    func peer(_ mode: String) throws -> (SpawnedProcess, UInt16) {
        let port = try unusedPort()
        let process = try SpawnedProcess("/usr/bin/env", ["python3", "-u", Self.peers, mode, "\(port)"])
        _ = process.waitForOutput(containing: "ready")
        return (process, port)
    }

    /// Waits until something listens on TCP `port` of 127.0.0.1 (read from
    /// /proc/net/tcp, so that no probe takes a one-shot listener's connection).
    func waitUntilListening(_ port: UInt16, timeout: Double = 10) -> Bool {
        let wanted = String(format: "0100007F:%04X", port)
        return waitUntil(timeout: timeout, every: 0.01) {
            let table = (try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8)) ?? ""
            return table.split(separator: "\n").contains { $0.contains(wanted) && $0.split(separator: " ")[3] == "0A" }
        }
    }

    /// Waits until something listens on the Unix socket at `path` (read from
    /// /proc/net/unix, whose Flags column has __SO_ACCEPTCON, 0x10000, once
    /// `listen` is called). The socket's file alone is not enough: it appears
    /// at `bind`, and a connect between `bind` and `listen` is refused.
    func waitUntilListening(path: String, timeout: Double = 10) -> Bool {
        waitUntil(timeout: timeout, every: 0.01) {
            let table = (try? String(contentsOfFile: "/proc/net/unix", encoding: .utf8)) ?? ""
            return table.split(separator: "\n").contains { line in
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                return fields.count >= 8 && fields[7] == path && fields[3] == "00010000"
            }
        }
    }

    @Test(arguments: ["libev", "epoll"])
    func stdinGoesOutItsEndShutsDownAndTheReplyComesBack(_ loop: String) throws {
        let (server, port) = try peer("count")
        defer { server.send(SIGKILL); _ = try? server.wait(timeout: 5) }
        // A pipe on stdin; the server answers only after the end of the stream.
        let output = try shell("head -c 1000000 /dev/zero | evcat --loop \(loop) 127.0.0.1 \(port)")
        #expect(output.exitCode == 0 && output.standardOutput == "got 1000000 bytes\n", "\(output)")
    }

    @Test(arguments: ["libev", "epoll"])
    func aFileInAndAFileOut(_ loop: String) throws {
        let (server, port) = try peer("echo")
        defer { server.send(SIGKILL); _ = try? server.wait(timeout: 5) }
        let input = temporaryPath("in"), output = temporaryPath("out")
        defer { unlink(input); unlink(output) }
        let bytes = (0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) }
        try Data(bytes).write(to: URL(fileURLWithPath: input))
        let run = try shell("evcat --loop \(loop) 127.0.0.1 \(port) < '\(input)' > '\(output)'")
        #expect(run.exitCode == 0, "\(run)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: output)) == Data(bytes), "the regular files, read and written without the loop")
    }

    @Test(arguments: ["libev", "epoll"])
    func listeningForNcatAndSocat(_ loop: String) throws {
        for client in ["ncat 127.0.0.1", "socat - TCP:127.0.0.1:"] {
            let port = try unusedPort()
            let listener = try SpawnedProcess("/bin/sh", ["-c", "exec '\(Self.evcat)' --loop \(loop) -l 127.0.0.1 \(port) < /dev/null"])
            #expect(waitUntilListening(port))
            let command = client.hasSuffix(":") ? "\(client)\(port)" : "\(client) \(port)"
            let sent = try shell("printf 'hello from a peer\\n' | \(command)")
            let heard = try listener.wait(timeout: 20)
            #expect(sent.exitCode == 0, "\(sent)")
            #expect(heard.exitCode == 0 && heard.standardOutput == "hello from a peer\n", "\(client): \(heard)")
        }
    }

    @Test(arguments: ["libev", "epoll"])
    func connectingToNcatAndSocat(_ loop: String) throws {
        for server in ["ncat -l 127.0.0.1", "socat -u TCP-LISTEN:"] {
            let port = try unusedPort()
            let command = server.hasSuffix(":") ? "exec \(server)\(port),bind=127.0.0.1 STDOUT" : "exec \(server) \(port) < /dev/null"
            let listener = try SpawnedProcess("/bin/sh", ["-c", command])
            #expect(waitUntilListening(port))
            let sent = try shell("printf 'hello, \(server.prefix(5))\\n' | evcat --loop \(loop) 127.0.0.1 \(port)")
            let heard = try listener.wait(timeout: 20)
            #expect(sent.exitCode == 0, "\(sent)")
            #expect(heard.standardOutput == "hello, \(server.prefix(5))\n", "\(server): \(heard)")
        }
    }

    @Test(arguments: ["libev", "epoll"])
    func eachConnectionIsAChildsStdinAndStdout(_ loop: String) throws {
        let port = try unusedPort()
        let listener = try SpawnedProcess(Self.evcat, ["--loop", loop, "-l", "-k", "127.0.0.1", "\(port)", "--exec", "/bin/cat"])
        defer { listener.send(SIGKILL); _ = try? listener.wait(timeout: 5) }
        #expect(waitUntilListening(port))
        // Three clients at once, each its own cat.
        let clients = try (0..<3).map { number in
            try SpawnedProcess("/bin/sh", ["-c", "head -c \(100_000 * (number + 1)) /dev/zero | python3 '\(Self.peers)' client \(port) | wc -c"])
        }
        let counts = try clients.map { try $0.wait(timeout: 30).standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) }
        #expect(counts == ["100000", "200000", "300000"])
        let shellPort = try unusedPort()
        let shellListener = try SpawnedProcess(Self.evcat, ["--loop", loop, "-l", "127.0.0.1", "\(shellPort)", "--sh-exec", "tr a-z A-Z"])
        #expect(waitUntilListening(shellPort))
        let shouted = try shell("printf 'quiet words\\n' | python3 '\(Self.peers)' client \(shellPort)")
        #expect(shouted.standardOutput == "QUIET WORDS\n", "\(shouted)")
        #expect(try shellListener.wait(timeout: 20).exitCode == 0)
    }

    @Test(arguments: ["libev", "epoll"])
    func datagrams(_ loop: String) throws {
        let (server, port) = try peer("udp-echo")
        defer { server.send(SIGKILL); _ = try? server.wait(timeout: 5) }
        let output = try shell("printf 'a datagram\\n' | evcat --loop \(loop) -u -w 0.3 127.0.0.1 \(port)")
        #expect(output.exitCode == 0 && output.standardOutput == "A DATAGRAM\n", "\(output)")
    }

    @Test(arguments: ["libev", "epoll"])
    func unixSocketsWithSocat(_ loop: String) throws {
        let path = temporaryPath("listen.sock")
        defer { unlink(path) }
        let listener = try SpawnedProcess(Self.evcat, ["--loop", loop, "-l", "-U", path, "--sh-exec", "tr a-z A-Z"])
        #expect(waitUntilListening(path: path))
        let output = try shell("printf 'over a unix socket\\n' | socat - UNIX-CONNECT:'\(path)'")
        #expect(output.standardOutput == "OVER A UNIX SOCKET\n", "\(output)")
        #expect(try listener.wait(timeout: 20).exitCode == 0)
        // And evcat as the client, of socat's listener.
        let socatPath = temporaryPath("socat.sock")
        defer { unlink(socatPath) }
        let socat = try SpawnedProcess("/usr/bin/socat", ["-u", "UNIX-LISTEN:\(socatPath)", "STDOUT"])
        #expect(waitUntilListening(path: socatPath))
        let sent = try shell("printf 'to socat\\n' | evcat --loop \(loop) -U '\(socatPath)'")
        #expect(sent.exitCode == 0, "\(sent)")
        #expect(try socat.wait(timeout: 20).standardOutput == "to socat\n")
    }

    @Test(arguments: ["libev", "epoll"])
    func namesThroughTheDNSServerGiven(_ loop: String) throws {
        let (server, port) = try peer("count")
        defer { server.send(SIGKILL); _ = try? server.wait(timeout: 5) }
        let dns = try DNSServer(records: ["127.0.0.1 peer.test"])
        let found = try shell("printf 'abc' | evcat --loop \(loop) --dns 127.0.0.1:\(dns.port) peer.test \(port)")
        #expect(found.exitCode == 0 && found.standardOutput == "got 3 bytes\n", "\(found)")
        let missing = try shell("evcat --loop \(loop) --dns 127.0.0.1:\(dns.port) nobody.test \(port) < /dev/null")
        #expect(missing.exitCode == 1 && missing.standardError == "evcat: resolve(nobody.test): the name does not exist (NXDOMAIN)\n", "\(missing)")
    }

    @Test(arguments: ["libev", "epoll"])
    func networkFailuresExit1AndSayWhat(_ loop: String) throws {
        let refused = try shell("evcat --loop \(loop) 127.0.0.1 \(try unusedPort()) < /dev/null")
        #expect(refused.exitCode == 1 && refused.standardError.contains("Connection refused (ECONNREFUSED)"), "\(refused)")
        // Idle: a server that accepts and says nothing, stdin that stays open.
        let (silent, port) = try peer("silent")
        defer { silent.send(SIGKILL); _ = try? silent.wait(timeout: 5) }
        let idle = try shell("sleep 10 | evcat --loop \(loop) -i 0.3 127.0.0.1 \(port)")
        #expect(idle.exitCode == 1 && idle.standardError.contains("idle for 0.3 s"), "\(idle)")
        // A connection that never completes: a listener whose queue is full.
        let full = try SocketDescriptor.listening(on: SocketAddress(parsing: "0"), backlog: 0)
        defer { full.close() }
        let fullPort = try full.localAddress().port
        let fillers = try (0..<4).map { _ in try SocketDescriptor.stream(.ipv4) }
        defer { fillers.forEach { $0.close() } }
        for filler in fillers { _ = try? filler.connect(to: try SocketAddress(ipv4: "127.0.0.1", port: fullPort)) }
        let slow = try shell("evcat --loop \(loop) -w 0.3 127.0.0.1 \(fullPort) < /dev/null")
        #expect(slow.exitCode == 1 && slow.standardError.contains("timed out"), "\(slow)")
    }

    @Test(arguments: ["libev", "epoll"])
    func tlsWithOpenSSLBothWays(_ loop: String) throws {
        let fixtures = try TLSFixtures()
        // evcat the client of openssl s_server (-www answers a GET with a page).
        let port = try unusedPort()
        let server = try SpawnedProcess("/usr/bin/openssl", ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", fixtures.serverCertificate,
                                                            "-key", fixtures.serverKey, "-www"])
        defer { server.send(SIGKILL); _ = try? server.wait(timeout: 5) }
        _ = server.waitForOutput(containing: "ACCEPT", timeout: 20)
        let page = try shell("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | evcat --loop \(loop) --ssl --ssl-trustfile '\(fixtures.caCertificate)' localhost \(port)")
        #expect(page.exitCode == 0 && page.standardOutput.hasPrefix("HTTP/1.0 200 ok"), "\(page)")
        let untrusted = try shell("evcat --loop \(loop) --ssl localhost \(port) < /dev/null")
        #expect(untrusted.exitCode == 1 && untrusted.standardError.contains("not signed by a trusted authority"), "\(untrusted)")
        let insecure = try shell("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | evcat --loop \(loop) --ssl --ssl-insecure --ssl-servername other.test 127.0.0.1 \(port)")
        #expect(insecure.exitCode == 0 && insecure.standardOutput.hasPrefix("HTTP/1.0 200 ok"), "\(insecure)")
        // evcat the server of openssl s_client, a program's stdin and stdout over TLS
        // (s_client -quiet never ends its sending side: the program ends after a line).
        let listenPort = try unusedPort()
        let listener = try SpawnedProcess(Self.evcat, ["--loop", loop, "--ssl", "-l", "127.0.0.1", "\(listenPort)", "--ssl-cert",
                                                       fixtures.serverCertificate, "--ssl-key", fixtures.serverKey, "--sh-exec", "head -n 1 | tr a-z A-Z"])
        #expect(waitUntilListening(listenPort))
        let shouted = try shell("printf 'over tls\\n' | openssl s_client -quiet -CAfile '\(fixtures.caCertificate)' -verify_return_error -connect 127.0.0.1:\(listenPort) 2>/dev/null")
        #expect(shouted.standardOutput == "OVER TLS\n", "\(shouted)")
        #expect(try listener.wait(timeout: 20).exitCode == 0)
    }

    @Test func usageErrorsExit64() throws {
        for arguments in ["", "127.0.0.1", "-l", "127.0.0.1 99999", "-k 127.0.0.1 80", "-u -e cat 127.0.0.1 80", "-w nan 127.0.0.1 80",
                          "-U", "--dns resolver.example example.com 80", "-e cat -c cat -l 80", "--loop uv 127.0.0.1 80",
                          "--ssl -u 127.0.0.1 80", "--ssl -l 8443", "--ssl-insecure 127.0.0.1 80", "--ssl --ssl-cert c.pem 127.0.0.1 80"] {
            let output = try shell("evcat \(arguments) < /dev/null")
            #expect(output.exitCode == 64, "evcat \(arguments): \(output)")
        }
    }
}
