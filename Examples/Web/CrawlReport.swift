import EventCore

/// What a crawl did.
public struct CrawlReport: Sendable {
    /// Pages downloaded (status 200).
    public var pages = 0
    /// Body bytes of those pages.
    public var bytes = 0
    /// Failed URLs, by kind ("timeout", "HTTP 404", ...; see ``FetchFailure/Kind``).
    public var errors: [String: Int] = [:]
    /// Links that could not be made into a URL to send, by reason ("too long",
    /// "invalid host", "invalid port": `WebURL.SkipReason`).
    public var skipped: [String: Int] = [:]
    /// Each failed URL and why.
    public var failures: [(url: String, reason: String)] = []
    /// Redirects followed.
    public var redirects = 0
    /// Fetches tried again after a back-off (connection errors, timeouts, 429, 5xx).
    public var retries = 0
    /// Why the `--records` file could not be written in full, if it could not.
    public var recordsError: String?
    /// Requests in flight now.
    public var inFlight = 0
    /// Connections opened.
    public var connections = 0
    public var wallSeconds = 0.0
    /// With a shared frontier: pages fetched by every process of the crawl
    /// (as Redis last said); nil without one.
    public var crawlPages: Int?
    /// With a shared frontier: why it failed (Redis unreachable, gone, or
    /// refusing the crawl); the crawl did not finish.
    public var frontierError: String?
    /// With a shared frontier: the Redis commands this process sent.
    public var frontierCommands: Int?
    /// The crawler's loop, as its monitor saw it: its delay (a probe every
    /// 10 ms), its time blocked and running, its slow callbacks.
    public var loop: LoopStatistics?

    public var errorCount: Int { errors.values.reduce(0, +) }
    public var pagesPerSecond: Double { wallSeconds > 0 ? Double(pages) / wallSeconds : 0 }

    /// The progress line: pages, in flight, errors, pages/s.
    public var progressLine: String {
        "\(pages) pages, \(inFlight) in flight, \(errorCount) errors, \(Int(pagesPerSecond.rounded())) pages/s"
    }
}
