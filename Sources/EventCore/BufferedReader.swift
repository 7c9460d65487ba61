/// A byte stream a task reads from: a socket (``AsyncSocket``), a pipe.
public protocol AsyncByteStream: AnyObject, Sendable {
    /// Reads what is available into `buffer`, waiting until something is:
    /// the byte count, 0 at the end of the stream.
    nonisolated(nonsending) func read(into buffer: UnsafeMutableRawBufferPointer) async throws -> Int
}

extension AsyncSocket: AsyncByteStream {}

/// Lines, delimited runs and exact counts read from a byte stream, through a
/// bounded buffer: asyncio's `StreamReader` (`readline`, `readuntil`,
/// `readexactly`), SwiftNIO's `ByteToMessageDecoder` for tasks.
///
/// ```swift
/// let reader = BufferedReader(socket)
/// while let line = try await reader.readLine(maxLength: 1024) {
///     try await socket.write("you said: \(line)\n")
/// }
/// ```
///
/// The buffer holds at most `capacity` bytes, so no frame longer than that
/// can be read (a longer `maxLength` is cut to it), and a peer that never
/// sends the newline gets an error naming the limit, not the process's
/// memory. One task reads through a reader; the stream's writes are
/// separate (a socket may be written by other tasks meanwhile).
public final class BufferedReader<Stream: AsyncByteStream> {
    /// The stream read from.
    public let stream: Stream
    /// The most bytes the reader buffers.
    public let capacity: Int
    private var buffer = FramingBuffer()
    private var ended = false

    /// A reader of `stream` buffering at most `capacity` bytes (64 KiB by default).
    public init(_ stream: Stream, capacity: Int = 64 * 1024) {
        self.stream = stream
        self.capacity = max(capacity, 1)
    }

    /// Bytes read from the stream and not yet returned.
    public var bufferedCount: Int { buffer.count }

    /// The next line without its end (`\n` or `\r\n`); a last line the
    /// stream ends without a newline comes back as it is; nil at the end.
    ///
    /// - Parameter maxLength: the longest line accepted (at most ``capacity``).
    /// - Throws: ``EventLoopError``: `EMSGSIZE` naming the limit when a line
    ///   is longer (its bytes stay buffered); the stream's errors.
    nonisolated(nonsending) public func readLine(maxLength: Int = 8192) async throws -> String? {
        guard var line = try await read(through: [UInt8(ascii: "\n")], maxLength: maxLength, partialAtEnd: true) else { return nil }
        if line.last == UInt8(ascii: "\n") { line.removeLast() }
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        return String(decoding: line, as: UTF8.self)
    }

    /// The bytes up to and including the next `delimiter`; nil at the end of
    /// the stream with nothing buffered.
    ///
    /// - Throws: ``EventLoopError``: `EMSGSIZE` when `maxLength` bytes came
    ///   without it; ``EventLoopError/Code/endOfStream`` when the stream
    ///   ended in the middle of a run (asyncio's `IncompleteReadError`; the
    ///   run's bytes are dropped with it, as asyncio resets its buffer).
    nonisolated(nonsending) public func read(until delimiter: [UInt8], maxLength: Int = 8192) async throws -> [UInt8]? {
        try await read(through: delimiter, maxLength: maxLength, partialAtEnd: false)
    }

    nonisolated(nonsending) private func read(through delimiter: [UInt8], maxLength: Int, partialAtEnd: Bool) async throws -> [UInt8]? {
        let maxLength = min(maxLength, capacity - delimiter.count)
        while true {
            if let frame = try buffer.take(through: delimiter, maxLength: maxLength) { return frame }
            if try await fill() { continue }
            if buffer.isEmpty { return nil }
            let partial = buffer.take(upTo: buffer.count)
            if partialAtEnd { return partial }
            throw EventLoopError(.endOfStream, operation: "read(until:)",
                                 detail: "\(partial.count) bytes came and no delimiter before the end")
        }
    }

    /// Exactly `count` bytes (any count: beyond ``capacity`` they go straight
    /// into the result).
    ///
    /// - Throws: ``EventLoopError/Code/endOfStream`` when the stream ends
    ///   first, saying how many came (they are dropped with it); the
    ///   stream's errors.
    nonisolated(nonsending) public func read(exactly count: Int) async throws -> [UInt8] {
        var result: [UInt8] = []
        while result.count < count {
            if let rest = buffer.take(exactly: count - result.count) {
                result += rest
                break
            }
            result += buffer.take(upTo: buffer.count)
            guard try await fill() else {
                throw EventLoopError(.endOfStream, operation: "read(exactly: \(count))",
                                     detail: "\(result.count) of \(count) bytes came before the end")
            }
        }
        return result
    }

    /// What is buffered, or else what the stream has now, at most `maximum`
    /// bytes, waiting until there is something; empty at the end.
    nonisolated(nonsending) public func read(maximum: Int = 64 * 1024) async throws -> [UInt8] {
        if buffer.isEmpty { _ = try await fill() }
        return buffer.take(upTo: maximum)
    }

    /// Reads once more from the stream into the buffer, at most what fits:
    /// false at the end of the stream (or with the buffer full).
    nonisolated(nonsending) private func fill() async throws -> Bool {
        guard !ended else { return false }
        let room = capacity - buffer.count
        guard room > 0 else { return false }
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: min(room, 64 * 1024), alignment: 1)
        defer { chunk.deallocate() }
        let count = try await stream.read(into: chunk)
        if count == 0 {
            ended = true
            return false
        }
        buffer.append(chunk[..<count])
        return true
    }

    /// The stream's bytes as they come, buffered ones first, until its end.
    public var chunks: Chunks { Chunks(reader: self) }

    /// The chunks of a ``BufferedReader``, until the end of its stream.
    public struct Chunks: AsyncSequence {
        /// A chunk of bytes.
        public typealias Element = [UInt8]
        let reader: BufferedReader

        /// An iterator of the chunks.
        public func makeAsyncIterator() -> Iterator { Iterator(reader: reader) }

        /// Reads the chunks one by one.
        public struct Iterator: AsyncIteratorProtocol {
            let reader: BufferedReader

            /// The next chunk; nil at the end of the stream.
            public mutating func next() async throws -> [UInt8]? {
                let chunk = try await reader.read()
                return chunk.isEmpty ? nil : chunk
            }
        }
    }
}
