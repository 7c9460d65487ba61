import CZlib

/// The `Content-Encoding`s a client undoes (RFC 9110 §8.4): `gzip` (and
/// `x-gzip`), `deflate` - the zlib format RFC 9110 names, or the raw
/// deflate stream some servers send instead, as browsers and curl accept it -
/// and `identity`, with zlib, and never more than a limit of decoded bytes:
/// a small body that inflates to a gigabyte (a decompression bomb) is an
/// error, not a gigabyte of memory.
public enum ContentDecoding {
    /// What a client says it accepts: `Accept-Encoding: gzip, deflate`.
    public static let accepted = "gzip, deflate"

    /// Why a body could not be decoded.
    public struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        public enum Kind: Sendable, Equatable {
            /// Decoded, it is larger than the limit.
            case tooLarge
            /// A coding this side does not implement (`br`, `zstd`, ...).
            case unsupported
            /// Not a valid stream of its coding (or cut short).
            case corrupt
        }

        public let kind: Kind
        /// What was wrong, naming the coding.
        public let reason: String
        public var description: String { reason }
    }

    /// The body `body` stands for, under the codings of a `Content-Encoding`
    /// field (`value`; nil or `identity`: the body itself), undone last
    /// first, holding at most `limit` bytes after each step.
    ///
    /// - Throws: ``Failure``: `tooLarge` when a decoded step would exceed
    ///   `limit`, `unsupported` for an unknown coding (or more than 4 of
    ///   them), `corrupt` for a damaged or truncated stream.
    public static func decode(_ body: [UInt8], contentEncoding value: String?, limit: Int) throws(Failure) -> [UInt8] {
        guard let value else { return body }
        let codings = value.split(separator: ",").map { $0.trimmingSpaces.lowercased() }.filter { !$0.isEmpty && $0 != "identity" }
        guard codings.count <= 4 else {
            throw Failure(kind: .unsupported, reason: "Content-Encoding \"\(value.prefix(100))\" stacks \(codings.count) codings (4 at most)")
        }
        var bytes = body
        for coding in codings.reversed() {
            switch coding {
            case "gzip", "x-gzip": bytes = try inflate(bytes, windowBits: 15 + 16, coding: coding, limit: limit)
            case "deflate":
                do {
                    bytes = try inflate(bytes, windowBits: 15, coding: coding, limit: limit)
                } catch where error.kind == .corrupt {
                    bytes = try inflate(bytes, windowBits: -15, coding: coding, limit: limit) // raw deflate
                }
            default:
                throw Failure(kind: .unsupported, reason: "Content-Encoding \"\(coding.prefix(40))\" is not one the crawler asked for (\(accepted))")
            }
        }
        return bytes
    }

    /// `input` inflated with zlib (`windowBits` 31: gzip, 15: zlib, -15: raw).
    private static func inflate(_ input: [UInt8], windowBits: Int32, coding: String, limit: Int) throws(Failure) -> [UInt8] {
        var stream = z_stream()
        guard czlib_inflate_init(&stream, windowBits) == Z_OK else {
            throw Failure(kind: .corrupt, reason: "zlib could not start inflating (\(coding))")
        }
        defer { inflateEnd(&stream) }
        var output: [UInt8] = []
        output.reserveCapacity(min(limit, max(input.count * 4, 4096)))
        let chunk = 64 * 1024
        var status: Int32 = Z_OK
        var failure: Failure?
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: chunk) { buffer in
            input.withUnsafeBufferPointer { source in
                stream.next_in = UnsafeMutablePointer(mutating: source.baseAddress)
                stream.avail_in = UInt32(source.count)
                while true {
                    stream.next_out = buffer.baseAddress
                    stream.avail_out = UInt32(chunk)
                    status = CZlib.inflate(&stream, Z_NO_FLUSH)
                    let produced = chunk - Int(stream.avail_out)
                    if status != Z_OK && status != Z_STREAM_END && status != Z_BUF_ERROR {
                        let message = stream.msg.map { String(cString: $0) } ?? "error \(status)"
                        failure = Failure(kind: .corrupt, reason: "the body is not valid \(coding) (zlib: \(message))")
                        return
                    }
                    if output.count + produced > limit {
                        failure = Failure(kind: .tooLarge, reason: "the body decoded from \(coding) is larger than \(limit) bytes (\(input.count) bytes sent)")
                        return
                    }
                    output.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[..<produced]))
                    if status == Z_STREAM_END {
                        // gzip members may follow one another (RFC 1952 §2.2): one body.
                        guard windowBits > 15 && stream.avail_in > 0 else { return }
                        inflateReset(&stream)
                        continue
                    }
                    if produced == 0 && (status == Z_BUF_ERROR || stream.avail_in == 0) {
                        failure = Failure(kind: .corrupt, reason: "the \(coding) body ends before its stream does")
                        return
                    }
                }
            }
        }
        if let failure { throw failure }
        return output
    }
}

extension Substring {
    fileprivate var trimmingSpaces: Substring {
        var text = self
        while text.first == " " || text.first == "\t" { text.removeFirst() }
        while text.last == " " || text.last == "\t" { text.removeLast() }
        return text
    }
}
