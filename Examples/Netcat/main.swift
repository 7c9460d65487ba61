// evcat: a netcat in the spirit of Nmap's ncat and OpenBSD nc, on the
// package alone - names through c-ares on the loop, TCP, UDP and Unix
// sockets, stdin and stdout as non-blocking streams on the loop, children
// for --exec - on libev or the epoll loop.
import ArgumentParser
import EV
import Engines
import Epoll
import EventCore
import Glibc
import Resolver
import TLS

enum LoopChoice: String, ExpressibleByArgument, CaseIterable, Sendable {
    case libev, epoll
}

/// A network failure, said on stderr before exit 1.
struct NetworkFailure: Error, CustomStringConvertible {
    let description: String
}

struct Evcat: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evcat",
        abstract: "Read and write bytes over TCP, UDP or Unix sockets, on an event loop (a netcat).",
        discussion: """
        Connect mode: evcat HOST PORT (or evcat -U PATH). Listen mode: evcat -l [HOST] PORT (or evcat -l -U PATH).
        Standard input goes to the peer; at its end the sending side is shut down (as ncat does) and evcat
        runs until the peer closes. What the peer sends goes to standard output. With --exec or --sh-exec
        each connection is the program's standard input and output instead.
        Exit status: 0 on success, 1 on a network failure (named on stderr), 64 on a usage error.
        """)

    @Flag(name: [.short, .customLong("listen")], help: "Listen for a connection instead of connecting.")
    var listen = false

    @Flag(name: [.short, .customLong("keep-open")], help: "With -l: keep accepting connections, each served at once (with --exec, a child each; without, what each sends goes to stdout, and stdin is not read).")
    var keepOpen = false

    @Flag(name: [.short, .customLong("udp")], help: "UDP datagrams instead of a TCP stream (each read of stdin is a datagram).")
    var udp = false

    @Flag(name: [.customShort("U"), .customLong("unixsock")], help: "A Unix-domain socket: the address is a path (@NAME: an abstract name).")
    var unixSocket = false

    @Option(name: [.short, .customLong("exec")], help: "Run PROGRAM (split on spaces, no shell) with the connection as its stdin and stdout.")
    var exec: String?

    @Option(name: [.short, .customLong("sh-exec")], help: "Run COMMAND with /bin/sh -c, the connection as its stdin and stdout.")
    var shExec: String?

    @Option(name: [.short, .customLong("wait")], help: "Seconds a connection may take (each address of a name in turn); with -u, how long replies are awaited after stdin ends (default 2).")
    var wait: Double?

    @Option(name: [.short, .customLong("idle-timeout")], help: "Seconds without data either way before giving up (exit 1).")
    var idleTimeout: Double?

    @Option(help: "The DNS server for host names, ADDRESS or ADDRESS:PORT (repeatable); the hosts file comes first.")
    var dns: [String] = []

    @Option(help: "The event loop: \(LoopChoice.allCases.map(\.rawValue).joined(separator: ", ")).")
    var loop: LoopChoice = .libev

    @Flag(help: "TLS (1.2 or 1.3) over the TCP connection; connecting, the server's certificate is verified (the system's CAs, or --ssl-trustfile) and must be for the host named.")
    var ssl = false

    @Option(name: .customLong("ssl-trustfile"), help: "With --ssl: the PEM file of the authorities to trust instead of the system's.")
    var sslTrustfile: String?

    @Option(name: .customLong("ssl-cert"), help: "With --ssl -l: the server's certificate chain (PEM).")
    var sslCert: String?

    @Option(name: .customLong("ssl-key"), help: "With --ssl -l: the server's private key (PEM).")
    var sslKey: String?

    @Option(name: .customLong("ssl-servername"), help: "With --ssl: the name sent (SNI) and verified, instead of HOST.")
    var sslServername: String?

    @Option(name: .customLong("ssl-alpn"), help: "With --ssl: the application protocols to offer or accept, comma-separated.")
    var sslAlpn: String?

    @Flag(name: .customLong("ssl-insecure"), help: "With --ssl: do NOT verify the server's certificate or name (insecure: for tests against self-signed servers).")
    var sslInsecure = false

    @Argument(help: "HOST PORT to connect to; [HOST] PORT to listen on; PATH with -U.")
    var address: [String] = []

    func validate() throws {
        if unixSocket {
            guard address.count == 1 else { throw ValidationError("-U takes one PATH; got \(address.count) arguments") }
            do { _ = try unixAddress() } catch { throw ValidationError("\(error)") }
        } else if listen {
            guard (1...2).contains(address.count), UInt16(address.last!) != nil else {
                throw ValidationError("listen mode takes [HOST] PORT, a port in 0...65535; got \(address)")
            }
        } else {
            guard address.count == 2, let port = UInt16(address[1]), port != 0 else {
                throw ValidationError("connect mode takes HOST PORT, a port in 1...65535; got \(address)")
            }
        }
        if exec != nil && shExec != nil { throw ValidationError("--exec and --sh-exec exclude each other") }
        if let exec, exec.split(separator: " ").isEmpty { throw ValidationError("--exec needs a program") }
        if keepOpen && !listen { throw ValidationError("-k keeps a listener open: it needs -l") }
        if udp && (exec != nil || shExec != nil) { throw ValidationError("--exec and --sh-exec need a stream: not with -u") }
        if udp && unixSocket { throw ValidationError("-u with -U (Unix datagrams) is not supported") }
        if udp && keepOpen { throw ValidationError("-k is for stream listeners: not with -u") }
        for (name, value) in [("--wait", wait), ("--idle-timeout", idleTimeout)] {
            if let value, let problem = OptionBounds.seconds(name, value, in: 0.001...OptionBounds.longestSeconds) {
                throw ValidationError(problem)
            }
        }
        if !ssl && (sslTrustfile != nil || sslCert != nil || sslKey != nil || sslServername != nil || sslAlpn != nil || sslInsecure) {
            throw ValidationError("the --ssl-* options need --ssl")
        }
        if ssl && (udp || unixSocket) { throw ValidationError("--ssl is TLS over TCP: not with -u or -U") }
        if ssl && listen && (sslCert == nil || sslKey == nil) { throw ValidationError("--ssl -l needs --ssl-cert and --ssl-key") }
        if ssl && !listen && (sslCert != nil || sslKey != nil) { throw ValidationError("--ssl-cert and --ssl-key are for -l") }
        for server in dns {
            do { _ = try ResolverOptions.server(parsing: server) } catch { throw ValidationError("invalid --dns \"\(server)\": \(error)") }
        }
    }

    func run() throws {
        // The loops ignore SIGPIPE (ProcessSettings): a peer gone is EPIPE.
        do {
            switch loop {
            case .libev: try session(on: try Loop())
            case .epoll: try session(on: try EpollLoop())
            }
        } catch {
            writeStandardError("evcat: \(error)\n")
            throw ExitCode(1)
        }
    }

    func session<L: EventLoop>(on loop: L) throws {
        let command = self
        try loop.run { executor in
            let session = Session(command: command, executor: executor)
            try await session.run()
        }
    }

    func unixAddress() throws(EventLoopError) -> SocketAddress {
        let path = address[0]
        return path.hasPrefix("@") ? try .unix(abstract: String(path.dropFirst())) : try .unix(path: path)
    }

    /// The program and arguments of --exec or --sh-exec, if either.
    var program: [String]? {
        if let exec { return exec.split(separator: " ").map(String.init) }
        if let shExec { return ["/bin/sh", "-c", shExec] }
        return nil
    }

    /// The TLS context of --ssl, if given.
    func tlsContext() throws -> TLSContext? {
        guard ssl else { return nil }
        let protocols = sslAlpn.map { $0.split(separator: ",").map(String.init) } ?? []
        if listen {
            return try TLSContext(.server(certificateChain: sslCert!, privateKey: sslKey!, applicationProtocols: protocols))
        }
        let timeout = wait.map { Duration.seconds($0) } ?? .seconds(10)
        return try TLSContext(.client(caFile: sslTrustfile, verifiesPeer: !sslInsecure, applicationProtocols: protocols,
                                      handshakeTimeout: timeout))
    }

    var resolverOptions: ResolverOptions {
        var options = ResolverOptions()
        if !dns.isEmpty { options.servers = dns.compactMap { try? ResolverOptions.server(parsing: $0) } }
        return options
    }
}

/// One run of evcat on its loop.
struct Session<Executor: EventLoopExecutor>: Sendable {
    let command: Evcat
    let executor: Executor

    func run() async throws {
        if command.udp {
            try await command.listen ? udpListen() : udpConnect()
        } else if command.listen {
            try await streamListen()
        } else {
            let socket = try await connect()
            if let tls = try command.tlsContext() {
                let name = command.sslServername ?? command.address[0]
                try await serve(try await TLSSocket.client(over: socket, serverName: name, port: UInt16(command.address[1]), context: tls))
            } else {
                try await serve(socket)
            }
        }
    }

    // MARK: streams

    func connect() async throws -> AsyncSocket {
        let timeout = command.wait.map { Duration.seconds($0) }
        if command.unixSocket {
            return try await AsyncSocket.connect(to: try command.unixAddress(), on: executor, timeout: timeout)
        }
        let resolver = try NameResolver(on: executor.runningLoop, options: command.resolverOptions)
        defer { resolver.close() }
        return try await AsyncSocket.connect(toHost: command.address[0], port: UInt16(command.address[1])!, using: resolver,
                                             attemptTimeout: timeout)
    }

    func listenAddress() async throws -> SocketAddress {
        if command.unixSocket { return try command.unixAddress() }
        let port = UInt16(command.address.last!)!
        guard command.address.count == 2 else { return try SocketAddress(ipv4: "0.0.0.0", port: port) }
        let resolver = try NameResolver(on: executor.runningLoop, options: command.resolverOptions)
        defer { resolver.close() }
        let addresses = try await resolver.resolve(command.address[0], port: port)
        return addresses.first { $0.family == .ipv4 } ?? addresses[0]
    }

    /// An accepted connection, with the TLS handshake of --ssl made.
    func secured(_ connection: AsyncSocket, _ tls: TLSContext?) async throws -> any PeerStream {
        guard let tls else { return connection }
        return try await TLSSocket.server(over: connection, context: tls)
    }

    func streamListen() async throws {
        let tls = try command.tlsContext()
        let listener = try AsyncListener(on: try await listenAddress(), loop: executor)
        defer { listener.close() }
        guard command.keepOpen else {
            let connection = try await listener.accept()
            listener.close()
            return try await serve(try await secured(connection, tls))
        }
        // -k: each connection at once; without --exec, what they send goes
        // to stdout through one writer.
        let (output, sink) = AsyncStream.makeStream(of: [UInt8].self, bufferingPolicy: .bufferingOldest(64))
        try await withThrowingTaskGroup(of: Void.self) { group in
            if command.program == nil {
                group.addTask {
                    let stdout = try AsyncPipe.standardOutput(on: executor)
                    defer { stdout.close() }
                    for await bytes in output { try await stdout.write(bytes) }
                }
            }
            while true {
                let accepted = try await listener.accept()
                group.addTask {
                    // A client that fails its handshake ends its own connection, not the listener.
                    guard let connection = try? await secured(accepted, tls) else { return }
                    if let program = command.program {
                        try? await runProgram(program, on: connection)
                    } else {
                        defer { connection.close() }
                        while case let bytes = try await connection.read(maximum: AsyncSocket.defaultReadSize), !bytes.isEmpty {
                            // Back pressure: wait while the writer is behind.
                            while case .dropped = sink.yield(bytes) { try await executor.sleep(for: .milliseconds(1)) }
                        }
                    }
                }
            }
        }
    }

    /// A connection's session: the program of --exec, or stdin and stdout.
    func serve(_ connection: any PeerStream) async throws {
        if let program = command.program {
            try await runProgram(program, on: connection)
        } else {
            try await relay(connection)
        }
    }

    /// Runs `program` with the connection as its stdin and stdout (ncat's
    /// way: the socket itself, no copying), and waits for it.
    func runProgram(_ program: [String], on peer: any PeerStream) async throws {
        guard let connection = peer as? AsyncSocket else {
            return try await runProgramRelayed(program, on: peer)
        }
        let socket = connection.descriptor.descriptor.rawValue
        // The child shares the socket's open file: it must block, as a
        // program's stdin does; this process closes its own copy at once.
        _ = fcntl(socket, F_SETFL, fcntl(socket, F_GETFL) & ~O_NONBLOCK)
        let child = try ChildProcess.spawn(program[0], Array(program.dropFirst()),
                                           standardInput: .descriptor(connection.descriptor.descriptor),
                                           standardOutput: .descriptor(connection.descriptor.descriptor),
                                           on: executor.runningLoop)
        connection.close()
        let status = try await child.exitStatus()
        if status != .exited(code: 0) { writeStandardError("evcat: \(program[0]) \(status)\n") }
    }

    /// Runs `program` with its stdin and stdout streams relayed to and from
    /// the peer: for TLS, whose bytes the program cannot read off the socket.
    func runProgramRelayed(_ program: [String], on connection: any PeerStream) async throws {
        defer { connection.close() }
        let child = try ChildProcess.spawn(program[0], Array(program.dropFirst()), standardInput: .stream,
                                           standardOutput: .stream, on: executor.runningLoop)
        defer { child.closeStreams() }
        let toChild = child.standardInput!, fromChild = child.standardOutput!
        // Over when the program's output ends (it exited, as a rule): the
        // peer's side is then cut, as ncat does.
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                while case let bytes = try await connection.read(maximum: 128 * 1024), !bytes.isEmpty { try await toChild.write(bytes) }
                try? toChild.shutdownWrite()
                return false
            }
            group.addTask {
                while case let bytes = try await fromChild.read(maximum: 128 * 1024), !bytes.isEmpty { try await connection.write(bytes) }
                try? await connection.endWriting()
                return true
            }
            while let outputEnded = try await group.next() {
                if outputEnded { break }
            }
            group.cancelAll()
        }
        let status = try await child.exitStatus()
        if status != .exited(code: 0) { writeStandardError("evcat: \(program[0]) \(status)\n") }
    }

    /// stdin to the connection (then its sending side shut down), the
    /// connection to stdout; over when the peer closes.
    func relay(_ connection: any PeerStream) async throws {
        defer { connection.close() }
        let activity = Activity()
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask { // stdin to the peer
                let stdin = try AsyncPipe.standardInput(on: executor)
                defer { stdin.close() }
                while case let bytes = try await stdin.read(maximum: 128 * 1024), !bytes.isEmpty {
                    activity.note()
                    try await connection.write(bytes)
                }
                try? await connection.endWriting()
                return false
            }
            group.addTask { // the peer to stdout
                let stdout = try AsyncPipe.standardOutput(on: executor)
                defer { stdout.close() }
                while case let bytes = try await connection.read(maximum: 128 * 1024), !bytes.isEmpty {
                    activity.note()
                    try await stdout.write(bytes)
                }
                return true
            }
            if let idle = command.idleTimeout {
                group.addTask {
                    try await activity.watch(idle: idle, on: executor)
                    return true
                }
            }
            while let peerClosed = try await group.next() {
                if peerClosed { break }
            }
            group.cancelAll()
        }
    }

    // MARK: datagrams

    func udpConnect() async throws {
        let resolver = try NameResolver(on: executor.runningLoop, options: command.resolverOptions)
        let addresses: [SocketAddress]
        do {
            defer { resolver.close() }
            addresses = try await resolver.resolve(command.address[0], port: UInt16(command.address[1])!)
        }
        let peer = addresses.first { $0.family == .ipv4 } ?? addresses[0]
        let socket = try DatagramSocket(bindingTo: nil, connectingTo: peer, loop: executor)
        defer { socket.close() }
        let activity = Activity()
        let linger = command.wait ?? 2
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { // each read of stdin, a datagram
                let stdin = try AsyncPipe.standardInput(on: executor)
                defer { stdin.close() }
                while case let bytes = try await stdin.read(maximum: 65507), !bytes.isEmpty {
                    activity.note()
                    try await socket.send(bytes)
                }
                // Replies may still come: until the network is quiet for --wait.
                try? await activity.watch(idle: linger, on: executor)
            }
            group.addTask { try await receive(from: socket, activity: activity, replyingTo: nil) }
            if let idle = command.idleTimeout {
                group.addTask { try await activity.watch(idle: idle, on: executor) }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    func udpListen() async throws {
        let socket = try DatagramSocket(bindingTo: try await listenAddress(), loop: executor)
        defer { socket.close() }
        let activity = Activity()
        let sender = LockedValue<SocketAddress?>(nil)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { // stdin to the last sender
                let stdin = try AsyncPipe.standardInput(on: executor)
                defer { stdin.close() }
                while case let bytes = try await stdin.read(maximum: 65507), !bytes.isEmpty {
                    activity.note()
                    if let peer = sender.withLock({ $0 }) { try await socket.send(bytes, to: peer) }
                }
                try await Task.sleepForever(on: executor)
            }
            group.addTask { try await receive(from: socket, activity: activity, replyingTo: sender) }
            if let idle = command.idleTimeout {
                group.addTask { try await activity.watch(idle: idle, on: executor) }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    /// Datagrams to stdout, each whole; a truncated one is said on stderr.
    func receive(from socket: DatagramSocket, activity: Activity, replyingTo sender: LockedValue<SocketAddress?>?) async throws {
        let stdout = try AsyncPipe.standardOutput(on: executor)
        defer { stdout.close() }
        while true {
            let datagram = try await socket.receive(maximumSize: 65536)
            activity.note()
            sender?.withLock { $0 = datagram.address }
            if datagram.isTruncated { writeStandardError("evcat: a datagram of \(datagram.size) bytes was cut to \(datagram.bytes.count)\n") }
            try await stdout.write(datagram.bytes)
        }
    }
}

/// A connection evcat relays: a TCP or Unix socket, or TLS over one.
protocol PeerStream: AnyObject, Sendable {
    func read(maximum: Int) async throws -> [UInt8]
    func write(_ bytes: [UInt8]) async throws
    /// Ends the sending side: a shutdown, or TLS's close_notify.
    func endWriting() async throws
    func close()
}

extension AsyncSocket: PeerStream {
    func endWriting() async throws { try shutdownWrite() }
}

extension TLSSocket: PeerStream {
    func endWriting() async throws { try await shutdownWrite() }
}

/// When data last moved, for the idle timeout.
final class Activity: Sendable {
    private let last = LockedValue(monotonicNow())

    func note() { last.withLock { $0 = monotonicNow() } }

    /// Throws once nothing has moved for `idle` seconds: the idle timeout's
    /// failure (UDP's wait for replies after stdin ends ignores it).
    func watch(idle: Double, on executor: some EventLoopExecutor) async throws {
        while true {
            let quiet = monotonicNow() - last.withLock { $0 }
            if quiet >= idle { throw NetworkFailure(description: "idle for \(idle) s: no data either way") }
            try await executor.sleep(for: .seconds(idle - quiet))
        }
    }
}

extension Task where Success == Never, Failure == Never {
    /// Waits until cancelled.
    static func sleepForever(on executor: some EventLoopExecutor) async throws {
        while true { try await executor.sleep(for: .seconds(3600)) }
    }
}

Evcat.main()
