import CHTTPParser
#if canImport(Glibc)
import Glibc
#endif

/// The limits a parser enforces, each with the status a server answers.
public struct HTTPLimits: Sendable, Equatable {
    /// The request target's length (414 above it).
    public var maxURIBytes = 8 * 1024
    /// The message head: the start line and the header lines with their line
    /// ends, up to and including the blank line's CRLF (431 above it).
    public var maxHeaderBytes = 16 * 1024
    /// Header fields per message (431 above it).
    public var maxHeaderCount = 100
    /// A body (413 above it for requests; a failed download for responses).
    public var maxBodyBytes = 1 << 20
    /// Empty lines tolerated before a message's start line (400 above it).
    /// RFC 9112 (2.2) asks a server to take at least one, for clients that
    /// end a body with an extra CRLF; nginx and h2o take a handful. A line is
    /// CRLF, a bare LF or a bare CR.
    public var maxEmptyLines = 4

    public init(maxURIBytes: Int = 8 * 1024, maxHeaderBytes: Int = 16 * 1024,
                maxHeaderCount: Int = 100, maxBodyBytes: Int = 1 << 20, maxEmptyLines: Int = 4) {
        self.maxURIBytes = maxURIBytes
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaderCount = maxHeaderCount
        self.maxBodyBytes = maxBodyBytes
        self.maxEmptyLines = maxEmptyLines
    }
}
