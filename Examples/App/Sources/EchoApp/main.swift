// echo-app: a line echo server on libev, with a timeout per client.
//
//   echo-app [--port N] [--idle-timeout SECONDS]   serve until SIGINT or SIGTERM
//   echo-app --self-test                            serve on a free port, check it with clients of its own, exit
//
// Every line a client sends comes back; a client silent for the idle
// timeout is told `bye: idle` and closed; a line over 4 KiB is an error that
// names the limit. One thread, one loop: the listener, the clients and the
// signals are tasks on the loop's executor.
import EV
import EventCore
import Glibc

/// What the command line asks for.
struct Options {
    var port: UInt16 = 7000
    var idleTimeout = Duration.seconds(10)
    var selfTest = false

    init(_ arguments: [String]) throws(UsageError) {
        var words = arguments[...]
        while let word = words.popFirst() {
            switch word {
            case "--port":
                guard let value = words.popFirst(), let port = UInt16(value) else { throw UsageError("--port needs a port number, 0-65535") }
                self.port = port
            case "--idle-timeout":
                guard let value = words.popFirst(), let seconds = Double(value), seconds > 0, seconds.isFinite else {
                    throw UsageError("--idle-timeout needs a positive number of seconds")
                }
                idleTimeout = .seconds(seconds)
            case "--self-test":
                selfTest = true
            default:
                throw UsageError("unknown argument '\(word)'")
            }
        }
    }
}

/// A command line the app cannot take.
struct UsageError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The longest line echoed.
let maximumLineBytes = 4096

/// Why a client's connection ended.
enum Ending: String, Sendable {
    case closed, idle, lineTooLong = "line too long", failed
}

/// Echoes `socket`'s lines until the client closes, stays silent for
/// `idleTimeout` or sends a line over the limit.
nonisolated(nonsending) func serve(_ socket: AsyncSocket, idleTimeout: Duration) async -> Ending {
    defer { socket.close() }
    // Lines through the package's bounded reader: at most one line's bytes
    // buffered, and a line over the limit is an error, not memory.
    let reader = BufferedReader(socket, capacity: maximumLineBytes + 1)
    let newline = [UInt8(ascii: "\n")]
    do {
        while true {
            let line: [UInt8]?
            do {
                line = try await withTimeout(idleTimeout) { try await reader.read(until: newline, maxLength: maximumLineBytes) }
            } catch let error as EventLoopError where error.code == .timedOut {
                try? await withTimeout(.seconds(1)) { try await socket.write("bye: idle for \(idleTimeout)\n") }
                return .idle
            } catch let error as EventLoopError where error.code == .system(.messageTooLong) {
                try? await withTimeout(.seconds(1)) { try await socket.write("error: a line is longer than \(maximumLineBytes) bytes\n") }
                // So that the client reads the answer: closing with its unread
                // bytes queued would reset the connection (nginx's lingering close).
                await socket.closeLingering(timeout: .seconds(1))
                return .lineTooLong
            } catch let error as EventLoopError where error.code == .endOfStream {
                return .closed // a last line the client did not end
            }
            guard let line else { return .closed }
            try await withTimeout(idleTimeout) { try await socket.write(line) }
        }
    } catch {
        return .failed
    }
}

/// Accepts clients until cancelled, each served by a task of its own on the
/// loop; closes the listener then.
nonisolated(nonsending) func acceptClients(_ listener: AsyncListener, on executor: LoopExecutor, idleTimeout: Duration,
                                           ended: @escaping @Sendable (Ending) -> Void) async {
    defer { listener.close() }
    while !Task.isCancelled {
        do {
            let client = try await listener.acceptBackingOff { error in print("echo-app: \(error)") }
            Task(executorPreference: executor) {
                ended(await serve(client, idleTimeout: idleTimeout))
            }
        } catch {
            return // cancelled
        }
    }
}

/// Serves until SIGINT or SIGTERM.
func runServer(_ options: Options) throws {
    let loop = try Loop()
    try loop.run { executor in
        let listener = try AsyncListener(on: SocketAddress(parsing: "127.0.0.1:\(options.port)"), loop: executor)
        print("echo-app: listening on \(listener.localAddress), idle timeout \(options.idleTimeout)")
        let served = LoopBoundBox(0, loop: executor)
        let accepting = Task(executorPreference: executor) {
            await acceptClients(listener, on: executor, idleTimeout: options.idleTimeout) { ending in
                served.value += 1
                print("echo-app: a client left (\(ending.rawValue))")
            }
        }
        let signal = try await withThrowingTaskGroup(of: Int32.self) { group in
            for signal in [SIGINT, SIGTERM] {
                group.addTask(executorPreference: executor) {
                    try await executor.signal(signal)
                    return signal
                }
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
        accepting.cancel()
        print("echo-app: signal \(signal), stopping after \(served.value) clients")
    }
}

/// Starts the server on a free port and checks it with clients of its own,
/// all on one loop: echoes, an idle client dropped, a long line refused.
func runSelfTest() throws -> Bool {
    let loop = try Loop()
    let idleTimeout = Duration.milliseconds(300)
    return try loop.run { executor in
        let listener = try AsyncListener(on: SocketAddress(parsing: "127.0.0.1:0"), loop: executor)
        let address = listener.localAddress
        let endings = LoopBoundBox([Ending](), loop: executor)
        let accepting = Task(executorPreference: executor) {
            await acceptClients(listener, on: executor, idleTimeout: idleTimeout) { endings.value.append($0) }
        }
        defer { accepting.cancel() }
        var passed = true
        func check(_ condition: Bool, _ what: String) {
            print("\(condition ? "ok" : "FAILED"): \(what)")
            passed = passed && condition
        }
        // Ten clients at once, each its lines back in order.
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for client in 0..<10 {
                group.addTask(executorPreference: executor) {
                    let socket = try await AsyncSocket.connect(to: address, on: executor, timeout: .seconds(5))
                    defer { socket.close() }
                    let lines = (0..<20).map { "client \(client) line \($0)\n" }.joined()
                    try await socket.write(lines)
                    try socket.shutdownWrite()
                    let echoed = try await withTimeout(.seconds(5)) { try await socket.readToEnd(limit: 1 << 20) }
                    return String(decoding: echoed, as: UTF8.self) == lines
                }
            }
            var all = true
            for try await echoed in group { all = all && echoed }
            check(all, "10 clients at once get their 20 lines back, in order")
        }
        // A silent client is told why, and closed.
        let silent = try await AsyncSocket.connect(to: address, on: executor, timeout: .seconds(5))
        let start = ContinuousClock.now
        let bye = try await withTimeout(.seconds(5)) { try await silent.readToEnd(limit: 1024) }
        silent.close()
        let waited = start.duration(to: .now)
        check(String(decoding: bye, as: UTF8.self) == "bye: idle for \(idleTimeout)\n" && waited >= idleTimeout * 0.9 && waited < .seconds(3),
              "a silent client is dropped after the idle timeout (\(Int(waited / .milliseconds(1))) ms)")
        // A line over the limit is refused, naming the limit.
        let long = try await AsyncSocket.connect(to: address, on: executor, timeout: .seconds(5))
        try await long.write([UInt8](repeating: UInt8(ascii: "x"), count: maximumLineBytes * 3))
        let refusal = try await withTimeout(.seconds(5)) { try await long.readToEnd(limit: 1024) }
        long.close()
        check(String(decoding: refusal, as: UTF8.self) == "error: a line is longer than \(maximumLineBytes) bytes\n",
              "a line over \(maximumLineBytes) bytes is refused")
        try await executor.sleep(for: .milliseconds(50))
        let counted = endings.value
        check(counted.filter { $0 == .closed }.count == 10 && counted.contains(.idle) && counted.contains(.lineTooLong),
              "the server saw every ending: \(counted.map(\.rawValue))")
        return passed
    }
}

/// Writes `message` and a newline to standard error (Glibc's `stderr` is a
/// global variable, which strict concurrency checking rightly refuses).
func printError(_ message: String) {
    var line = message + "\n"
    line.withUTF8 { bytes in _ = write(STDERR_FILENO, bytes.baseAddress, bytes.count) }
}

do {
    let options = try Options(Array(CommandLine.arguments.dropFirst()))
    if options.selfTest {
        let passed = try runSelfTest()
        print(passed ? "self-test passed" : "self-test FAILED")
        exit(passed ? 0 : 1)
    }
    try runServer(options)
} catch let error as UsageError {
    printError("echo-app: \(error)\nusage: echo-app [--port N] [--idle-timeout SECONDS] | --self-test")
    exit(64)
} catch {
    printError("echo-app: \(error)")
    exit(1)
}
