// echo-service: a line echo server on a group of libev loops, run the Swift
// server ecosystem's way. ServiceLifecycle's ServiceGroup runs the loops
// (EventLoopServices' LoopGroupService) and stops them on SIGTERM or SIGINT:
// the listeners close, the clients then connected are served to their end,
// a second signal stops at once. swift-log takes the messages (the loops'
// slow callbacks among them), swift-metrics the loops' numbers.
import EV
import EventCore
import EventLoopServices
import Glibc
import Logging
import Metrics
import MetricsTestKit
import ServiceLifecycle

struct Options {
    var port: UInt16 = 7000
    var loops = 2
    var logLevel = Logger.Level.info
    var selfTest = false

    init(_ arguments: [String]) throws(UsageError) {
        var words = arguments[...]
        while let word = words.popFirst() {
            switch word {
            case "--port":
                guard let value = words.popFirst(), let port = UInt16(value) else { throw UsageError("--port needs a port number, 0-65535") }
                self.port = port
            case "--loops":
                guard let value = words.popFirst(), let loops = Int(value), (1...256).contains(loops) else {
                    throw UsageError("--loops needs a number of loops, 1-256")
                }
                self.loops = loops
            case "--log-level":
                guard let value = words.popFirst(), let level = Logger.Level(rawValue: value) else {
                    throw UsageError("--log-level needs one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                logLevel = level
            case "--self-test":
                selfTest = true
            default:
                throw UsageError("unknown argument '\(word)'")
            }
        }
    }
}

struct UsageError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Echoes each line back until the client closes (or sends a line over 4 KiB).
nonisolated(nonsending) func echo(_ socket: AsyncSocket) async {
    defer { socket.close() }
    let reader = BufferedReader(socket, capacity: 4097)
    do {
        while let line = try await reader.read(until: [UInt8(ascii: "\n")], maxLength: 4096) {
            try await socket.write(line)
        }
    } catch {}
}

/// One listener per loop of `group` on one port (`SO_REUSEPORT`), each
/// accepting on its loop's executor. When the group shuts down gracefully
/// each loop stops accepting; the clients it has are served to their end,
/// which is what the loop then runs down with.
struct EchoServer {
    let address: SocketAddress

    init(on group: EventLoopGroup<Loop>, port: UInt16, logger: Logger) throws {
        let listeners = try group.listeners(on: SocketAddress(parsing: "127.0.0.1:\(port)"))
        address = try listeners[0].localAddress()
        for (executor, descriptor) in zip(group.executors, listeners) {
            let accepting = Task(executorPreference: executor) {
                let listener = AsyncListener(adopting: descriptor, loop: executor)
                defer { listener.close() }
                while let client = try? await listener.acceptBackingOff(log: { logger.warning("accept: \($0)") }) {
                    logger.trace("a client", metadata: ["descriptor": "\(client.descriptor.descriptor.rawValue)"])
                    Task(executorPreference: executor) { await echo(client) }
                }
            }
            group.onGracefulShutdown { loop in
                if loop.executor === executor { accepting.cancel() }
            }
        }
    }
}

@main
struct EchoService {
    static func main() async {
        // ServiceGroup reads SIGTERM and SIGINT through Dispatch's signal
        // sources (a signalfd on Linux): blocked in every thread, before any
        // starts, they wait there instead of killing the process.
        var stopSignals = sigset_t()
        sigemptyset(&stopSignals)
        sigaddset(&stopSignals, SIGINT)
        sigaddset(&stopSignals, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &stopSignals, nil)
        let options: Options
        do {
            options = try Options(Array(CommandLine.arguments.dropFirst()))
        } catch {
            print("echo-service: \(error)\nusage: echo-service [--port N] [--loops N] [--log-level LEVEL] | --self-test")
            exit(2)
        }
        var logger = Logger(label: "echo-service") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = options.logLevel
        do {
            if options.selfTest {
                exit(try await selfTest(logger: logger) ? 0 : 1)
            }
            try await serve(options, logger: logger)
        } catch {
            logger.critical("\(error)")
            exit(1)
        }
    }

    /// Runs until SIGTERM or SIGINT; the loops report to the metrics
    /// backend the app bootstrapped (none here: swift-metrics' no-op) and
    /// log a callback that holds a loop over 100 ms.
    static func serve(_ options: Options, logger: Logger) async throws {
        let group = try EventLoopGroup(loops: options.loops) { try Loop() }
        try LoopMetrics.report(group, options: .logging(to: logger))
        let server = try EchoServer(on: group, port: options.port, logger: logger)
        logger.info("listening", metadata: ["address": "\(server.address)", "loops": "\(options.loops)"])
        let services = ServiceGroup(services: [LoopGroupService(group, logger: logger)],
                                    gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await services.run()
        logger.info("stopped")
    }

    /// The server on a free port, checked by clients on a loop of their own:
    /// echoes, the loops' numbers in swift-metrics, and a real SIGTERM that
    /// closes the listeners while a connected client is still served.
    static func selfTest(logger: Logger) async throws -> Bool {
        var passed = true
        func check(_ condition: Bool, _ what: String) {
            print("\(condition ? "ok" : "FAILED"): \(what)")
            passed = passed && condition
        }
        let metrics = TestMetrics()
        let group = try EventLoopGroup(loops: 2) { try Loop() }
        try LoopMetrics.report(group, interval: .milliseconds(20), options: .logging(to: logger), factory: metrics)
        let server = try EchoServer(on: group, port: 0, logger: logger)
        let services = ServiceGroup(services: [LoopGroupService(group, logger: logger)],
                                    gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        let running = Task { try await services.run() }
        let clients = try EventLoopGroup(loops: 1) { try Loop() }
        let executor = clients.next()
        let address = server.address

        // Ten clients at once, twenty lines each.
        let echoed = try await withThrowingTaskGroup(of: Bool.self) { tasks in
            for client in 0..<10 {
                tasks.addTask(executorPreference: executor) {
                    let socket = try await AsyncSocket.connect(to: address, on: executor, timeout: .seconds(10))
                    defer { socket.close() }
                    let lines = (0..<20).map { "client \(client) line \($0)\n" }.joined()
                    try await socket.write(lines)
                    try socket.shutdownWrite()
                    let back = try await withTimeout(.seconds(10)) { try await socket.readToEnd(limit: 1 << 20) }
                    return String(decoding: back, as: UTF8.self) == lines
                }
            }
            return try await tasks.reduce(true) { $0 && $1 }
        }
        check(echoed, "10 clients at once get their 20 lines back, in order")

        // The loops' numbers reach swift-metrics (a report every 20 ms).
        var turns: [Int64] = [0, 0]
        for _ in 0..<3000 where turns.contains(0) { // up to 30 s: a safety net, not a bound
            turns = ["0", "1"].map { metrics.counterTotal(label: "loop_iterations_total", dimensions: [("loop", $0)]) }
            try await Task.sleep(for: .milliseconds(10))
        }
        check(!turns.contains(0), "each loop's iterations are counted in swift-metrics (\(turns))")

        // A client connected before SIGTERM is served after it, once the listeners are closed.
        let kept = try await Task(executorPreference: executor) {
            let socket = try await AsyncSocket.connect(to: address, on: executor, timeout: .seconds(10))
            defer { socket.close() }
            let reader = BufferedReader(socket, capacity: 4097)
            try await socket.write("before\n")
            let before = try await withTimeout(.seconds(10)) { try await reader.read(until: [UInt8(ascii: "\n")], maxLength: 4096) }
            kill(getpid(), SIGTERM)
            var refused = false
            for _ in 0..<3000 where !refused {
                do {
                    let late = try await AsyncSocket.connect(to: address, on: executor, timeout: .seconds(10))
                    late.close()
                    try await executor.sleep(for: .milliseconds(10))
                } catch {
                    refused = true
                }
            }
            try await socket.write("after\n")
            let after = try await withTimeout(.seconds(10)) { try await reader.read(until: [UInt8(ascii: "\n")], maxLength: 4096) }
            return (before == Array("before\n".utf8), refused, after == Array("after\n".utf8))
        }.value
        check(kept.0, "a client is served before SIGTERM")
        check(kept.1, "SIGTERM closes the listeners: a new connection is refused")
        check(kept.2, "the client connected before SIGTERM is still served after it")
        try await running.value
        check(true, "the ServiceGroup ended once that client left")
        try await clients.shutdownGracefully()
        return passed
    }
}
