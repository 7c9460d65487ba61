import EventCore
import EventLoopTesting
import Glibc
import HTTP
import Testing
import Web

/// The two codes of the evented HTTP engines (libev and epoll run each).
enum HTTPCode: String, CaseIterable, Sendable {
    case callbacks, async

    /// Starts a worker on `loop`; keep the handle while it serves (as the
    /// server's graceful stop does, through its drain).
    func serve(_ loop: TestLoop, _ listener: SocketDescriptor, _ options: HTTPServerOptions) -> WorkerHandle {
        switch self {
        case .callbacks: CallbackWorker<TestLoop>.serve(loop, listener, options) { _ in }
        case .async: serveWithTasks(loop, listener, options) { _ in }
        }
    }
}

/// A testing loop serving the example site (`pages` pages) with `code` on a
/// Unix socket of its own, its limits set by `limits`; keep the worker's
/// handle while it serves (the server keeps it through its drain).
func serveSite(_ code: HTTPCode, pages: Int = 10,
               _ limits: (inout HTTPServerLimits) -> Void = { _ in }) throws -> (TestLoop, SocketAddress, WorkerHandle) {
    let loop = try TestLoop()
    let address = try uniqueAbstractAddress("http")
    let listener = try SocketDescriptor.listening(on: address)
    var options = HTTPServerOptions(address: address, site: HTTPSite(pages: pages))
    limits(&options.limits)
    // Set up on the loop, as the server does it (loop-bound state is checked).
    let worker = loop.runOnLoop { code.serve(loop, listener, options) }
    return (loop, address, worker)
}

/// A client socket of the test's, connected (a Unix socket connects at once).
func connectedClient(_ address: SocketAddress) throws -> SocketDescriptor {
    let socket = try SocketDescriptor.stream(.unix)
    guard case .processed = try socket.connect(to: address) else {
        socket.close()
        throw EventLoopError(.invalidArgument, detail: "the listener's backlog is full")
    }
    return socket
}

func send(_ socket: SocketDescriptor, _ text: String) {
    _ = Array(text.utf8).withUnsafeBytes { try? socket.write($0) }
}

/// What the server has sent so far (without waiting), and whether it has closed.
func received(_ socket: SocketDescriptor) -> (text: String, closed: Bool) {
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let result = buffer.withUnsafeMutableBytes { try? socket.read(into: $0) }
        switch result {
        case .processed(0)?: return (String(decoding: bytes, as: UTF8.self), true)
        case .processed(let count)?: bytes += buffer[..<count]
        case .wouldBlock?: return (String(decoding: bytes, as: UTF8.self), false)
        case nil: return (String(decoding: bytes, as: UTF8.self), true) // a reset
        }
    }
}

/// The HTTP server's timeouts on the loop's clock, to the second: what the
/// end-to-end tests check with real timeouts of one or two seconds and
/// bounds that allow a loaded machine, here exact and at no cost in time.
@Suite("The HTTP server's timeouts on the testing loop")
struct HTTPTimeoutsOnTheTestLoopTests {
    @Test(arguments: HTTPCode.allCases)
    func aSlowHeadGets408AtTheHeaderTimeoutAndASilentClientIsCutAtTheIdleTimeout(_ code: HTTPCode) throws {
        let (loop, address, worker) = try serveSite(code) { limits in limits.headerTimeout = .seconds(10); limits.idleTimeout = .seconds(60) }
        defer { loop.close(); withExtendedLifetime(worker) {} } // the worker's listener closes with its loop

        let slow = try connectedClient(address)
        let silent = try connectedClient(address)
        let served = try connectedClient(address)
        defer { [slow, silent, served].forEach { $0.close() } }
        send(slow, "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: v")
        send(served, "GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n")
        loop.runPending()
        let answer = received(served)
        #expect(answer.text.hasPrefix("HTTP/1.1 200 OK") && answer.text.hasSuffix("Hello, World!") && !answer.closed,
                "\(code): \(answer)")

        // The timeouts are ticked once a second: the head's 10 s run out at the tick of 11 s.
        loop.advance(by: .seconds(10))
        #expect(received(slow) == ("", false), "\(code): 10 s")
        loop.advance(by: .seconds(1))
        let timedOut = received(slow)
        #expect(timedOut.text.hasPrefix("HTTP/1.1 408 Request Timeout"), "\(code): \(timedOut)")
        #expect(timedOut.text.contains("the request head did not arrive within 10 s"), "\(code): \(timedOut)")
        #expect(received(silent) == ("", false) && received(served) == ("", false), "\(code): 11 s")

        // Idle: 60 s since each connection's last progress (all at 0 s), cut at the tick of 61 s.
        loop.advance(by: .seconds(49))
        #expect(!received(silent).closed && !received(served).closed, "\(code): 60 s")
        loop.advance(by: .seconds(1))
        #expect(received(silent) == ("", true), "\(code): 61 s, the silent client")
        #expect(received(served) == ("", true), "\(code): 61 s, the client served at 0 s")
        #expect(received(slow).closed, "\(code): the timed-out client is closed by then")
    }

    @Test(arguments: HTTPCode.allCases)
    func progressPushesTheIdleTimeoutBack(_ code: HTTPCode) throws {
        let (loop, address, worker) = try serveSite(code) { limits in limits.idleTimeout = .seconds(30) }
        defer { loop.close(); withExtendedLifetime(worker) {} } // the worker's listener closes with its loop
        let client = try connectedClient(address)
        defer { client.close() }
        // A request every 20 s for two minutes: never idle for 30.
        for request in 0..<6 {
            send(client, "GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n")
            loop.runPending()
            let answer = received(client)
            #expect(answer.text.hasPrefix("HTTP/1.1 200 OK") && !answer.closed, "\(code): request \(request): \(answer)")
            loop.advance(by: .seconds(20))
        }
        // Then silence: the last request was at 100 s; cut at the tick of 131 s.
        loop.advance(by: .seconds(10)) // 130 s
        #expect(!received(client).closed, "\(code): 130 s")
        loop.advance(by: .seconds(1))
        #expect(received(client).closed, "\(code): 131 s")
    }

    @Test(arguments: HTTPCode.allCases)
    func emptyLinesOnceASecondCannotHoldTheServerAtItsCap(_ code: HTTPCode) throws {
        let (loop, address, worker) = try serveSite(code) { limits in limits.headerTimeout = .seconds(2); limits.maxConnections = 5 }
        defer { loop.close(); withExtendedLifetime(worker) {} } // the worker's listener closes with its loop
        // Five connections at the cap, each sending an empty line a second
        // and never a request line; a sixth waits in the backlog.
        let holders = try (0..<5).map { _ in try connectedClient(address) }
        loop.runPending()
        let waiting = try connectedClient(address)
        defer { waiting.close() }
        send(waiting, "GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n")
        for second in 0..<3 {
            holders.forEach { send($0, "\r\n") }
            loop.runPending()
            #expect(received(waiting) == ("", false), "\(code): \(second) s, the cap holds")
            loop.advance(by: .seconds(1))
        }
        // The head began with the first empty line at 0 s: each is cut at the tick of 3 s.
        for holder in holders {
            let answer = received(holder)
            #expect(answer.text.hasPrefix("HTTP/1.1 408 Request Timeout"), "\(code): \(answer)")
            holder.close()
        }
        loop.runPending()
        let served = received(waiting)
        #expect(served.text.hasPrefix("HTTP/1.1 200 OK") && served.text.hasSuffix("Hello, World!"), "\(code): \(served)")
    }
}
