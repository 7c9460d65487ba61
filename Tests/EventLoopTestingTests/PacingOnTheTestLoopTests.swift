import EventCore
import EventLoopTesting
import Glibc
import SlowPoetry
import Testing

/// The two codes of the evented poetry servers (each runs on libev and on
/// epoll in the server; here on the testing loop).
enum PoetryCode: String, CaseIterable, Sendable {
    case callbacks, async

    func listen(_ listener: SocketDescriptor, _ options: PoetryServerOptions, on loop: TestLoop) {
        switch self {
        case .callbacks: CallbackEngine.listen(listener, options, on: loop)
        case .async: AsyncEngine.listen(listener, options, on: loop)
        }
    }
}

/// The slow poetry servers' pacing - a chunk, then `delay`, then the next -
/// on the loop's clock: what the end-to-end tests show with real pauses of
/// milliseconds, here with pauses of ten seconds that take no time at all.
@Suite("The poetry servers' pacing on the testing loop")
struct PacingOnTheTestLoopTests {
    static let poem = Array((0..<1000).map { UInt8(ascii: "a") + UInt8($0 % 26) })

    /// A testing loop serving `poem` with `code`, 100 bytes every 10 s, on a Unix socket of its own.
    static func serve(_ code: PoetryCode) throws -> (TestLoop, SocketAddress) {
        let loop = try TestLoop()
        let address = try uniqueAbstractAddress("poetry")
        let listener = try SocketDescriptor.listening(on: address)
        loop.runOnLoop {
            code.listen(listener, PoetryServerOptions(poem: poem, chunkSize: 100, delay: .seconds(10), address: address), on: loop)
        }
        return (loop, address)
    }

    @Test(arguments: PoetryCode.allCases)
    func aPoemComesAChunkEveryDelayOnTheLoopsClock(_ code: PoetryCode) throws {
        let (loop, address) = try Self.serve(code)
        defer { loop.close() } // the server's listener closes with it
        let (bytes, took) = try loop.run { executor in
            let socket = try await AsyncSocket.connect(to: address, on: executor, timeout: .seconds(5))
            defer { socket.close() }
            let start = executor.now
            let bytes = try await socket.readToEnd(limit: 1 << 20)
            return (bytes, start.duration(to: executor.now))
        }
        #expect(bytes == Self.poem)
        // Ten chunks, a pause after each: the last pause ends in the close.
        #expect(took == .seconds(100), "\(code): \(took)")
    }

    @Test(arguments: PoetryCode.allCases)
    func clientsAreServedSideBySideNotInLine(_ code: PoetryCode) throws {
        let (loop, address) = try Self.serve(code)
        defer { loop.close() } // the server's listener closes with it
        // Ten clients; the last five come 35 s after the first five.
        let finished = try loop.run { executor in
            try await withThrowingTaskGroup(of: (Int, Duration).self) { group in
                let start = executor.now
                for client in 0..<10 {
                    group.addTask(executorPreference: executor) {
                        if client >= 5 { try await executor.sleep(for: .seconds(35)) }
                        let socket = try await AsyncSocket.connect(to: address, on: executor, timeout: .seconds(5))
                        defer { socket.close() }
                        let bytes = try await socket.readToEnd(limit: 1 << 20)
                        return (bytes == Self.poem ? client : -1, start.duration(to: executor.now))
                    }
                }
                return try await group.reduce(into: [Int: Duration]()) { $0[$1.0] = $1.1 }
            }
        }
        #expect(finished.keys.sorted() == Array(0..<10), "every client got the whole poem")
        #expect((0..<5).allSatisfy { finished[$0] == .seconds(100) }, "\(code): \(finished)")
        #expect((5..<10).allSatisfy { finished[$0] == .seconds(135) }, "\(code): \(finished)")
    }
}
