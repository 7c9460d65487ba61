import EventCore
import Glibc

/// A real DNS server of the test's own: Debian's `dnsmasq` on 127.0.0.1 and a
/// free port, answering from a hosts-format file of `records`
/// (`"10.0.0.1 one.test"`), authoritative for `.test` (another name there is
/// NXDOMAIN) and refusing everything else (it has no upstream). Stopped when
/// the object goes.
public final class DNSServer {
    public let port: UInt16
    private let file: String
    private var process: SpawnedProcess?

    public init(records: [String]) throws {
        file = temporaryPath("hosts")
        guard let handle = fopen(file, "w") else { throw EventLoopError.system("fopen(\(file))") }
        fputs(records.joined(separator: "\n") + "\n", handle)
        fclose(handle)
        chmod(file, 0o644) // dnsmasq reads it after dropping to "nobody"
        var lastOutput = ""
        for _ in 0..<5 {
            let port = try unusedPort()
            let server = try SpawnedProcess("/usr/sbin/dnsmasq", [
                "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--addn-hosts=\(file)",
                "--listen-address=127.0.0.1", "--bind-interfaces", "--port=\(port)", "--local=/test/",
                "--pid-file=", "--log-facility=/dev/stdout", "--cache-size=0",
            ])
            let banner = server.waitForOutput(containing: "read \(file)", timeout: 20)
            if banner.contains("read \(file)") {
                self.port = port
                process = server
                return
            }
            server.send(SIGKILL)
            lastOutput = (try? server.wait(timeout: 5)).map { "\($0)" } ?? banner
        }
        unlink(file)
        throw EventLoopError.system("dnsmasq did not start: \(lastOutput)", .ioError)
    }

    deinit {
        process?.send(SIGKILL)
        _ = try? process?.wait(timeout: 5)
        unlink(file)
    }

    /// Its address: 127.0.0.1 and its port.
    public var address: SocketAddress { try! SocketAddress(ipv4: "127.0.0.1", port: port) }
}

/// A DNS server that misbehaves, in Python: `silent` reads queries and never
/// answers; `garbage` answers each with its ID and random bytes; `truncated`
/// answers with the truncation bit set and nothing else (and no TCP to retry on).
public final class HostileDNSServer {
    public enum Behaviour: String, Sendable { case silent, garbage, truncated }

    public let port: UInt16
    private let process: SpawnedProcess

    public init(_ behaviour: Behaviour) throws {
        let script = """
        import os, socket, sys
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1], flush=True)
        while True:
            data, peer = s.recvfrom(4096)
            if len(data) < 12 or sys.argv[1] == "silent":
                continue
            if sys.argv[1] == "garbage":
                s.sendto(data[:2] + bytes([0x81, 0x80]) + os.urandom(60), peer)
            else:
                s.sendto(data[:2] + bytes([0x83, 0x80]) + data[4:6] + bytes(6) + data[12:], peer)
        """
        process = try SpawnedProcess("/usr/bin/env", ["python3", "-u", "-c", script, behaviour.rawValue])
        let line = process.waitForOutput(containing: "\n", timeout: 20)
        guard let port = UInt16(line.filter { $0.isNumber }) else {
            process.send(SIGKILL)
            throw EventLoopError.system("the hostile DNS server did not start: \(line)", .ioError)
        }
        self.port = port
    }

    deinit {
        process.send(SIGKILL)
        _ = try? process.wait(timeout: 5)
    }

    public var address: SocketAddress { try! SocketAddress(ipv4: "127.0.0.1", port: port) }
}
