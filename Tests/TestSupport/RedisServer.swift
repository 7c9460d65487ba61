import EventCore
import Glibc

/// A free TCP port on 127.0.0.1 (bound and closed again). Bound, not
/// listening, and with `SO_REUSEADDR`: a program another test is spawning
/// holds a copy of every descriptor until its `exec`, and a copy of this one
/// then neither accepts a test's "refused" connect nor keeps a server from
/// binding the port.
public func unusedPort() throws -> UInt16 {
    let socket = try SocketDescriptor.stream(.ipv4)
    defer { socket.close() }
    try socket.setReuseAddress()
    try socket.bind(to: SocketAddress(parsing: "127.0.0.1:0"))
    return try socket.localAddress().port
}

/// A real `redis-server` (Debian's package) of the test's own: a free port on
/// 127.0.0.1, a temporary directory for its append-only file, stopped (and
/// the directory removed) when the object goes. No test depends on a server
/// already running.
public final class RedisServer {
    public let port: UInt16
    public let directory: String
    /// The password the server asks for (`--requirepass`), if any.
    public let password: String?
    /// The certificate and key it serves TLS with (then on its port, with
    /// no plain port), if any.
    public let tls: (certificate: String, key: String)?
    private var process: SpawnedProcess?

    public init(password: String? = nil, tls: (certificate: String, key: String)? = nil) throws {
        self.password = password
        self.tls = tls
        port = try unusedPort()
        directory = temporaryPath("redis")
        mkdir(directory, 0o700)
        try start()
    }

    deinit {
        process?.send(SIGKILL)
        _ = try? process?.wait(timeout: 5)
        _ = try? runProcess("/bin/rm", ["-rf", directory])
    }

    /// `redis://127.0.0.1:PORT`, and a key prefix when given.
    public func url(prefix: String? = nil) -> String {
        "redis\(tls == nil ? "" : "s")://127.0.0.1:\(port)" + (prefix.map { "/" + $0 } ?? "")
    }

    /// Starts the server (again, after ``stop()``: the data comes back from
    /// its append-only file); returns once it accepts connections.
    public func start() throws {
        let ports = tls.map { ["--port", "0", "--tls-port", "\(port)", "--tls-cert-file", $0.certificate, "--tls-key-file", $0.key,
                               "--tls-ca-cert-file", $0.certificate, "--tls-auth-clients", "no"] } ?? ["--port", "\(port)"]
        let server = try SpawnedProcess("/usr/bin/redis-server", ports + [
            "--bind", "127.0.0.1", "--dir", directory, "--save", "",
            "--appendonly", "yes", "--appendfsync", "everysec", "--daemonize", "no", "--loglevel", "notice",
        ] + (password.map { ["--requirepass", $0] } ?? []))
        let banner = server.waitForOutput(containing: "Ready to accept connections", timeout: 20)
        guard banner.contains("Ready to accept connections") else {
            server.send(SIGKILL)
            let output = try server.wait(timeout: 5)
            throw EventLoopError.system("redis-server did not start: \(output)", .ioError)
        }
        process = server
    }

    /// Stops the server as an operator would (SIGTERM: it writes its data and exits).
    @discardableResult
    public func stop() throws -> ProcessOutput? {
        guard let server = process else { return nil }
        process = nil
        server.send(SIGTERM)
        return try server.wait(timeout: 20)
    }

    /// Sends `signal` to the server (SIGSTOP: it stops answering, its
    /// connections stay open; SIGCONT: it goes on).
    public func send(_ signal: Int32) {
        process?.send(signal)
    }

    /// Runs `redis-cli` against the server; returns its standard output, trimmed.
    public func cli(_ arguments: [String]) throws -> String {
        let output = try runProcess("/usr/bin/redis-cli", ["-p", "\(port)"] + (tls == nil ? [] : ["--tls", "--insecure"]) + arguments,
                                    environment: password.map { ["REDISCLI_AUTH": $0] } ?? [:], timeout: 20)
        var text = Substring(output.standardOutput)
        while text.last == "\n" || text.last == " " { text.removeLast() }
        return String(text)
    }
}
