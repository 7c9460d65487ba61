import EV
import Epoll
import EventCore
import Foundation
import Testing
import TestSupport

/// Issue 24, 3: Unix-domain stream sockets on the same `AsyncSocket`,
/// `AsyncListener`, `Connection` and `Listener` as TCP, on both loops.
@Suite("Unix-domain sockets")
struct UnixSocketTests {
    /// A directory of this test's own (removed at the end), so that paths
    /// never collide with another test's.
    final class Directory {
        let path: String
        init() throws {
            var template = Array("\(NSTemporaryDirectory())/evunix-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { throw EventLoopError.system("mkdtemp") }
            path = String(cString: made)
        }
        deinit { try? FileManager.default.removeItem(atPath: path) }
        func socket(_ name: String) throws -> SocketAddress { try .unix(path: "\(path)/\(name)") }
    }

    /// A unique abstract name (no file; gone with its socket).
    static func abstractName() -> String { "swift-libev-test-\(getpid())-\(UInt64.random(in: 0...UInt64.max))" }

    @Test(arguments: LoopKind.allCases)
    func anAsyncEchoOverAPathAndAnAbstractName(_ kind: LoopKind) throws {
        let directory = try Directory()
        for address in [try directory.socket("echo.sock"), try SocketAddress.unix(abstract: Self.abstractName())] {
            let (answer, peer, local) = try kind.run { executor in
                let listener = try AsyncListener(on: address, loop: executor)
                let client = try await AsyncSocket.connect(to: address, on: executor)
                let server = try await listener.accept()
                try await client.write("over a Unix socket")
                client.shutdownWriteIgnoringErrors()
                try await server.write(try await server.readToEnd())
                let peer = server.peer
                server.close()
                let answer = try await client.readToEnd()
                client.close()
                listener.close()
                return (String(decoding: answer, as: UTF8.self), peer, listener.localAddress)
            }
            #expect(answer == "over a Unix socket", "\(kind) \(address)")
            #expect(peer?.family == .unix && peer?.description == "unix:(unnamed)", "\(kind): \(String(describing: peer))")
            #expect(local == address, "\(kind): getsockname gives back \(local), not \(address)")
        }
    }

    @Test(arguments: LoopKind.allCases)
    func aCallbackEchoOverAPath(_ kind: LoopKind) throws {
        let directory = try Directory()
        let address = try directory.socket("callback.sock")
        // The TCP echo's scenario, every step the same over a path.
        switch kind {
        case .libev: try ConnectionTests().echo(Loop(), at: address)
        case .epoll: try ConnectionTests().echo(EpollLoop(), at: address)
        }
    }

    /// A listener removes the socket file it made when it closes (asyncio's
    /// `cleanup_socket`), unless another listener has taken the path since.
    @Test(arguments: LoopKind.allCases)
    func aListenerRemovesItsSocketFileAtCloseButNotAReplacement(_ kind: LoopKind) throws {
        let directory = try Directory()
        let address = try directory.socket("tidy.sock")
        let path = address.unixFilePath!
        let (asyncRemoved, replacementKept) = try kind.run { executor in
            let listener = try AsyncListener(on: address, loop: executor)
            listener.close()
            let asyncRemoved = !FileManager.default.fileExists(atPath: path)
            // The path taken over after the bind: the first listener's close leaves it.
            let first = try AsyncListener(on: address, loop: executor)
            unlink(path)
            let second = try AsyncListener(on: address, loop: executor)
            first.close()
            let kept = FileManager.default.fileExists(atPath: path)
            second.close()
            return (asyncRemoved, kept && !FileManager.default.fileExists(atPath: path))
        }
        #expect(asyncRemoved)
        #expect(replacementKept)
        func callbackListener<L: EventLoop>(_ loop: L) throws -> Bool {
            let listener = try Listener(on: address, loop: loop) { socket, _ in socket.close() }
            #expect(FileManager.default.fileExists(atPath: path))
            listener.close()
            return !FileManager.default.fileExists(atPath: path)
        }
        #expect(try kind == .libev ? callbackListener(Loop()) : callbackListener(EpollLoop()))
    }

    @Test func aStaleSocketFileIsNamedOrReplacedOnRequest() throws {
        let directory = try Directory()
        let address = try directory.socket("stale.sock")
        // A listener that went away without removing its file.
        SocketDescriptor.listeningOrFail(address).close()
        #expect(FileManager.default.fileExists(atPath: address.unixFilePath!))

        let error = #expect(throws: EventLoopError.self) { try SocketDescriptor.listening(on: address) }
        #expect(error?.code == .system(.addressInUse))
        #expect(error?.description.contains("\(address.unixFilePath!) is a stale socket") == true, "\(String(describing: error))")

        let replaced = try SocketDescriptor.listening(on: address, replacingStaleSocket: true)
        defer { replaced.close() }
        // A live listener is never taken over, even when asked to replace.
        let live = #expect(throws: EventLoopError.self) { try SocketDescriptor.listening(on: address, replacingStaleSocket: true) }
        #expect(live?.description.contains("a listener is accepting on") == true, "\(String(describing: live))")
    }

    @Test func aFileThatIsNotASocketIsNeverRemoved() throws {
        let directory = try Directory()
        let address = try directory.socket("data.txt")
        try "precious".write(toFile: address.unixFilePath!, atomically: false, encoding: .utf8)
        let error = #expect(throws: EventLoopError.self) { try SocketDescriptor.listening(on: address, replacingStaleSocket: true) }
        #expect(error?.description.contains("exists and is not a socket") == true, "\(String(describing: error))")
        #expect(try String(contentsOfFile: address.unixFilePath!, encoding: .utf8) == "precious")
    }

    @Test func pathsThatDoNotFitOrHoldNULAreNamed() {
        let long = "/tmp/" + String(repeating: "x", count: 200)
        let tooLong = #expect(throws: EventLoopError.self) { try SocketAddress.unix(path: long) }
        #expect(tooLong?.code == .invalidAddress)
        #expect(tooLong?.description.contains("205 bytes: at most \(SocketAddress.maximumUnixPathLength) fit in sun_path") == true,
                "\(String(describing: tooLong))")
        let nul = #expect(throws: EventLoopError.self) { try SocketAddress.unix(path: "/tmp/a\u{0}b") }
        #expect(nul?.description.contains("holds a NUL byte") == true, "\(String(describing: nul))")
        #expect(throws: EventLoopError.self) { try SocketAddress.unix(path: "") }
        let longest = "/" + String(repeating: "y", count: SocketAddress.maximumUnixPathLength - 1)
        #expect(throws: Never.self) { try SocketAddress.unix(path: longest) }
        #expect(throws: EventLoopError.self) { try SocketAddress.unix(abstract: String(repeating: "z", count: SocketAddress.maximumUnixPathLength)) }
    }

    @Test func addressesSayWhatTheyAre() throws {
        #expect(try SocketAddress.unix(path: "/run/app.sock").description == "unix:/run/app.sock")
        #expect(try SocketAddress.unix(abstract: "app").description == "unix:@app")
        #expect(try SocketAddress.unix(abstract: "app").unixFilePath == nil)
        #expect(try SocketAddress.unix(path: "/a") != SocketAddress.unix(abstract: "a"))
        #expect(try SocketAddress.unix(path: "/a").port == 0)
        #expect(try SocketAddress(parsing: "80").unixName == nil)
    }
}

extension SocketDescriptor {
    /// A listener at `address`, or a failed test (for set-up steps).
    static func listeningOrFail(_ address: SocketAddress) -> SocketDescriptor {
        do { return try listening(on: address) } catch {
            Issue.record("listening on \(address): \(error)")
            return SocketDescriptor(FileDescriptor(rawValue: -1))
        }
    }
}

extension AsyncSocket {
    /// `shutdownWrite()` for a test that only wants the end of stream sent.
    func shutdownWriteIgnoringErrors() { try? shutdownWrite() }
}
