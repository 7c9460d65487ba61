import CHTTPParser
#if canImport(Glibc)
import Glibc
#endif

/// Why a message was refused: the status a server answers with, what kind
/// of fault it was, and what was wrong.
public struct HTTPError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The kinds of fault, as a client reports them (a failed download counts
    /// under its kind) and a server tells them apart.
    public enum Kind: String, Sendable, CaseIterable {
        /// Not HTTP as RFC 9112 writes it: a bad start line, field, character or line end.
        case malformed = "malformed"
        /// The body's length cannot be trusted: conflicting or invalid
        /// Content-Length or Transfer-Encoding, a bad chunk size line, junk
        /// where a chunk's CRLF belongs (what request smuggling is made of).
        case badFraming = "bad framing"
        /// A version, method or transfer coding this side does not implement.
        case unsupported = "unsupported"
        /// A head over its byte limit, or with too many fields.
        case headTooLarge = "head too large"
        /// A request target over its limit.
        case targetTooLong = "target too long"
        /// A body over its limit.
        case bodyTooLarge = "body too large"
        /// The connection closed in the middle of a message.
        case truncated = "truncated"
        /// The message did not arrive in time.
        case timeout = "timeout"
    }

    /// The status that fits (400, 405, 408, 413, 414, 431, 501, 505; 502 for a bad response).
    public let status: Int
    /// What kind of fault it was.
    public let kind: Kind
    /// What was wrong, for the response's body and the logs.
    public let reason: String

    /// - Parameter kind: the kind of fault; by default the one `status` stands for
    ///   (408 timeout, 413 body, 414 target, 431 head, 501 and 505 unsupported, others malformed).
    public init(_ status: Int, _ reason: String, kind: Kind? = nil) {
        self.status = status
        self.reason = reason
        self.kind = kind ?? {
            switch status {
            case 408: .timeout
            case 413: .bodyTooLarge
            case 414: .targetTooLong
            case 431: .headTooLarge
            case 405, 501, 505: .unsupported
            default: .malformed
            }
        }()
    }

    public var description: String { "\(status) \(HTTPStatus.phrase(status)): \(reason)" }
}
