import HTTP
#if canImport(Glibc)
import Glibc
import Resolver
#endif

public struct CrawlOptions: Sendable {
    /// Where the crawl starts: one URL or several. Each names a site
    /// (scheme, host and port) the crawl may follow links into; links to
    /// any other site are not followed.
    public var starts: [WebURL]
    /// The first start (the one a crawl of one site has).
    public var start: WebURL {
        get { starts[0] }
        set { starts[0] = newValue }
    }
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

    /// The User-Agent sent; its first word (up to a `/`) is the product
    /// token robots.txt groups are matched against.
    public var userAgent = "swift-libev-crawler/1.0"
    /// Follow links this many steps from the start at most; nil: no limit.
    public var maxDepth: Int?
    /// Regular expressions a URL must match one of to be crawled (none: any).
    public var allow: [String] = []
    /// Regular expressions a URL must match none of.
    public var deny: [String] = []
    /// Requests in flight to one host at most (Scrapy's CONCURRENT_REQUESTS_PER_DOMAIN).
    public var perHost = 8
    /// The least time between the starts of two requests to one host
    /// (Scrapy's DOWNLOAD_DELAY); a robots.txt's Crawl-delay raises it.
    public var delay = Duration.zero
    /// AutoThrottle, starting at this delay: the delay follows each host's
    /// latency (nil: off, as in Scrapy).
    public var autoThrottle: Duration?
    /// Retries per URL after a connection error, a timeout, 408, 429 or a 5xx.
    public var retries = 2
    /// The first retry's back-off (doubling each time, at most 30 s, with jitter).
    public var retryBackoff = Duration.milliseconds(500)
    /// The longest `Retry-After` waited for; a server asking more fails the URL.
    public var maxRetryAfter = Duration.seconds(120)
    /// Whether each host's robots.txt is fetched first and obeyed.
    public var obeysRobots = true
    /// Write a JSON line per URL to this file.
    public var recordsPath: String?
    /// For https: a PEM file of the authorities to trust instead of the system's.
    public var caFile: String?
    /// For https: skip the certificate's verification (named as insecure; off by default).
    public var insecure = false

    /// How host names are looked up (c-ares on the loop): the DNS servers,
    /// the hosts file. The start's host and the frontier's are names.
    public var resolver = ResolverOptions()

    /// The defaults, for a crawl of `start`'s site.
    public init(start: WebURL) { starts = [start] }

    /// The defaults, for a crawl of several sites, each from its start.
    ///
    /// - Precondition: `starts` is not empty.
    public init(starts: [WebURL]) {
        precondition(!starts.isEmpty, "a crawl starts somewhere")
        self.starts = starts
    }

    /// The sites of the crawl (each start's origin), each once, in order.
    public var sites: [WebURL] {
        var seen = Set<WebURL>()
        return starts.map(\.origin).filter { seen.insert($0).inserted }
    }
}
