import EventCore
import Foundation
import Synchronization
import Testing
import TestSupport

/// Issue 24, 2: UDP (IPv4, IPv6) and Unix datagram sockets on both loops.
@Suite("Datagrams")
struct DatagramTests {
    @Test(arguments: LoopKind.allCases, ["127.0.0.1:0", "[::1]:0"])
    func anEchoBetweenABoundAndAConnectedSocket(_ kind: LoopKind, _ bind: String) throws {
        let (echoed, sender, clientAddress) = try kind.run { executor in
            let server = try DatagramSocket(bindingTo: SocketAddress(parsing: bind), loop: executor)
            let client = try DatagramSocket(connectingTo: server.localAddress!, loop: executor)
            try await client.send(Array("ping".utf8))
            let request = try await server.receive()
            try await server.send(request.bytes + Array(" pong".utf8), to: request.address)
            let answer = try await client.receive()
            // Made with only a peer, it knows the port the kernel bound at connect.
            return (String(decoding: answer.bytes, as: UTF8.self), request.address, client.localAddress)
        }
        #expect(echoed == "ping pong", "\(kind) \(bind)")
        #expect(clientAddress != nil && clientAddress?.port != 0)
        #expect(sender == clientAddress, "\(kind): the sender is the client's address: \(String(describing: sender)) vs \(String(describing: clientAddress))")
    }

    @Test(arguments: LoopKind.allCases)
    func aDatagramLargerThanTheBufferSaysItWasCut(_ kind: LoopKind) throws {
        let received = try kind.run { executor in
            let server = try DatagramSocket(bindingTo: SocketAddress(parsing: "127.0.0.1:0"), loop: executor)
            let client = try DatagramSocket(connectingTo: server.localAddress!, loop: executor)
            try await client.send([UInt8](repeating: 7, count: 3000))
            try await client.send([UInt8](repeating: 8, count: 10))
            return [try await server.receive(maximumSize: 1000), try await server.receive(maximumSize: 1000)]
        }
        #expect(received[0].bytes.count == 1000 && received[0].size == 3000 && received[0].isTruncated, "\(kind)")
        #expect(received[1].bytes == [UInt8](repeating: 8, count: 10) && !received[1].isTruncated, "\(kind): the next datagram is whole")
    }

    @Test(arguments: LoopKind.allCases)
    func batchesSendAndReceiveManyInOneCall(_ kind: LoopKind) throws {
        let (received, truncated) = try kind.run { executor in
            let server = try DatagramSocket(bindingTo: SocketAddress(parsing: "127.0.0.1:0"), loop: executor)
            let client = try DatagramSocket(bindingTo: SocketAddress(parsing: "127.0.0.1:0"), loop: executor)
            var batch = (0..<200).map { Datagram(Array("datagram \($0)".utf8), to: server.localAddress) }
            batch.append(Datagram([UInt8](repeating: 1, count: 100), to: server.localAddress))
            try await client.sendBatch(batch)
            var received: [Datagram] = []
            while received.count < batch.count {
                received += try await server.receiveBatch(count: 64, maximumSize: 50)
            }
            return (received.prefix(200).map { String(decoding: $0.bytes, as: UTF8.self) }, received[200])
        }
        #expect(received == (0..<200).map { "datagram \($0)" }, "\(kind): every datagram, in order")
        #expect(truncated.isTruncated && truncated.size == 100 && truncated.bytes.count == 50, "\(kind)")
    }

    @Test(arguments: LoopKind.allCases)
    func aConnectedSocketWhosePeerIsGoneHearsECONNREFUSED(_ kind: LoopKind) throws {
        let port = try unusedUDPPort()
        let error = try kind.run { executor -> EventLoopError? in
            let client = try DatagramSocket(connectingTo: SocketAddress(parsing: "127.0.0.1:\(port)"), loop: executor)
            // Sent again after a quiet second, up to ten times: a program
            // another test is spawning holds a copy of every descriptor until
            // its exec, and a datagram that reaches such a copy of the closed
            // socket draws no ICMP "port unreachable".
            for _ in 0..<10 {
                do {
                    try await client.send(Array("anyone?".utf8))
                    _ = try await withTimeout(.seconds(1)) { try await client.receive() }
                    return nil
                } catch let error as EventLoopError where error.code == .timedOut {
                    continue
                } catch let error as EventLoopError {
                    return error
                }
            }
            return nil
        }
        #expect(error?.errno == .connectionRefused, "\(kind): \(String(describing: error))")
        #expect(error?.description.contains("127.0.0.1:\(port)") == true, "\(kind): the error names the peer: \(String(describing: error))")
    }

    @Test(arguments: LoopKind.allCases)
    func aDatagramOverTheProtocolsLimitIsRefusedByName(_ kind: LoopKind) throws {
        let error = try kind.run { executor -> EventLoopError? in
            let client = try DatagramSocket(connectingTo: SocketAddress(parsing: "127.0.0.1:9"), loop: executor)
            do {
                try await client.send([UInt8](repeating: 0, count: 70_000))
                return nil
            } catch let error as EventLoopError {
                return error
            }
        }
        #expect(error?.errno == .messageTooLong, "\(kind): \(String(describing: error))")
    }

    /// A socket that always has another datagram waiting (a flood) must
    /// not keep its reader running while the loop's other work waits: with
    /// 150 datagrams queued before the reader starts, a task that asks for
    /// the loop's next turn gets it while the reader is still at the start
    /// of the queue - without the pacing, the reader took all 150 before
    /// anything else ran (checked).
    @Test(arguments: LoopKind.allCases)
    func aFloodDoesNotKeepTheLoopFromItsOtherWork(_ kind: LoopKind) throws {
        let (seenByTheOtherTask, total) = try kind.run { executor in
            let server = try DatagramSocket(bindingTo: SocketAddress(parsing: "127.0.0.1:0"), loop: executor)
            let client = try DatagramSocket(connectingTo: server.localAddress!, loop: executor)
            let count = 150
            for index in 0..<count { try await client.send(Array("flood \(index)".utf8)) }
            let received = Flood()
            let reader = Task(executorPreference: executor) {
                for _ in 0..<count {
                    _ = try await server.receive()
                    received.count.add(1, ordering: .relaxed)
                }
            }
            let other = Task(executorPreference: executor) {
                try await executor.sleep(for: .zero) // the loop's next turn
                return received.count.load(ordering: .relaxed)
            }
            let seen = try await other.value
            try await withTimeout(.seconds(30)) { try await reader.value }
            return (seen, received.count.load(ordering: .relaxed))
        }
        #expect(total == 150, "\(kind): every datagram was read")
        #expect(seenByTheOtherTask < 75, "\(kind): the other task ran after \(seenByTheOtherTask) of 150 datagrams")
    }

    final class Flood: Sendable {
        let count = Atomic(0)
    }

    @Test(arguments: LoopKind.allCases)
    func unixDatagramsBetweenTwoPaths(_ kind: LoopKind) throws {
        let directory = try UnixSocketTests.Directory()
        let serverAddress = try directory.socket("server.sock")
        let clientAddress = try directory.socket("client.sock")
        let (text, sender) = try kind.run { executor in
            let server = try DatagramSocket(bindingTo: serverAddress, loop: executor)
            let client = try DatagramSocket(bindingTo: clientAddress, connectingTo: serverAddress, loop: executor)
            try await client.send(Array("local".utf8))
            let request = try await server.receive()
            try await server.send(request.bytes.reversed(), to: request.address)
            let answer = try await client.receive()
            return (String(decoding: answer.bytes, as: UTF8.self), request.address)
        }
        #expect(text == "lacol", "\(kind)")
        #expect(sender == clientAddress, "\(kind): \(String(describing: sender))")
    }

    @Test(arguments: LoopKind.allCases)
    func pythonsSocketTalksToTheLoop(_ kind: LoopKind) throws {
        let output = try kind.run { executor in
            let server = try DatagramSocket(bindingTo: SocketAddress(parsing: "127.0.0.1:0"), loop: executor)
            let script = """
            import socket, sys
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(10)
            ok = 0
            for i in range(100):
                s.sendto(b"n%d" % i, ("127.0.0.1", int(sys.argv[1])))
                data, _ = s.recvfrom(100)
                ok += data == b"N%d" % i
            s.sendto(b"end", ("127.0.0.1", int(sys.argv[1])))
            print("echoed", ok)
            """
            let python = try SpawnedProcess("/usr/bin/env", ["python3", "-c", script, String(server.localAddress!.port)])
            while true {
                let datagram = try await withTimeout(.seconds(30)) { try await server.receive() }
                if datagram.bytes == Array("end".utf8) { break }
                try await server.send(datagram.bytes.map { $0 == UInt8(ascii: "n") ? UInt8(ascii: "N") : $0 }, to: datagram.address)
            }
            return try python.wait(timeout: 30)
        }
        #expect(output.standardOutput == "echoed 100\n", "\(kind): \(output)")
    }
}

/// A UDP port nobody is bound to now.
func unusedUDPPort() throws -> UInt16 {
    let socket = try SocketDescriptor.datagram(.ipv4)
    defer { socket.close() }
    try socket.bind(to: SocketAddress(parsing: "127.0.0.1:0"))
    return try socket.localAddress().port
}
