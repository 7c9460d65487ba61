import EventCore
import HTTP
#if canImport(Glibc)
import Glibc
#endif

/// One URL to fetch, and the redirects that led here.
struct CrawlJob {
    let url: WebURL
    /// The URLs that redirected here, first first.
    var chain: [WebURL] = []
    var redirects: Int { chain.count }
}

/// A failed fetch: the kind it counts under and what happened.

/// The crawl's scheduler, parser and pipeline (Scrapy's parts), shared by
/// every engine: the frontier (each URL once, same host only), the links of
/// each page, the counts and the saved pages. Used on the loop's thread.
final class Crawl {
    let options: CrawlOptions
    private var frontier: [CrawlJob] = []
    private var frontierStart = 0
    private var seen: Set<WebURL> = []
    private var scheduledPages = 0
    var report = CrawlReport()
    let started = monotonicNow()

    /// The frontier in Redis, shared with other processes; nil: this one's own.
    private(set) var shared: RedisFrontier?
    /// Writes the pages under `--out` off the loop (nil without `--out`).
    private var saver: PageSaver?
    /// Called when jobs arrive from the shared frontier, or it is over: the
    /// engine hands out jobs (or ends).
    var onJobs: () -> Void = {}

    private init(_ options: CrawlOptions) {
        self.options = options
    }

    /// A crawl on `loop`: its own frontier, or the shared one of `options.frontier`.
    ///
    /// - Throws: ``Redis/RedisError`` if hiredis cannot even start connecting.
    static func make<L: EventLoop>(_ options: CrawlOptions, loop: L) throws -> Crawl {
        let crawl = Crawl(options)
        if let directory = options.outDirectory {
            crawl.saver = PageSaver(directory: directory, executor: loop.executor, crawl: crawl)
        }
        if let address = options.frontier {
            let shared = try RedisFrontier(loop: loop, address: address, lease: options.lease, resume: options.resume,
                                           resolver: options.resolver)
            shared.crawl = crawl
            crawl.shared = shared
            shared.open(start: CrawlJob(url: options.start))
        } else {
            _ = crawl.schedule(options.start)
        }
        return crawl
    }

    var hasJobs: Bool { localJobs > 0 }
    /// Jobs here, not yet handed out.
    var localJobs: Int { frontier.count - frontierStart }
    var isFinished: Bool { !hasJobs && report.inFlight == 0 && (shared?.isOver ?? true) }

    /// Jobs claimed from the shared frontier.
    func received(_ jobs: [CrawlJob]) {
        frontier.append(contentsOf: jobs)
        onJobs()
    }

    /// The shared frontier failed: the jobs not started are dropped here (they
    /// stay leased in Redis, for a later `--resume`); the fetches in flight finish.
    func frontierFailed() {
        frontier = []
        frontierStart = 0
        report.frontierError = shared?.failure
        onJobs()
    }

    /// The shared frontier held something that is not a job (another
    /// program's entry, or a damaged one): a failure in the report.
    func badEntry(_ text: String, _ reason: String) {
        record(String(text.prefix(200)), FetchFailure(.badFrontierEntry, "not a job of this crawler's frontier (\(reason)); taken off the queue"))
    }

    /// The shared frontier held a job for another site (planted, or a crawl
    /// of another host under the same prefix): skipped, never requested.
    func foreignJob(_ job: CrawlJob) {
        report.skipped["another site's job in the frontier", default: 0] += 1
    }

    /// Counts `failure` by its kind and lists it under `url`.
    private func record(_ url: String, _ failure: FetchFailure) {
        report.errors[failure.kind.description, default: 0] += 1
        report.failures.append((url, failure.reason))
    }

    /// The crawl is over in every process.
    func frontierFinished() {
        onJobs()
    }

    func next() -> CrawlJob? {
        guard hasJobs else { return nil }
        let job = frontier[frontierStart]
        frontierStart += 1
        if frontierStart > 1024 && frontierStart * 2 > frontier.count {
            frontier.removeFirst(frontierStart)
            frontierStart = 0
        }
        report.inFlight += 1
        return job
    }

    /// Whether `url` is on the crawled site (the start's host and port).
    func isSameSite(_ url: WebURL) -> Bool {
        url.host == options.start.host && url.port == options.start.port
    }

    /// Adds `url` unless it was seen, is elsewhere, or the page budget is spent.
    private func schedule(_ url: WebURL) -> Bool {
        guard isSameSite(url) else { return false }
        guard scheduledPages < options.maxPages else { return false }
        guard seen.insert(url).inserted else { return false }
        scheduledPages += 1
        frontier.append(CrawlJob(url: url))
        return true
    }

    /// A response arrived: a page (links to the frontier, bytes to the
    /// pipeline), a redirect (followed), or an error status.
    func completed(_ job: CrawlJob, _ response: HTTPMessage) {
        switch response.status {
        case 200:
            if let saver {
                // A page is done when it is on disk: it stays in flight until
                // the pool has written it (see saved(_:bytes:_:)).
                saver.save(job.url, response.body)
            } else {
                report.inFlight -= 1
                report.pages += 1
                report.bytes += response.body.count
            }
            var found: [RedisFrontier.Found] = []
            if (response.header("Content-Type") ?? "text/html").lowercased().contains("html") {
                response.body.withUnsafeBytes { body in forEachHref(in: body) { link in
                    switch job.url.resolveLink(link) {
                    case .url(let url):
                        if shared == nil {
                            _ = schedule(url)
                        } else if isSameSite(url) && seen.insert(url).inserted {
                            // A link this process sent once is in Redis's seen-set already.
                            found.append(.link(CrawlJob(url: url)))
                        }
                    case .skipped(let reason): report.skipped[reason.description, default: 0] += 1
                    case .ignored: break
                    }
                } }
            }
            shared?.done(job, page: true, found: found)
        case 301, 302, 303, 307, 308:
            let target: WebURL
            switch response.header("Location").map({ job.url.resolveLink($0) }) {
            case .url(let url):
                target = url
            case .skipped(let reason):
                return fail(job, FetchFailure(.badRedirect, "HTTP \(response.status) to a Location that cannot be sent (\(reason))"))
            case .ignored, nil:
                return fail(job, FetchFailure(.badRedirect, "HTTP \(response.status) without a usable Location"))
            }
            if job.redirects >= options.maxRedirects {
                return fail(job, FetchFailure(.tooManyRedirects, "more than \(options.maxRedirects) redirects (last to \(target))"))
            }
            report.inFlight -= 1
            report.redirects += 1
            guard isSameSite(target) else {
                shared?.done(job, page: false, found: [])
                return
            }
            // Within its own chain a redirect is followed again (a loop ends
            // at the limit); to a page the crawl has seen, not (each URL once).
            let looping = job.chain.contains(target) || target == job.url
            var next = CrawlJob(url: target)
            next.chain = job.chain + [job.url]
            if let shared { return shared.done(job, page: false, found: [looping ? .again(next) : .redirect(next)]) }
            guard looping || seen.insert(target).inserted else { return }
            frontier.append(next)
        default:
            fail(job, FetchFailure(.status(response.status), HTTPStatus.describe(response.status)))
        }
    }

    func fail(_ job: CrawlJob, _ failure: FetchFailure) {
        report.inFlight -= 1
        record(job.url.description, failure)
        shared?.done(job, page: false, found: [])
    }

    /// Gives a job back (a keep-alive connection closed before it was sent).
    func retry(_ job: CrawlJob) {
        report.inFlight -= 1
        frontier.insert(job, at: frontierStart)
    }

    var snapshot: CrawlReport {
        var copy = report
        copy.wallSeconds = monotonicNow() - started
        if let shared {
            copy.crawlPages = shared.crawlPages
            copy.frontierCommands = shared.commands
        }
        return copy
    }

    /// The pipeline's store wrote a page, or could not: a page that could
    /// not be saved is a failure of that page, by reason (loop thread).
    func saved(_ url: WebURL, bytes: Int, _ outcome: Result<Void, FetchFailure>) {
        report.inFlight -= 1
        switch outcome {
        case .success:
            report.pages += 1
            report.bytes += bytes
        case .failure(let failure):
            record(url.description, failure)
        }
        onJobs() // the last page saved may end the crawl
    }

    /// The request for `job`.
    static func request(_ job: CrawlJob) -> [UInt8] {
        Array("GET \(job.url.target) HTTP/1.1\r\nHost: \(job.url.authority)\r\nUser-Agent: swift-libev-crawler\r\nAccept: text/html, */*\r\n\r\n".utf8)
    }
}

/// The pipeline's store: each page under ``WebURL/fileName`` (unique per
/// URL), written on a pool thread - a write to disk must not hold the loop -
/// and every byte of it, or a failure of the page naming the call.
final class PageSaver {
    private let directory: String
    private let pool = ThreadPool(threads: 2)
    private let deliver: (WebURL, [UInt8]) -> Void

    init<Executor: EventLoopExecutor>(directory: String, executor: Executor, crawl: Crawl) {
        self.directory = directory
        // Checked on the loop's thread, where the results are delivered; weak,
        // since the crawl holds this saver (a cycle that outlived the crawl:
        // LeakSanitizer found the whole crawl, loop and pool leaked at exit).
        let bound = LoopBound(unchecked: WeakCrawl(crawl), loop: executor)
        let pool = self.pool
        deliver = { url, body in
            let path = directory + "/" + url.fileName
            do {
                try pool.submit({ try PageSaver.write(body, to: path) }, deliveringTo: executor) { _, result in
                    bound.value.crawl?.saved(url, bytes: body.count, result.mapError { error in
                        FetchFailure(.save, "\(error)")
                    })
                }
            } catch {
                bound.value.crawl?.saved(url, bytes: body.count, .failure(FetchFailure(.save, "\(error)")))
            }
        }
    }

    func save(_ url: WebURL, _ body: [UInt8]) { deliver(url, body) }

    /// The crawl a saver reports to, without keeping it alive.
    private final class WeakCrawl {
        weak var crawl: Crawl?
        init(_ crawl: Crawl) { self.crawl = crawl }
    }

    /// Writes all of `body` to a new file at `path` (pool thread).
    /// - Throws: ``EventCore/EventLoopError`` naming the call and the path: open, a write (ENOSPC, EIO, ...), close.
    static func write(_ body: [UInt8], to path: String) throws(EventLoopError) {
        let fd = try systemCall("open(\(path))") { open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644) }
        let failure: EventLoopError? = body.withUnsafeBytes { bytes in
            var done = 0
            while done < bytes.count {
                let written = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
                if written == -1 && errno == EINTR { continue }
                if written == -1 { return EventLoopError.system("write(\(path))") }
                if written == 0 { return EventLoopError.system("write(\(path))", .noSpace) }
                done += written
            }
            return nil
        }
        if let failure {
            close(fd)
            unlink(path) // no truncated file left behind
            throw failure
        }
        // A delayed write error (NFS, a full disk) can surface at close.
        if close(fd) == -1 {
            let error = EventLoopError.system("close(\(path))")
            unlink(path)
            throw error
        }
    }
}
