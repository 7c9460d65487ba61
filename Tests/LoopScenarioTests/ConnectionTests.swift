import EV
import Epoll
import EventCore
import Glibc
import Testing
import TestSupport

/// What a delegate heard, in order.
final class Recorder: ConnectionDelegate {
    var connection: (any AnyObject)?
    var log: [String] = []
    var received: [UInt8] = []
    var keepOpenAtEnd = false
    var onReceive: ((UnsafeRawBufferPointer) -> Void)?
    var onEnd: (() -> Void)?

    func connectionEstablished() { log.append("established") }
    func connectionReceived(_ bytes: UnsafeRawBufferPointer) {
        received.append(contentsOf: bytes)
        onReceive?(bytes)
    }
    func connectionReachedEnd() -> Bool {
        log.append("end")
        onEnd?()
        return keepOpenAtEnd
    }
    var onDrained: (() -> Void)?
    func connectionDrained() {
        log.append("drained")
        onDrained?()
    }
    func connectionClosed(_ error: EventLoopError?) {
        log.append(error.map { "closed: \($0)" } ?? "closed")
        connection = nil
    }
}

/// The callback connection and listener of EventCore, on both loops.
@Suite("Connection and Listener on both loops")
struct ConnectionTests {
    @Test(arguments: LoopKind.allCases)
    func anEchoServerAndAClientEachOnAConnection(_ kind: LoopKind) throws {
        switch kind {
        case .libev: try echo(Loop())
        case .epoll: try echo(EpollLoop())
        }
    }

    /// An echo through a `Listener` at `address` (TCP on a free port by
    /// default; the Unix-socket tests pass a path).
    func echo<L: EventLoop>(_ loop: L, at address: SocketAddress? = nil) throws {
        var served: [Recorder] = []
        let listener = try Listener(on: address ?? SocketAddress(parsing: "127.0.0.1:0"), loop: loop) { socket, peer in
            let echo = Recorder()
            let connection = try? Connection(adopting: socket, peer: peer, on: loop, delegate: echo)
            echo.connection = connection
            echo.onReceive = { bytes in connection?.write(bytes) }
            served.append(echo)
        }
        let client = Recorder()
        let connection = try Connection.connect(to: listener.localAddress, on: loop, delegate: client)
        #expect(client.log.isEmpty, "nothing is told before connect returns")
        #expect(connection.write("hello, "))
        #expect(connection.write(Array("echo".utf8)))
        connection.shutdownWrite()
        #expect(!connection.write("refused after shutdownWrite"))
        #expect(loop.runUntil { client.log.last?.hasPrefix("closed") == true })
        #expect(String(decoding: client.received, as: UTF8.self) == "hello, echo")
        #expect(client.log == ["established", "end", "closed"], "\(client.log)")
        #expect(served.count == 1)
        #expect(loop.runUntil { served.first?.log.last == "closed" })
        #expect(served.first?.log == ["end", "closed"], "the server closed after the client's FIN: \(served.first?.log ?? [])")
        listener.close()
        loop.close()
    }

    @Test(arguments: LoopKind.allCases)
    func aRefusedConnectIsToldOnALaterTurnNamingThePeer(_ kind: LoopKind) throws {
        switch kind {
        case .libev: try refused(Loop())
        case .epoll: try refused(EpollLoop())
        }
    }

    func refused<L: EventLoop>(_ loop: L) throws {
        let port = try unusedPort()
        let client = Recorder()
        let connection = try Connection.connect(to: SocketAddress(parsing: "127.0.0.1:\(port)"), on: loop, delegate: client)
        #expect(client.log.isEmpty)
        #expect(connection.write("queued while connecting"))
        #expect(loop.runUntil { !client.log.isEmpty })
        #expect(client.log == ["closed: connect(127.0.0.1:\(port)) failed: Connection refused (ECONNREFUSED)"], "\(client.log)")
        #expect(!connection.isOpen)
        loop.close()
    }

    @Test(arguments: LoopKind.allCases)
    func aConnectThatHangsTimesOut(_ kind: LoopKind) throws {
        switch kind {
        case .libev: try hangs(Loop())
        case .epoll: try hangs(EpollLoop())
        }
    }

    func hangs<L: EventLoop>(_ loop: L) throws {
        // A listener that never accepts, with the smallest backlog: once its
        // queue is full the kernel drops further SYNs, and connects hang.
        let listener = try SocketDescriptor.listening(on: SocketAddress(parsing: "127.0.0.1:0"), backlog: 0)
        defer { listener.close() }
        let address = try listener.localAddress()
        var clients: [Recorder] = []
        for _ in 0..<16 {
            let client = Recorder()
            clients.append(client)
            _ = try Connection.connect(to: address, on: loop, timeout: .milliseconds(300), delegate: client)
        }
        #expect(loop.runUntil { clients.allSatisfy { $0.log.last?.hasPrefix("closed") == true || $0.log == ["established"] } })
        let timedOut = clients.filter { $0.log.last?.contains("timed out after 300 ms") == true }
        #expect(!timedOut.isEmpty, "\(clients.map(\.log))")
        #expect(timedOut.allSatisfy { $0.log.last == "closed: connect(\(address)): timed out after 300 ms" }, "\(timedOut.map(\.log))")
        loop.close()
    }

    @Test(arguments: LoopKind.allCases)
    func queuedOutputDrainsToASlowReaderEveryByteInOrder(_ kind: LoopKind) throws {
        switch kind {
        case .libev: try slowReader(Loop())
        case .epoll: try slowReader(EpollLoop())
        }
    }

    func slowReader<L: EventLoop>(_ loop: L) throws {
        let (a, b) = try makeSocketPair()
        defer { close(b) }
        let writer = Recorder()
        let connection = try Connection(adopting: SocketDescriptor(FileDescriptor(rawValue: a)), peer: nil, on: loop, delegate: writer)
        let payload = Self.eightMegabytes()
        #expect(connection.write(payload))
        #expect(connection.queuedBytes > 0, "a socket pair's buffer cannot take 8 MB at once")
        #expect(try Self.readSlowly(b, on: loop, count: payload.count) == payload)
        #expect(connection.queuedBytes == 0)
        #expect(writer.log == ["drained"], "\(writer.log)")
        connection.close()
        #expect(writer.log == ["drained", "closed"])
        #expect(readOnceReadable(b) == 0, "close() closed the socket: the peer reads end of stream")
        loop.close()
    }

    /// 8 MB that are not one byte repeated (an offset error shows).
    static func eightMegabytes() -> [UInt8] {
        (0..<(8 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 13) }
    }

    /// Reads `count` bytes from `fd` on `loop`, a slow reader: 4 KB per turn.
    static func readSlowly<L: EventLoop>(_ fd: Int32, on loop: L, count: Int) throws -> [UInt8] {
        var read: [UInt8] = []
        let reader = try loop.watchReadiness(FileDescriptor(rawValue: fd), .read) { _ in
            var buffer = [UInt8](repeating: 0, count: 4096)
            let got = Glibc.read(fd, &buffer, buffer.count)
            if got > 0 { read += buffer[..<got] }
        }
        defer { reader.cancel() }
        #expect(loop.runUntil(timeout: 60) { read.count == count })
        return read
    }

    /// tryWrite (libuv's uv_try_write): 8 MB written from the app's own
    /// buffer to a slow reader, resumed at each drain - nothing is ever
    /// queued (copied), and every byte arrives in order.
    @Test(arguments: LoopKind.allCases)
    func tryWriteQueuesNothingAndTheDrainSaysWhenToWriteMore(_ kind: LoopKind) throws {
        switch kind {
        case .libev: try tryWriter(Loop())
        case .epoll: try tryWriter(EpollLoop())
        }
    }

    func tryWriter<L: EventLoop>(_ loop: L) throws {
        let (a, b) = try makeSocketPair()
        defer { close(b) }
        let writer = Recorder()
        let connection = try Connection(adopting: SocketDescriptor(FileDescriptor(rawValue: a)), peer: nil, on: loop, delegate: writer)
        let payload = Self.eightMegabytes()
        var offset = 0
        var mostQueued = 0
        func writeMore() {
            let sent = payload[offset...].withUnsafeBytes { connection.tryWrite($0) }
            offset += sent ?? 0
            mostQueued = max(mostQueued, connection.queuedBytes)
        }
        writeMore()
        #expect(offset > 0 && offset < payload.count, "a socket pair's buffer takes some of 8 MB, not all: \(offset)")
        writer.onDrained = writeMore
        #expect(try Self.readSlowly(b, on: loop, count: payload.count) == payload)
        #expect(mostQueued == 0, "tryWrite queues nothing")
        #expect(writer.log.allSatisfy { $0 == "drained" } && writer.log.count > 1, "\(writer.log.count) drains")
        connection.close()
        #expect(connection.tryWrite(UnsafeRawBufferPointer(start: nil, count: 0)) == nil, "a closed connection takes nothing")
        loop.close()
    }

    @Test(arguments: LoopKind.allCases)
    func aLingeringCloseDeliversTheAnswerToAPeerThatKeepsSending(_ kind: LoopKind) throws {
        switch kind {
        case .libev: try lingering(Loop())
        case .epoll: try lingering(EpollLoop())
        }
    }

    func lingering<L: EventLoop>(_ loop: L) throws {
        let (a, b) = try makeSocketPair()
        defer { close(b) }
        let server = Recorder()
        let connection = try Connection(adopting: SocketDescriptor(FileDescriptor(rawValue: a)), peer: nil, on: loop, delegate: server)
        // The peer has sent a request the server will never read...
        _ = writeString(b, String(repeating: "unread request ", count: 1000))
        let answer = String(repeating: "the last answer ", count: 20_000) // 320 KB: more than the socket takes at once
        connection.write(answer)
        connection.closeLingering(timeout: .seconds(5))
        #expect(!connection.isOpen)
        // ...and reads the answer to its end of stream, as the server drops its input.
        var got: [UInt8] = []
        var ended = false
        let reader = try loop.watchReadiness(FileDescriptor(rawValue: b), .read) { _ in
            var buffer = [UInt8](repeating: 0, count: 65536)
            let count = Glibc.read(b, &buffer, buffer.count)
            if count > 0 { got += buffer[..<count] } else if count == 0 { ended = true }
        }
        #expect(loop.runUntil { ended })
        reader.cancel()
        #expect(String(decoding: got, as: UTF8.self) == answer, "every byte, no reset (\(got.count) of \(answer.utf8.count))")
        shutdown(b, Int32(SHUT_WR)) // the peer's FIN ends the linger
        #expect(loop.runUntil { server.log.last == "closed" })
        #expect(server.log == ["closed"], "\(server.log)")
        loop.close()
    }

    @Test(arguments: LoopKind.allCases)
    func aLingerEndsAtItsTimeoutWhateverThePeerSends(_ kind: LoopKind) throws {
        switch kind {
        case .libev: try lingerTimeout(Loop())
        case .epoll: try lingerTimeout(EpollLoop())
        }
    }

    func lingerTimeout<L: EventLoop>(_ loop: L) throws {
        let (a, b) = try makeSocketPair()
        defer { close(b) }
        let server = Recorder()
        let connection = try Connection(adopting: SocketDescriptor(FileDescriptor(rawValue: a)), peer: nil, on: loop, delegate: server)
        connection.closeLingering(timeout: .milliseconds(100))
        // A peer that never sends its FIN and keeps talking.
        let chatter = loop.schedule(after: .milliseconds(10)) { _ = writeString(b, "still here") }
        let start = ContinuousClock.now
        #expect(loop.runUntil { server.log == ["closed"] })
        #expect(start.duration(to: .now) >= .milliseconds(90))
        chatter.cancel()
        loop.close()
    }

    @Test(arguments: LoopKind.allCases)
    func aHalfCloseKeepsWritingWhenTheDelegateAsks(_ kind: LoopKind) throws {
        switch kind {
        case .libev: try halfClose(Loop())
        case .epoll: try halfClose(EpollLoop())
        }
    }

    func halfClose<L: EventLoop>(_ loop: L) throws {
        let (a, b) = try makeSocketPair()
        defer { close(b) }
        let server = Recorder()
        server.keepOpenAtEnd = true
        let connection = try Connection(adopting: SocketDescriptor(FileDescriptor(rawValue: a)), peer: nil, on: loop, delegate: server)
        server.onEnd = { connection.write("answered after your FIN") }
        _ = writeString(b, "question")
        shutdown(b, Int32(SHUT_WR))
        var got = ""
        #expect(loop.runUntil {
            got += readAvailable(b)
            return got == "answered after your FIN"
        })
        #expect(connection.isOpen, "still open: the delegate kept it")
        #expect(String(decoding: server.received, as: UTF8.self) == "question")
        connection.close()
        loop.close()
    }

    @Test(arguments: LoopKind.allCases)
    func pausedReadingReadsNothingUntilResumed(_ kind: LoopKind) throws {
        switch kind {
        case .libev: try paused(Loop())
        case .epoll: try paused(EpollLoop())
        }
    }

    func paused<L: EventLoop>(_ loop: L) throws {
        let (a, b) = try makeSocketPair()
        defer { close(b) }
        let server = Recorder()
        let connection = try Connection(adopting: SocketDescriptor(FileDescriptor(rawValue: a)), peer: nil, on: loop, delegate: server)
        connection.pauseReading()
        _ = writeString(b, "waiting")
        var turns = 0
        #expect(loop.runUntil { turns += 1; return turns == 20 })
        #expect(server.received.isEmpty)
        connection.resumeReading()
        #expect(loop.runUntil { server.received.count == 7 })
        connection.close()
        loop.close()
    }

    @Test(arguments: LoopKind.allCases)
    func closingTheLoopClosesItsConnectionsAndListeners(_ kind: LoopKind) throws {
        switch kind {
        case .libev: try loopCloses(Loop())
        case .epoll: try loopCloses(EpollLoop())
        }
    }

    func loopCloses<L: EventLoop>(_ loop: L) throws {
        let (a, b) = try makeSocketPair()
        defer { close(b) }
        weak var weakServer: Recorder?
        var log: [String] = []
        let address: SocketAddress
        do {
            let server = Recorder()
            weakServer = server
            server.connection = try Connection(adopting: SocketDescriptor(FileDescriptor(rawValue: a)), peer: nil, on: loop, delegate: server)
            let listener = try Listener(on: SocketAddress(parsing: "127.0.0.1:0"), loop: loop) { socket, _ in socket.close() }
            address = listener.localAddress
            loop.close()
            log = server.log
        }
        #expect(log == ["closed: descriptor \(a): the loop has been closed and takes no more work"], "\(log)")
        #expect(weakServer == nil, "the connection and its delegate let each other go")
        // Seen from the peers (the numbers may be other tests' by now):
        #expect(readOnceReadable(b) == 0, "the connection's socket is closed: end of stream")
        #expect(connectIsRefused(address), "the listener's socket is closed")
    }

    @Test(arguments: LoopKind.allCases)
    func aPausedListenerAcceptsNothingUntilResumed(_ kind: LoopKind) throws {
        switch kind {
        case .libev: try pausedListener(Loop())
        case .epoll: try pausedListener(EpollLoop())
        }
    }

    func pausedListener<L: EventLoop>(_ loop: L) throws {
        var accepted: [SocketDescriptor] = []
        let listener = try Listener(on: SocketAddress(parsing: "127.0.0.1:0"), loop: loop) { socket, _ in accepted.append(socket) }
        listener.pause()
        #expect(listener.isPaused)
        let client = try SocketDescriptor.stream(.ipv4)
        defer { client.close() }
        _ = try client.connect(to: listener.localAddress)
        var turns = 0
        #expect(loop.runUntil { turns += 1; return turns == 20 })
        #expect(accepted.isEmpty, "paused: the kernel holds the connection in the backlog")
        listener.resume()
        #expect(loop.runUntil { accepted.count == 1 })
        accepted.forEach { $0.close() }
        listener.close()
        loop.close()
    }
}
