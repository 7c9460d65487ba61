import HTTP
#if canImport(Glibc)
import Glibc
import Resolver
#endif

public struct CrawlOptions: Sendable {
    /// Where to start; only URLs of its host and port are followed.
    public var start: WebURL
    /// Connections at once.
    public var concurrency = 16
    /// Pages to fetch at most (redirects do not count).
    public var maxPages = 100_000
    /// Save pages under this directory.
    public var outDirectory: String?
    /// The time one request may take: connect, send, and the whole response.
    public var timeout = Duration.seconds(10)
    /// Redirects followed per URL.
    public var maxRedirects = 10
    /// Response limits: 100 header fields, a 64 KiB head, an 8 MiB body.
    public var limits = HTTPLimits(maxURIBytes: 8 * 1024, maxHeaderBytes: 64 * 1024, maxHeaderCount: 100, maxBodyBytes: 8 << 20)
    /// Share the crawl with other processes through this Redis frontier;
    /// nil: the frontier is this process's own.
    public var frontier: FrontierAddress?
    /// With ``frontier``: continue a crawl stopped as a whole (every process
    /// gone), instead of refusing a frontier that holds one.
    public var resume = false
    /// With ``frontier``: how long a process's claim on its jobs lasts
    /// without renewal (renewed every third of it); after that, others take
    /// them back.
    public var lease = Duration.seconds(10)
    /// Called about four times a second with the crawl so far (the progress line).
    public var progress: (@Sendable (CrawlReport) -> Void)?

    /// The defaults, for a crawl of `start`.
    /// How host names are looked up (c-ares on the loop): the DNS servers,
    /// the hosts file. The start's host and the frontier's are names.
    public var resolver = ResolverOptions()

    public init(start: WebURL) { self.start = start }
}
