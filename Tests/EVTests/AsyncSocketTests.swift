@testable import EV
import EventCore
import Glibc
import Testing
import TestSupport

@Suite("AsyncSocket on the libev loop")
struct AsyncSocketTests {
    @Test func anEchoServerAndAThousandConcurrentClients() throws {
        raiseDescriptorLimit()
        let loop = try Loop()
        let clients = 1000
        let results = try loop.run { executor in
            try await withThrowingTaskGroup(of: Bool.self) { group in
                let listener = try AsyncListener(on: SocketAddress(parsing: "0"), loop: executor)
                let address = listener.localAddress
                // The server: accept every client, echo each one until it ends its stream.
                group.addTask {
                    try await withThrowingTaskGroup(of: Void.self) { connections in
                        for _ in 0..<clients {
                            let connection = try await listener.accept()
                            connections.addTask {
                                while true {
                                    let chunk = try await connection.read()
                                    if chunk.isEmpty { break }
                                    try await connection.write(chunk)
                                }
                                connection.close()
                            }
                        }
                        try await connections.waitForAll()
                    }
                    listener.close()
                    return true
                }
                for client in 0..<clients {
                    group.addTask {
                        let payload = (0..<(1000 + client * 7)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ client) }
                        let socket = try await AsyncSocket.connect(to: address, on: executor)
                        try await socket.write(payload)
                        try socket.shutdownWrite()
                        let echoed = try await socket.readToEnd()
                        socket.close()
                        return echoed == payload
                    }
                }
                var intact = 0
                for try await ok in group where ok { intact += 1 }
                return intact
            }
        }
        #expect(results == clients + 1, "every client got every byte back, and the server finished")
        #expect(loop.core.heldWatchers().isEmpty)
    }

    @Test func aRefusedConnectionNamesTheAddress() throws {
        let loop = try Loop()
        let port = try unusedPort()
        let outcome = try loop.run { executor in
            await Result.catching { _ = try await AsyncSocket.connect(to: SocketAddress(parsing: "\(port)"), on: executor) }
        }
        #expect(throws: SystemCallError(call: "connect(127.0.0.1:\(port))", errno: .connectionRefused)) { try outcome.get() }
        let message = String(describing: (outcome.error)!)
        #expect(message == "connect(127.0.0.1:\(port)) failed: Connection refused (ECONNREFUSED)")
    }

    @Test func aConnectThatHangsTimesOutNamingTheAddress() throws {
        let loop = try Loop()
        // A listener that never accepts, with the smallest backlog: once its
        // queue is full the kernel drops further SYNs, and connects hang.
        let listener = try SocketDescriptor.listening(on: SocketAddress(parsing: "0"), backlog: 0)
        defer { listener.close() }
        let address = try listener.localAddress()
        let outcome = try loop.run { executor in
            var held: [AsyncSocket] = []
            for _ in 0..<16 {
                do {
                    held.append(try await AsyncSocket.connect(to: address, on: executor, timeout: 0.3))
                } catch {
                    return Result<Void, any Error>.failure(error)
                }
            }
            return .success(())
        }
        #expect(throws: SystemCallError(call: "connect(\(address))", errno: .timedOut)) { try outcome.get() }
        #expect(loop.core.heldWatchers().isEmpty, "the timed-out connect left no watcher behind")
    }

    @Test func writingToAVanishedPeerIsEPIPENotSIGPIPE() throws {
        let loop = try Loop()
        let outcome = try loop.run { executor in
            let listener = try AsyncListener(on: SocketAddress(parsing: "0"), loop: executor)
            let client = try await AsyncSocket.connect(to: listener.localAddress, on: executor)
            let server = try await listener.accept()
            server.close()
            var failures: [SystemCallError] = []
            for _ in 0..<20 {
                do {
                    try await client.write([UInt8](repeating: 7, count: 65536))
                } catch let error as SystemCallError {
                    failures.append(error)
                    if failures.count >= 2 { break }
                }
            }
            return failures
        }
        #expect(!outcome.isEmpty)
        #expect(outcome.allSatisfy { $0.errno == .brokenPipe || $0.errno == .connectionReset }, "\(outcome)")
    }

    @Test func closingTwiceIsHarmlessAndClosingEndsAPendingRead() throws {
        let loop = try Loop()
        let result = try loop.run { executor in
            let listener = try AsyncListener(on: SocketAddress(parsing: "0"), loop: executor)
            let client = try await AsyncSocket.connect(to: listener.localAddress, on: executor)
            // Deliberately shared by two tasks of the same loop (one thread), to
            // close the socket under a pending read.
            let server = SameThreadBox(try await listener.accept())
            let reader = Task(executorPreference: executor) { try await server.value.read() }
            try await executor.sleep(seconds: 0.01)
            server.value.close()
            server.value.close()
            client.close()
            listener.close()
            listener.close()
            return await reader.result
        }
        #expect(throws: DescriptorClosedError.self) { try result.get() }
        #expect(loop.core.heldWatchers().isEmpty)
    }

    @Test func readToEndRespectsItsLimit() throws {
        let loop = try Loop()
        let outcome = try loop.run { executor in
            let listener = try AsyncListener(on: SocketAddress(parsing: "0"), loop: executor)
            let client = try await AsyncSocket.connect(to: listener.localAddress, on: executor)
            let server = try await listener.accept()
            try await server.write([UInt8](repeating: 1, count: 5000))
            server.close()
            return await Result.catching { try await client.readToEnd(limit: 1000) }
        }
        #expect(throws: SystemCallError.self) { try outcome.get() }
    }
}

/// A port nothing listens on (bound once, then released).
func unusedPort() throws -> UInt16 {
    let socket = try SocketDescriptor.listening(on: SocketAddress(parsing: "0"))
    defer { socket.close() }
    return try socket.localAddress().port
}

/// Raises the soft descriptor limit to the hard one, for tests with thousands of sockets.
func raiseDescriptorLimit() {
    var limit = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    limit.rlim_cur = limit.rlim_max
    setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
}

extension Result where Failure == any Error {
    /// The result of an async throwing body.
    static func catching(_ body: () async throws -> Success) async -> Result {
        do { return .success(try await body()) } catch { return .failure(error) }
    }

    /// The error, if it failed.
    var error: (any Error)? {
        if case .failure(let error) = self { return error }
        return nil
    }
}

/// Hands a non-Sendable value to another task of the same loop (the same thread).
final class SameThreadBox<Value>: @unchecked Sendable {
    // Only for tests whose tasks all run on one loop thread.
    let value: Value
    init(_ value: Value) { self.value = value }
}
