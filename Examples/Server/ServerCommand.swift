// server: the slow poetry server on every engine (and, with `http`, an HTTP server).
//
//     swift run server poetry                          # the classic: blocking, one client at a time
//     swift run server poetry --engine async --port 10000 --delay 0.2 --num-bytes 50
//     swift run server poetry --poem fifty-bytes
//     swift run server poetry path/to/poem.txt
//
// See Examples/Server/README.md.
import ArgumentParser
import Engines
import EventCore
import EventLoopServices
import Foundation
import Glibc
import HTTP
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import SlowPoetry
import Web
import TLS

@main
struct ServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server",
        abstract: "Servers for the package's examples.",
        subcommands: [PoetryServerCommand.self, HTTPServerCommand.self])

    /// ArgumentParser's main, after blocking SIGINT and SIGTERM before any
    /// thread starts, so that every thread inherits the block: both
    /// servers' ServiceGroup reads them through Dispatch's signal sources (a
    /// signalfd on Linux, which sees a signal only while no thread takes
    /// it with the default action - death).
    static func main() async {
        blockStopSignals()
        do {
            var command = try parseAsRoot()
            if var asynchronous = command as? any AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

extension Engine: ExpressibleByArgument {}
extension Logger.Level: @retroactive ExpressibleByArgument {}

struct PoetryServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "poetry",
        abstract: "A slow poetry server: sends the next N bytes, sleeps, repeats, closes at the end.")

    @Option(help: "How to serve: \(Engine.list(Engine.allCases)). blocking serves one client at a time, as the classic does.")
    var engine: Engine = .blocking

    @Option(help: "The port to listen on (0, the default: any free port).")
    var port: Int = 0

    @Option(help: "The interface to listen on.")
    var iface: String = "localhost"

    @Option(help: "Seconds between chunks.")
    var delay: Double = 0.7

    @Option(name: .customLong("num-bytes"), help: "Bytes per chunk.")
    var numBytes: Int = 10

    @Option(help: "A built-in poem: \(Poem.builtIn.map(\.name).joined(separator: ", ")) (when no FILE is given).")
    var poem: String = Poem.builtIn[0].name

    @Argument(help: "A text file to serve instead of a built-in poem.")
    var file: String?

    @Option(name: .customLong("stop-timeout"),
            help: "Seconds SIGTERM or SIGINT lets the clients being served finish their poem; a second signal stops at once.")
    var stopTimeout: Double = 10

    @Option(name: .customLong("log-level"), help: "The least severe message logged: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        let problems = [
            OptionBounds.count("--port", port, in: 0...65535),
            OptionBounds.seconds("--delay", delay, in: 0...OptionBounds.longestSeconds),
            OptionBounds.count("--num-bytes", numBytes, in: 1...(16 << 20)),
            OptionBounds.seconds("--stop-timeout", stopTimeout, in: 0...86_400),
        ]
        if let problem = problems.compactMap({ $0 }).first { throw ValidationError(problem) }
        if file == nil && Poem.named(poem) == nil {
            throw ValidationError("unknown poem \"\(poem)\"; the built-in poems are \(Poem.builtIn.map(\.name).joined(separator: ", "))")
        }
        if let file, !FileManager.default.isReadableFile(atPath: file) {
            throw ValidationError("cannot read the poem file \"\(file)\"")
        }
        do { _ = try SocketAddress(host: iface, port: UInt16(port)) } catch { throw ValidationError("invalid --iface \"\(iface)\": \(error)") }
    }

    func run() async throws {
        ignoreSIGPIPE()
        raiseDescriptorLimit()
        var logger = Logger(label: "server", factory: { StreamLogHandler.standardError(label: $0) })
        logger.logLevel = logLevel
        let bytes: [UInt8]
        let name: String
        if let file {
            bytes = Array(try Data(contentsOf: URL(fileURLWithPath: file)))
            name = file
        } else {
            bytes = Poem.named(poem)!.bytes
            name = poem
        }
        let options = PoetryServerOptions(
            poem: bytes, chunkSize: numBytes, delay: .seconds(delay),
            address: try SocketAddress(host: iface, port: UInt16(port)),
            log: { [logger] line in logger.warning("\(line)") })
        let server = try PoetryServer(engine: engine, options: options)
        // SIGTERM and SIGINT: no new client, the poems in flight end (within
        // --stop-timeout); a second one stops at once.
        let group = ServiceGroup(
            services: [LoopGroupService(server, shutdownTimeout: .seconds(stopTimeout), logger: logger),
                       Announcement(text: "Serving \(name) on port \(server.address.port).")],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
    }
}

struct HTTPServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "http",
        abstract: "An HTTP/1.1 server: /plaintext, and a generated site of --pages pages for the crawler.")

    @Option(help: "How to serve: \(Engine.list(HTTPServer.engines)).")
    var engine: Engine = .libev

    @Option(help: "The port to listen on (0: any free port).")
    var port: Int = 8080

    @Option(help: "The interface to listen on.")
    var iface: String = "127.0.0.1"

    @Option(help: "Loops on threads of their own, one listening socket each (SO_REUSEPORT): one per core.")
    var workers: Int = 1

    @Option(help: "Pages of the generated site.")
    var pages: Int = 1000

    @Option(name: .customLong("max-uri"), help: "Longest request target, in bytes (414 above).")
    var maxURI: Int = HTTPLimits().maxURIBytes

    @Option(name: .customLong("max-header-bytes"), help: "Largest request head, in bytes (431 above).")
    var maxHeaderBytes: Int = HTTPLimits().maxHeaderBytes

    @Option(name: .customLong("max-headers"), help: "Most header fields in a request (431 above).")
    var maxHeaders: Int = HTTPLimits().maxHeaderCount

    @Option(name: .customLong("max-body"), help: "Largest request body, in bytes (413 above).")
    var maxBody: Int = HTTPLimits().maxBodyBytes

    @Option(name: .customLong("header-timeout"), help: "Seconds for a request's head to arrive (408 after).")
    var headerTimeout: Double = HTTPServerLimits().headerTimeout.inSeconds

    @Option(name: .customLong("idle-timeout"), help: "Seconds a connection may do nothing before it is closed.")
    var idleTimeout: Double = HTTPServerLimits().idleTimeout.inSeconds

    @Option(name: .customLong("max-connections"), help: "Connections at once, per worker (accepting pauses at the limit).")
    var maxConnections: Int = HTTPServerLimits().maxConnections

    @Option(name: .customLong("high-water"), help: "Unsent bytes per connection above which its requests wait.")
    var highWater: Int = HTTPServerLimits().outputHighWater

    @Option(help: "Write what the server counted to this file (JSON) when it stops.")
    var stats: String?

    @Option(name: .customLong("stop-timeout"), help: "Seconds a graceful stop waits for the responses in flight (a second SIGTERM or SIGINT stops at once).")
    var stopTimeout: Double = HTTPServerOptions.defaultStopTimeout.inSeconds

    @Option(name: .customLong("tls-cert"), help: "Serve HTTPS with this certificate chain (PEM; with --tls-key; the evented engines).")
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: "The private key of --tls-cert (PEM).")
    var tlsKey: String?

    @Option(name: .customLong("metrics-port"), help: "Serve GET /metrics (Prometheus's text format) on this port of --iface: each loop's monitor, the answers by status and the request latencies (the evented engines; 0: any free port).")
    var metricsPort: Int?

    @Option(name: .customLong("metrics-interval"), help: "Seconds between two updates of the metrics.")
    var metricsInterval: Double = 1

    @Option(name: .customLong("slow-callback"), help: "With --metrics-port: log a callback or task step that holds a loop longer than this many seconds (at warning).")
    var slowCallback: Double = 0.1

    @Option(name: .customLong("log-level"), help: "The least level logged to standard error: trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        if (tlsCert == nil) != (tlsKey == nil) { throw ValidationError("--tls-cert and --tls-key go together") }
        if metricsPort != nil && engine.loop == nil {
            throw ValidationError("--metrics-port reports the loops of the evented engines: --engine libev, epoll, async or async-epoll")
        }
        if tlsCert != nil && engine.loop == nil {
            throw ValidationError("HTTPS (--tls-cert) is served by the evented engines: --engine libev, epoll, async or async-epoll")
        }
        guard HTTPServer.engines.contains(engine) else {
            throw ValidationError("the HTTP server has no \(engine) engine; --engine takes \(Engine.list(HTTPServer.engines))")
        }
        let problems = [
            OptionBounds.count("--port", port, in: 0...65535),
            OptionBounds.count("--workers", workers, in: 1...256),
            OptionBounds.count("--pages", pages, in: 1...1_000_000),
            OptionBounds.count("--max-uri", maxURI, in: 1...(1 << 20)),
            OptionBounds.count("--max-header-bytes", maxHeaderBytes, in: 1...(16 << 20)),
            OptionBounds.count("--max-headers", maxHeaders, in: 1...100_000),
            OptionBounds.count("--max-body", maxBody, in: 1...OptionBounds.mostBytes),
            OptionBounds.count("--max-connections", maxConnections, in: 1...1_000_000),
            OptionBounds.count("--high-water", highWater, in: 1...OptionBounds.mostBytes),
            OptionBounds.seconds("--header-timeout", headerTimeout, in: 0.001...OptionBounds.longestSeconds),
            OptionBounds.seconds("--idle-timeout", idleTimeout, in: 0.001...OptionBounds.longestSeconds),
            OptionBounds.seconds("--stop-timeout", stopTimeout, in: 0...86_400),
            metricsPort.flatMap { OptionBounds.count("--metrics-port", $0, in: 0...65535) },
            OptionBounds.seconds("--metrics-interval", metricsInterval, in: 0.01...86_400),
            OptionBounds.seconds("--slow-callback", slowCallback, in: 0.000_001...OptionBounds.longestSeconds),
        ]
        if let problem = problems.compactMap({ $0 }).first { throw ValidationError(problem) }
        do { _ = try SocketAddress(host: iface, port: UInt16(port)) } catch { throw ValidationError("invalid --iface \"\(iface)\": \(error)") }
    }

    func run() async throws {
        ignoreSIGPIPE()
        raiseDescriptorLimit()
        var logger = Logger(label: "server", factory: { StreamLogHandler.standardError(label: $0) })
        logger.logLevel = logLevel
        var options = HTTPServerOptions(
            address: try SocketAddress(host: iface, port: UInt16(port)), site: HTTPSite(pages: pages),
            log: { [logger] line in logger.warning("\(line)") })
        options.workers = workers
        options.limits.parser = HTTPLimits(maxURIBytes: maxURI, maxHeaderBytes: maxHeaderBytes,
                                           maxHeaderCount: maxHeaders, maxBodyBytes: maxBody)
        options.limits.headerTimeout = .seconds(headerTimeout)
        options.limits.idleTimeout = .seconds(idleTimeout)
        options.limits.maxConnections = maxConnections
        options.limits.outputHighWater = highWater
        options.stopTimeout = .seconds(stopTimeout)
        if let tlsCert, let tlsKey {
            do {
                // The handshake has the header timeout (as nginx's client_header_timeout covered it).
                options.tls = try TLSContext(.server(certificateChain: tlsCert, privateKey: tlsKey,
                                                     handshakeTimeout: .seconds(headerTimeout)))
            } catch {
                logger.critical("\(error)")
                throw ExitCode(1)
            }
        }
        // /metrics: swift-metrics reports to a Prometheus registry the endpoint serves.
        var registry: PrometheusCollectorRegistry?
        if metricsPort != nil {
            let prometheus = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: prometheus))
            registry = prometheus
            options.metricsInterval = .seconds(metricsInterval)
            options.loopMonitor = .logging(to: logger, slowCallbackThreshold: .seconds(slowCallback))
        }
        let server = try HTTPServer(engine: engine, options: options)
        let endpoint = try registry.map { try MetricsEndpoint(on: SocketAddress(host: iface, port: UInt16(metricsPort!)), registry: $0) }
        var banner = "Serving HTTP\(tlsCert == nil ? "" : "S") (\(engine.rawValue), \(workers) worker\(workers == 1 ? "" : "s")) on http\(tlsCert == nil ? "" : "s")://\(server.address.host):\(server.address.port)/"
        if let endpoint { banner += "\nMetrics on http://\(endpoint.address.host):\(endpoint.address.port)/metrics" }
        // SIGTERM and SIGINT shut down gracefully (a second one stops at
        // once); the services stop in the reverse order of this list.
        var services: [any Service] = [LoopGroupService(server, shutdownTimeout: options.stopTimeout + .seconds(1), logger: logger)]
        if let endpoint { services.append(LoopGroupService(endpoint.group, forcefulSignals: [], logger: logger)) }
        services.append(Announcement(text: banner))
        let group = ServiceGroup(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
        let counts = server.stop() // the figures of the stop the service made
        if let stats { try counts.json.write(toFile: stats, atomically: true, encoding: .utf8) }
    }
}

/// Prints the banner once the `ServiceGroup` traps the stop signals (a
/// SIGTERM right after it is a graceful stop, not the default death), then
/// waits for the shutdown.
struct Announcement: Service {
    let text: String

    func run() async throws {
        print(text)
        fflush(nil)
        try? await gracefulShutdown()
    }
}

/// Blocks SIGINT and SIGTERM in every thread (call it before starting any),
/// for the ServiceGroup's signal sources.
@discardableResult
func blockStopSignals() -> sigset_t {
    var stopSignals = sigset_t()
    sigemptyset(&stopSignals)
    sigaddset(&stopSignals, SIGINT)
    sigaddset(&stopSignals, SIGTERM)
    pthread_sigmask(SIG_BLOCK, &stopSignals, nil)
    return stopSignals
}

/// Raises the soft limit on open descriptors to the hard one, as Go's
/// runtime does: a server of thousands of clients needs a descriptor each.
func raiseDescriptorLimit() {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
    limit.rlim_cur = limit.rlim_max
    setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
}

