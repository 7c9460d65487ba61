/// Bytes received and not yet taken, cut into frames: lines, runs up to a
/// delimiter, fixed counts - SwiftNIO's `ByteToMessageDecoder` buffer,
/// asyncio's `StreamReader` buffer. Callback code appends what a
/// ``ConnectionDelegate`` receives and takes frames while there are any;
/// ``BufferedReader`` does the same for tasks. Every frame has a bound: a
/// peer that never sends the delimiter gets an error, not a buffer that
/// grows until the process dies.
///
/// ```swift
/// var lines = FramingBuffer()
/// func received(_ bytes: [UInt8]) throws {
///     lines.append(bytes)
///     while let line = try lines.takeLine(maxLength: 1024) { handle(line) }
/// }
/// ```
public struct FramingBuffer: Sendable {
    private var storage: [UInt8] = []
    /// Where the bytes not yet taken begin in `storage`.
    private var start = 0
    /// How far past `start` a search for the current delimiter found
    /// nothing (so more bytes are searched from there, not from the start).
    private var searched = 0

    /// An empty buffer.
    public init() {}

    /// The bytes not yet taken.
    public var count: Int { storage.count - start }

    /// Whether nothing is left to take.
    public var isEmpty: Bool { count == 0 }

    /// Appends received bytes.
    public mutating func append<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        // Drop what was taken once it is most of the storage: each byte is
        // moved at most once more on average.
        if start > 0 && start >= storage.count / 2 {
            storage.removeSubrange(0..<start)
            start = 0
        }
        storage.append(contentsOf: bytes)
    }

    /// Takes the bytes up to and including the first `delimiter`; nil if
    /// the delimiter has not arrived yet.
    ///
    /// - Throws: ``EventLoopError`` (``EventLoopError/Code/system(_:)`` with
    ///   `EMSGSIZE`) naming `maxLength` when that many bytes came without
    ///   the delimiter (asyncio's `LimitOverrunError`): the frame can never
    ///   be whole. The bytes stay in the buffer.
    public mutating func take(through delimiter: [UInt8], maxLength: Int) throws(EventLoopError) -> [UInt8]? {
        precondition(!delimiter.isEmpty, "an empty delimiter")
        let limit = maxLength + delimiter.count
        var index = start + max(searched - delimiter.count + 1, 0)
        let end = min(storage.count, start + limit)
        while index + delimiter.count <= end {
            if storage[index] == delimiter[0] && storage[index..<index + delimiter.count].elementsEqual(delimiter) {
                let frame = Array(storage[start..<index + delimiter.count])
                start = index + delimiter.count
                searched = 0
                return frame
            }
            index += 1
        }
        searched = end - start
        if count >= limit {
            throw EventLoopError(.system(.messageTooLong), operation: "read",
                                 detail: "no \(Self.describe(delimiter)) within \(maxLength) bytes")
        }
        return nil
    }

    /// Takes one line without its end (`\n` or `\r\n`), as UTF-8 (invalid
    /// bytes repaired); nil if the line has not ended yet.
    ///
    /// - Throws: as ``take(through:maxLength:)``, when `maxLength` bytes came
    ///   without a newline.
    public mutating func takeLine(maxLength: Int) throws(EventLoopError) -> String? {
        guard var line = try take(through: [UInt8(ascii: "\n")], maxLength: maxLength) else { return nil }
        line.removeLast()
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        return String(decoding: line, as: UTF8.self)
    }

    /// Takes exactly `count` bytes; nil if fewer are here.
    public mutating func take(exactly count: Int) -> [UInt8]? {
        guard self.count >= count else { return nil }
        return take(upTo: count)
    }

    /// Takes what is here, at most `maximum` bytes (empty if nothing is).
    public mutating func take(upTo maximum: Int) -> [UInt8] {
        let taken = Array(storage[start..<start + min(maximum, count)])
        start += taken.count
        searched = 0
        if start == storage.count {
            storage.removeAll(keepingCapacity: true)
            start = 0
        }
        return taken
    }

    private static func describe(_ delimiter: [UInt8]) -> String {
        delimiter == [10] ? "newline" : "delimiter \(String(decoding: delimiter, as: UTF8.self).debugDescription)"
    }
}
