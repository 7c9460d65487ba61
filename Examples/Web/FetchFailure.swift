import HTTP

public struct FetchFailure: Error, Sendable {
    /// What kind of failure: the crawl's report counts failed URLs by it.
    public enum Kind: Hashable, Sendable, CustomStringConvertible {
        /// The connection could not be made.
        case connect
        /// The connection failed during the request (reset, ...).
        case connection
        /// The TLS handshake failed (unknown CA, name mismatch, expired, protocol).
        case tls
        /// No complete response within the request's timeout.
        case timeout
        /// A response the parser refused, by its kind (truncated, bad framing, head too large, ...).
        case response(HTTPError.Kind)
        /// A status other than 200 or a redirect.
        case status(Int)
        /// A redirect without a usable Location.
        case badRedirect
        /// More redirects than allowed.
        case tooManyRedirects
        /// The page could not be saved under `--out`.
        case save
        /// An entry of the shared frontier's queue that is not a job.
        case badFrontierEntry
        /// A body whose `Content-Encoding` could not be undone (corrupt,
        /// unknown, or larger than the body limit decoded: a bomb).
        case decoding
        /// The host's robots.txt could not be read (server errors, a file
        /// over the body limit): every page of the host is taken as
        /// disallowed (RFC 9309 §2.3.1.4).
        case robots

        public var description: String {
            switch self {
            case .connect: "connect"
            case .connection: "connection"
            case .tls: "TLS"
            case .timeout: "timeout"
            case .response(let kind): kind.rawValue
            case .status(let status): "HTTP \(status)"
            case .badRedirect: "bad redirect"
            case .tooManyRedirects: "too many redirects"
            case .save: "save"
            case .badFrontierEntry: "bad frontier entry"
            case .decoding: "content encoding"
            case .robots: "robots.txt unreachable"
            }
        }
    }

    public let kind: Kind
    /// What happened, for the report.
    public let reason: String

    /// Whether trying again later may succeed: a connection that failed or
    /// dropped, a timeout (Scrapy's RetryMiddleware retries the same).
    var isTransient: Bool {
        switch kind {
        case .connect, .connection, .timeout: true
        case .response(let kind): kind == .truncated
        default: false
        }
    }

    init(_ kind: Kind, _ reason: String) {
        self.kind = kind
        self.reason = reason
    }

    /// No complete response within the request's timeout.
    static func timedOut(after timeout: Duration) -> FetchFailure {
        FetchFailure(.timeout, "no complete response within \(formatSeconds(timeout.inSeconds)) s")
    }

    /// The server closed the connection before the response ended.
    static let truncated = FetchFailure(.response(.truncated), "the server closed the connection before the response ended")

    /// A response the parser refused, by its kind.
    init?(_ error: HTTPError?) {
        guard let error else { return nil }
        self.init(.response(error.kind), error.reason)
    }
}
