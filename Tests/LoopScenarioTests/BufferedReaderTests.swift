import EventCore
import Testing
import TestSupport

/// Issue 24, 6: lines, delimited runs and exact counts over a byte stream,
/// bounded, on both loops; the same buffer for callback code.
@Suite("Buffered streams")
struct BufferedReaderTests {
    /// A connected pair of sockets on `executor`'s loop: the test writes
    /// into `writer`, the reader reads `reader`.
    static func pair(_ executor: any EventLoopExecutor) async throws -> (writer: AsyncSocket, reader: AsyncSocket) {
        let listener = try AsyncListener(on: SocketAddress(parsing: "127.0.0.1:0"), loop: executor)
        defer { listener.close() }
        let writer = try await AsyncSocket.connect(to: listener.localAddress, on: executor)
        return (writer, try await listener.accept())
    }

    @Test(arguments: LoopKind.allCases)
    func linesArriveWholeHoweverTheBytesAreCut(_ kind: LoopKind) throws {
        let lines = try kind.run { executor in
            let (writer, socket) = try await Self.pair(executor)
            let reader = BufferedReader(socket)
            // Sent in pieces that cut lines and "\r\n" in two.
            let pieces = ["fir", "st\r", "\nsecond\n", "\n", "thi", "rd\r\nlast without newline"]
            let sending = Task(executorPreference: executor) {
                for piece in pieces {
                    try await writer.write(piece)
                    try await executor.sleep(for: .milliseconds(2))
                }
                try writer.shutdownWrite()
            }
            var lines: [String] = []
            while let line = try await reader.readLine() { lines.append(line) }
            try await sending.value
            return lines
        }
        #expect(lines == ["first", "second", "", "third", "last without newline"], "\(kind)")
    }

    @Test(arguments: LoopKind.allCases)
    func aLineOverTheLimitIsAnErrorNamingIt(_ kind: LoopKind) throws {
        let (error, buffered) = try kind.run { executor in
            let (writer, socket) = try await Self.pair(executor)
            let reader = BufferedReader(socket, capacity: 4096)
            // A peer that never sends the newline: 1 MB of it.
            let sending = Task(executorPreference: executor) {
                try? await writer.write([UInt8](repeating: UInt8(ascii: "a"), count: 1 << 20))
            }
            defer { sending.cancel(); writer.close() }
            do {
                _ = try await reader.readLine(maxLength: 100)
                return (nil as EventLoopError?, reader.bufferedCount)
            } catch let error as EventLoopError {
                return (error, reader.bufferedCount)
            }
        }
        #expect(error?.errno == .messageTooLong, "\(kind): \(String(describing: error))")
        #expect(error?.description.contains("no newline within 100 bytes") == true, "\(kind): \(String(describing: error))")
        #expect(buffered <= 4096, "\(kind): the buffer stays bounded (\(buffered))")
    }

    @Test(arguments: LoopKind.allCases)
    func exactCountsAndDelimitersAndTheEndInTheMiddle(_ kind: LoopKind) throws {
        let outcome = try kind.run { executor in
            let (writer, socket) = try await Self.pair(executor)
            let reader = BufferedReader(socket, capacity: 1024)
            let big = (0..<100_000).map { UInt8(truncatingIfNeeded: $0) }
            let sending = Task(executorPreference: executor) {
                try await writer.write("HEAD|12345")
                try await writer.write(big)
                try await writer.write("tail;partial")
                try writer.shutdownWrite()
            }
            let head = try await reader.read(until: Array("|".utf8))
            let five = try await reader.read(exactly: 5)
            let body = try await reader.read(exactly: big.count) // beyond the capacity
            let tail = try await reader.read(until: Array(";".utf8))
            var ending = ""
            do {
                _ = try await reader.read(until: Array(";".utf8))
            } catch let error as EventLoopError {
                ending = "\(error.code == .endOfStream) \(error)"
            }
            let afterEnd = try await reader.read(until: Array(";".utf8))
            try await sending.value
            return [String(decoding: head ?? [], as: UTF8.self), String(decoding: five, as: UTF8.self),
                    "\(body == big)", String(decoding: tail ?? [], as: UTF8.self), ending, "\(afterEnd == nil)"]
        }
        #expect(outcome[0] == "HEAD|" && outcome[1] == "12345" && outcome[2] == "true" && outcome[3] == "tail;", "\(kind): \(outcome)")
        #expect(outcome[4].hasPrefix("true ") && outcome[4].contains("7 bytes came and no delimiter before the end"), "\(kind): \(outcome[4])")
        #expect(outcome[5] == "true", "\(kind): nil once nothing is left")
    }

    @Test(arguments: LoopKind.allCases)
    func readExactlyPastTheEndSaysHowManyCame(_ kind: LoopKind) throws {
        let error = try kind.run { executor -> EventLoopError? in
            let (writer, socket) = try await Self.pair(executor)
            try await writer.write("only ten b")
            try writer.shutdownWrite()
            do {
                _ = try await BufferedReader(socket).read(exactly: 20)
                return nil
            } catch let error as EventLoopError {
                return error
            }
        }
        #expect(error?.code == .endOfStream, "\(kind)")
        #expect(error?.description.contains("10 of 20 bytes came before the end") == true, "\(kind): \(String(describing: error))")
    }

    @Test(arguments: LoopKind.allCases)
    func chunksRunToTheEnd(_ kind: LoopKind) throws {
        let total = try kind.run { executor in
            let (writer, socket) = try await Self.pair(executor)
            let sending = Task(executorPreference: executor) {
                for _ in 0..<100 { try await writer.write([UInt8](repeating: 1, count: 3000)) }
                try writer.shutdownWrite()
            }
            var total = 0
            for try await chunk in BufferedReader(socket).chunks { total += chunk.count }
            try await sending.value
            return total
        }
        #expect(total == 300_000, "\(kind)")
    }

    @Test func theCallbackBufferCutsTheSameFrames() throws {
        var buffer = FramingBuffer()
        var lines: [String] = []
        for piece in ["a\r", "\nb", "c\n\n", "d"] {
            buffer.append(Array(piece.utf8))
            while let line = try buffer.takeLine(maxLength: 10) { lines.append(line) }
        }
        #expect(lines == ["a", "bc", ""])
        #expect(buffer.count == 1)
        buffer.append(Array("0123456789abc".utf8))
        let error = #expect(throws: EventLoopError.self) { try buffer.takeLine(maxLength: 10) }
        #expect(error?.description.contains("no newline within 10 bytes") == true)
        #expect(buffer.take(exactly: 3) == Array("d01".utf8))
        #expect(buffer.take(exactly: 100) == nil)
        // A delimiter cut across two appends is still found, searched once.
        var records = FramingBuffer()
        records.append(Array("one<E".utf8))
        #expect(try records.take(through: Array("<END>".utf8), maxLength: 100) == nil)
        records.append(Array("ND>two".utf8))
        #expect(try records.take(through: Array("<END>".utf8), maxLength: 100) == Array("one<END>".utf8))
        #expect(records.take(upTo: 100) == Array("two".utf8))
    }
}

/// Issue 24, 6: the gathering writer.
@Suite("Gathering writes")
struct GatheringWriteTests {
    @Test(arguments: LoopKind.allCases)
    func chunksArriveWholeAndInOrderThroughAFullBuffer(_ kind: LoopKind) throws {
        // 300 chunks of uneven sizes (empty ones too), 6 MB in all: more
        // than a socket buffer, so the writes are partial and wait.
        let chunks = (0..<300).map { index in [UInt8](repeating: UInt8(truncatingIfNeeded: index), count: index % 7 == 0 ? 0 : (index * 7919) % 40_000) }
        let received = try kind.run { executor in
            let (writer, socket) = try await BufferedReaderTests.pair(executor)
            let sending = Task(executorPreference: executor) {
                try await writer.write(gathering: chunks)
                try writer.shutdownWrite()
            }
            let received = try await socket.readToEnd()
            try await sending.value
            return received
        }
        #expect(received.count == chunks.reduce(0) { $0 + $1.count }, "\(kind)")
        #expect(received == chunks.flatMap { $0 }, "\(kind): every byte in order")
    }
}
