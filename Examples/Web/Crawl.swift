import EventCore
import HTTP
import TLS
#if canImport(Glibc)
import Glibc
#endif

/// One URL to fetch, and the redirects that led here.
struct CrawlJob {
    let url: WebURL
    /// The URLs that redirected here, first first.
    var chain: [WebURL] = []
    var redirects: Int { chain.count }
    /// Links followed from the start to here (the start is 0; a redirect keeps its page's).
    var depth = 0
    /// The page whose link this is (sent as `Referer`).
    var referrer: WebURL?
    /// What the fetch is for.
    var purpose = Purpose.page
    /// Retries made so far (the budget is `--retries`).
    var attempts = 0
    /// Not to start before this monotonic time (a retry's back-off).
    var notBefore = 0.0
    /// When it was handed out (the record's time, AutoThrottle's latency).
    var started = 0.0

    enum Purpose { case page, robots }
}

/// What the crawl keeps of one site (scheme, host and port): its queue,
/// its politeness (requests in flight, the delay between starts) and its
/// robots.txt.
final class HostState {
    let origin: WebURL
    private var queue: [CrawlJob] = []
    private var queueStart = 0
    /// Retries waiting for their back-off, each with its `notBefore`.
    var waiting: [CrawlJob] = []
    var inFlight = 0
    /// When the next request to the host may start (monotonic seconds).
    var nextStart = 0.0
    /// The delay between two requests' starts: `--delay`, raised by the
    /// robots.txt's Crawl-delay; AutoThrottle moves it above that floor.
    var delay: Double
    var minimumDelay: Double
    var robots = Robots.unknown
    /// The robots.txt fetch to make next (a retry, a redirect's target).
    var robotsJob: CrawlJob?
    /// With a shared frontier and a delay: the start time Redis reserved
    /// for this process's next request to the host, or a reservation asked.
    var slot: Double?
    var reservingSlot = false

    enum Robots {
        case unknown, fetching
        case rules(RobotsTxt)
        /// Unreadable: every page is disallowed, failing so.
        case unreachable(FetchFailure)
    }

    init(_ origin: WebURL, delay: Double) {
        self.origin = origin
        self.delay = delay
        self.minimumDelay = delay
    }

    var queued: Int { queue.count - queueStart + waiting.count }

    func append(_ job: CrawlJob) { queue.append(job) }
    func putBack(_ job: CrawlJob) {
        if queueStart > 0 {
            queueStart -= 1
            queue[queueStart] = job
        } else {
            queue.insert(job, at: 0)
        }
    }

    /// The next job that may start at `now`: a retry whose back-off is over,
    /// else the queue's first; `earliest` lowered to when a waiting retry may.
    func pop(now: Double, earliest: inout Double?) -> CrawlJob? {
        if let index = waiting.firstIndex(where: { $0.notBefore <= now }) {
            return waiting.remove(at: index)
        }
        if let soonest = waiting.map(\.notBefore).min() { earliest = min(earliest ?? soonest, soonest) }
        guard queueStart < queue.count else { return nil }
        let job = queue[queueStart]
        queueStart += 1
        if queueStart > 1024 && queueStart * 2 > queue.count {
            queue.removeFirst(queueStart)
            queueStart = 0
        }
        return job
    }

    func dropAll() -> Int {
        let count = queued
        queue = []
        queueStart = 0
        waiting = []
        return count
    }
}

/// The crawl's scheduler, parser and pipeline (Scrapy's parts), shared by
/// every engine: the frontier (each URL once, same site only), the
/// politeness of a good crawler (robots.txt, a delay and a connection cap per
/// host, AutoThrottle, retries with back-off), the links of each page, the
/// counts, the records and the saved pages. Used on the loop's thread.
final class Crawl {
    let options: CrawlOptions
    private var hosts: [WebURL: HostState] = [:]
    private var hostOrder: [HostState] = []
    private var nextHost = 0
    private var seen: Set<WebURL> = []
    private var scheduledPages = 0
    var report = CrawlReport()
    let started = monotonicNow()
    /// The robots.txt product token: the User-Agent's first word.
    let agentToken: String
    private let allow: [Regex<AnyRegexOutput>]
    private let deny: [Regex<AnyRegexOutput>]

    /// The frontier in Redis, shared with other processes; nil: this one's own.
    private(set) var shared: RedisFrontier?
    /// Writes the pages under `--out` off the loop (nil without `--out`).
    private var saver: PageSaver?
    /// The per-page records (`--records`).
    private var records: CrawlRecords?
    /// Called when jobs arrive from the shared frontier, when a delay or a
    /// back-off is over, or when the crawl is over: the engine hands out jobs (or ends).
    var onJobs: () -> Void = {}
    private let after: (Duration, @escaping () -> Void) -> any Cancellable
    private var wake: (timer: any Cancellable, at: Double)?

    private init(_ options: CrawlOptions, after: @escaping (Duration, @escaping () -> Void) -> any Cancellable) throws {
        self.options = options
        self.after = after
        agentToken = String(options.userAgent.prefix { $0 != "/" && $0 != " " })
        allow = try options.allow.map { try Regex($0) }
        deny = try options.deny.map { try Regex($0) }
    }

    /// A crawl on `loop`: its own frontier, or the shared one of `options.frontier`.
    ///
    /// - Throws: ``Redis/RedisError`` if hiredis cannot even start connecting;
    ///   an error naming the `--records` file if it cannot be made.
    static func make<L: EventLoop>(_ options: CrawlOptions, loop: L) throws -> Crawl {
        let crawl = try Crawl(options) { delay, callback in loop.schedule(after: delay, callback) }
        if let directory = options.outDirectory {
            crawl.saver = PageSaver(directory: directory, executor: loop.executor, crawl: crawl)
        }
        if let path = options.recordsPath { crawl.records = try CrawlRecords(path: path) }
        if let address = options.frontier {
            // rediss://: TLS with the crawl's trust (--ca-file, --insecure).
            let tls = try address.usesTLS
                ? TLSContext(.client(caFile: options.caFile, verifiesPeer: !options.insecure, applicationProtocols: [],
                                     handshakeTimeout: .seconds(5)))
                : nil
            let shared = try RedisFrontier(loop: loop, address: address, lease: options.lease, resume: options.resume,
                                           resolver: options.resolver, tls: tls)
            shared.crawl = crawl
            crawl.shared = shared
            shared.open(starts: options.starts.map { CrawlJob(url: $0) })
        } else {
            for start in options.starts { _ = crawl.schedule(CrawlJob(url: start)) }
        }
        return crawl
    }

    deinit { wake?.timer.cancel() }

    /// Jobs here, not yet handed out (some may wait for a delay or a back-off).
    private(set) var localJobs = 0
    var isFinished: Bool { localJobs == 0 && report.inFlight == 0 && (shared?.isOver ?? true) }

    private func host(_ url: WebURL) -> HostState {
        let origin = url.origin
        if let host = hosts[origin] { return host }
        let host = HostState(origin, delay: options.autoThrottle.map { max($0.inSeconds, options.delay.inSeconds) } ?? options.delay.inSeconds)
        host.minimumDelay = options.delay.inSeconds
        hosts[origin] = host
        hostOrder.append(host)
        return host
    }

    private func enqueue(_ job: CrawlJob) {
        host(job.url).append(job)
        localJobs += 1
    }

    /// Jobs claimed from the shared frontier.
    func received(_ jobs: [CrawlJob]) {
        for job in jobs { enqueue(job) }
        onJobs()
    }

    /// The shared frontier failed: the jobs not started are dropped here (they
    /// stay leased in Redis, for a later `--resume`); the fetches in flight finish.
    func frontierFailed() {
        for host in hostOrder { localJobs -= host.dropAll() }
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

    /// The next job to start now, or nil: none queued, or each host's
    /// politeness says wait (its robots.txt is being read, its connections
    /// are all busy, its delay or a back-off is not over - then `onJobs`
    /// is called when it is).
    func next() -> CrawlJob? {
        guard localJobs > 0 else { return nil }
        let now = monotonicNow()
        var earliest: Double?
        for offset in 0..<hostOrder.count {
            let host = hostOrder[(nextHost + offset) % hostOrder.count]
            if let job = take(from: host, now: now, earliest: &earliest) {
                nextHost = (nextHost + offset + 1) % hostOrder.count
                return job
            }
        }
        if let earliest { wake(at: earliest) }
        return nil
    }

    private func take(from host: HostState, now: Double, earliest: inout Double?) -> CrawlJob? {
        guard host.queued > 0 else { return nil }
        if options.obeysRobots {
            switch host.robots {
            case .unknown:
                var job = host.robotsJob ?? CrawlJob(url: WebURL(host: host.origin.host, port: host.origin.port, target: "/robots.txt",
                                                                   secure: host.origin.isSecure), purpose: .robots)
                if job.notBefore > now {
                    earliest = min(earliest ?? job.notBefore, job.notBefore)
                    return nil
                }
                host.robotsJob = nil
                host.robots = .fetching
                job.started = now
                host.inFlight += 1
                report.inFlight += 1
                return job
            case .fetching:
                return nil // its pages wait for the rules
            case .rules, .unreachable:
                break
            }
        }
        guard host.inFlight < options.perHost else { return nil }
        if host.nextStart > now {
            earliest = min(earliest ?? host.nextStart, host.nextStart)
            return nil
        }
        if shared != nil && host.delay > 0 {
            // The delay is the crawl's, not this process's: Redis hands out
            // the start times (see RedisFrontier.reserveStart).
            guard let slot = host.slot else {
                reserveSlot(host)
                return nil
            }
            if slot > now {
                earliest = min(earliest ?? slot, slot)
                return nil
            }
        }
        while var job = host.pop(now: now, earliest: &earliest) {
            localJobs -= 1
            switch host.robots {
            case .unreachable(let failure):
                conclude(job, failure)
                continue
            case .rules(let robots) where !robots.allows(job.url.target):
                report.skipped["disallowed by robots.txt", default: 0] += 1
                records?.write(job, status: nil, bytes: 0, seconds: 0, error: "disallowed by robots.txt")
                shared?.done(job, page: false, found: [])
                continue
            default:
                break
            }
            host.slot = nil
            host.inFlight += 1
            report.inFlight += 1
            host.nextStart = now + host.delay
            job.started = now
            return job
        }
        return nil
    }

    /// Asks Redis for this process's next start time at `host`.
    private func reserveSlot(_ host: HostState) {
        guard let shared, !host.reservingSlot else { return }
        host.reservingSlot = true
        shared.reserveStart(host.origin.authority, delay: host.delay) { [weak self, weak host] wait in
            guard let self, let host else { return }
            host.reservingSlot = false
            host.slot = monotonicNow() + (wait ?? host.delay)
            onJobs()
        }
    }

    /// Calls `onJobs` at `time` (monotonic seconds), unless a call is set for sooner.
    private func wake(at time: Double) {
        if let wake, wake.at <= time { return }
        wake?.timer.cancel()
        let delay = max(0, time - monotonicNow())
        let timer = after(.seconds(delay) + .milliseconds(1)) { [weak self] in
            guard let self else { return }
            wake = nil
            onJobs()
        }
        wake = (timer, time)
    }

    /// Whether `url` is of one of the crawl's sites: a start's scheme,
    /// host and port.
    func isSameSite(_ url: WebURL) -> Bool {
        for site in options.starts where url.host == site.host && url.port == site.port && url.isSecure == site.isSecure {
            return true
        }
        return false
    }

    /// Whether `url` may be crawled: one of the crawl's sites, and - with
    /// `--allow` / `--deny` - a URL an allow pattern matches and no deny
    /// pattern does.
    private func isWanted(_ url: WebURL) -> Bool {
        guard isSameSite(url) else { return false }
        if allow.isEmpty && deny.isEmpty { return true }
        let text = url.description
        if !allow.isEmpty && !allow.contains(where: { text.contains($0) }) { return false }
        return !deny.contains(where: { text.contains($0) })
    }

    /// Adds `job` unless its URL was seen, or the page budget is spent.
    private func schedule(_ job: CrawlJob) -> Bool {
        guard scheduledPages < options.maxPages else { return false }
        guard seen.insert(job.url).inserted else { return false }
        scheduledPages += 1
        enqueue(job)
        return true
    }

    /// The job's fetch is over (a response, or a failure): its host has a
    /// connection free again.
    private func release(_ job: CrawlJob) {
        report.inFlight -= 1
        host(job.url).inFlight -= 1
    }

    /// A response arrived: a page (links to the frontier, bytes to the
    /// pipeline), a redirect (followed), a status to retry, or an error status.
    func completed(_ job: CrawlJob, _ response: HTTPMessage) {
        release(job)
        let host = host(job.url)
        throttle(host, latency: monotonicNow() - job.started, status: response.status)
        if job.purpose == .robots { return robotsArrived(job, response, host) }
        switch response.status {
        case 200:
            let body: [UInt8]
            do {
                body = try ContentDecoding.decode(response.body, contentEncoding: response.header("Content-Encoding"),
                                                  limit: options.limits.maxBodyBytes)
            } catch {
                return conclude(job, FetchFailure(.decoding, error.reason), status: 200)
            }
            let found = links(of: job, response, body)
            if let saver {
                // A page is done when it is on disk: it stays in flight until
                // the pool has written it (see saved(_:bytes:_:)).
                report.inFlight += 1
                saver.save(job, body)
            } else {
                report.pages += 1
                report.bytes += body.count
                records?.write(job, status: 200, bytes: body.count, seconds: monotonicNow() - job.started, error: nil)
            }
            if shared == nil {
                for next in found { _ = schedule(next) }
            } else {
                shared?.done(job, page: true, found: found.map { .link($0) })
            }
        case 301, 302, 303, 307, 308:
            let target: WebURL
            switch response.header("Location").map({ job.url.resolveLink($0) }) {
            case .url(let url):
                target = url
            case .skipped(let reason):
                return conclude(job, FetchFailure(.badRedirect, "HTTP \(response.status) to a Location that cannot be sent (\(reason))"), status: response.status)
            case .ignored, nil:
                return conclude(job, FetchFailure(.badRedirect, "HTTP \(response.status) without a usable Location"), status: response.status)
            }
            if job.redirects >= options.maxRedirects {
                return conclude(job, FetchFailure(.tooManyRedirects, "more than \(options.maxRedirects) redirects (last to \(target))"), status: response.status)
            }
            report.redirects += 1
            records?.write(job, status: response.status, bytes: 0, seconds: monotonicNow() - job.started, error: nil)
            guard isWanted(target) else {
                shared?.done(job, page: false, found: [])
                return
            }
            // Within its own chain a redirect is followed again (a loop ends
            // at the limit); to a page the crawl has seen, not (each URL once).
            let looping = job.chain.contains(target) || target == job.url
            var next = CrawlJob(url: target)
            next.chain = job.chain + [job.url]
            next.depth = job.depth
            next.referrer = job.referrer
            if let shared { return shared.done(job, page: false, found: [looping ? .again(next) : .redirect(next)]) }
            guard looping || seen.insert(target).inserted else { return }
            enqueue(next)
        default:
            let failure = FetchFailure(.status(response.status), HTTPStatus.describe(response.status))
            if Self.retriedStatuses.contains(response.status) {
                retryLater(job, failure, retryAfter: response.header("Retry-After"), status: response.status)
            } else {
                conclude(job, failure, status: response.status)
            }
        }
    }

    /// The statuses tried again after a back-off (Scrapy's RETRY_HTTP_CODES).
    static let retriedStatuses: Set<Int> = [408, 429, 500, 502, 503, 504, 522, 524]

    /// The links of a page to follow, as jobs: `<base href>` honoured,
    /// `nofollow` links (and all of a page whose robots meta tag or
    /// `X-Robots-Tag` says nofollow) left, and each wanted, unseen one once.
    private func links(of job: CrawlJob, _ response: HTTPMessage, _ body: [UInt8]) -> [CrawlJob] {
        guard (response.header("Content-Type") ?? "text/html").lowercased().contains("html") else { return [] }
        if let tag = response.header("X-Robots-Tag")?.lowercased(), tag.contains("nofollow") || tag.contains("none") {
            report.skipped["nofollow page", default: 0] += 1
            return []
        }
        if let maxDepth = options.maxDepth, job.depth >= maxDepth { return [] }
        var base = job.url
        var found: [CrawlJob] = []
        var pageNofollow = false
        body.withUnsafeBytes { bytes in forEachLink(in: bytes) { kind, link in
            switch kind {
            case .pageNofollow:
                pageNofollow = true
                return
            case .nofollow:
                report.skipped["nofollow link", default: 0] += 1
                return
            case .base:
                if case .url(let url) = job.url.resolveLink(link) { base = url }
                return
            case .follow:
                break
            }
            switch base.resolveLink(link) {
            case .url(let url):
                guard isWanted(url) else { return }
                if shared != nil && !seen.insert(url).inserted { return } // in Redis's seen-set already
                var next = CrawlJob(url: url)
                next.depth = job.depth + 1
                next.referrer = job.url
                found.append(next)
            case .skipped(let reason): report.skipped[reason.description, default: 0] += 1
            case .ignored: break
            }
        } }
        if pageNofollow {
            report.skipped["nofollow page", default: 0] += 1
            if shared != nil { for next in found { seen.remove(next.url) } }
            return []
        }
        return found
    }

    /// The host's robots.txt arrived: its rules (and Crawl-delay) from a
    /// 200, every page allowed after a 4xx, a retry or every page disallowed
    /// after a 5xx (RFC 9309 §2.3.1), a redirect on the site followed.
    private func robotsArrived(_ job: CrawlJob, _ response: HTTPMessage, _ host: HostState) {
        let seconds = monotonicNow() - job.started
        switch response.status {
        case 200:
            do {
                let body = try ContentDecoding.decode(response.body, contentEncoding: response.header("Content-Encoding"),
                                                      limit: options.limits.maxBodyBytes)
                let robots = RobotsTxt(parsing: body, agent: agentToken)
                host.robots = .rules(robots)
                if let crawlDelay = robots.crawlDelay {
                    let delay = min(crawlDelay, Self.longestCrawlDelay)
                    host.minimumDelay = max(host.minimumDelay, delay)
                    host.delay = max(host.delay, delay)
                }
                records?.write(job, status: 200, bytes: body.count, seconds: seconds, error: nil)
            } catch {
                robotsUnreadable(job, host, FetchFailure(.robots, "robots.txt of \(host.origin.authority) could not be decoded (\(error.reason))"), status: 200)
            }
        case 301, 302, 303, 307, 308:
            if case .url(let target)? = response.header("Location").map({ job.url.resolveLink($0) }),
               isSameSite(target), job.redirects < 5 {
                var next = CrawlJob(url: target, purpose: .robots)
                next.chain = job.chain + [job.url]
                host.robotsJob = next
                host.robots = .unknown
            } else {
                host.robots = .rules(.allowAll) // off the site, or too many: as if there were none
            }
            records?.write(job, status: response.status, bytes: 0, seconds: seconds, error: nil)
        case 400..<500 where response.status != 429:
            host.robots = .rules(.allowAll)
            records?.write(job, status: response.status, bytes: 0, seconds: seconds, error: nil)
        default:
            retryLater(job, FetchFailure(.status(response.status), HTTPStatus.describe(response.status)),
                       retryAfter: response.header("Retry-After"), status: response.status)
        }
        // The engine hands out jobs after each response: the host's pages now.
    }

    /// Every page of `host` is disallowed: its robots.txt cannot be read.
    /// A host that cannot be connected to fails its pages with that error
    /// (the robots.txt is not what is wrong); others with the robots.txt's.
    private func robotsUnreadable(_ job: CrawlJob, _ host: HostState, _ failure: FetchFailure, status: Int?) {
        let pages = failure.kind == .connect || failure.kind == .tls
            ? FetchFailure(failure.kind, failure.reason + " (fetching robots.txt)")
            : FetchFailure(.robots, failure.reason + ": every page of the host is taken as disallowed (RFC 9309)")
        host.robots = .unreachable(pages)
        records?.write(job, status: status, bytes: 0, seconds: monotonicNow() - job.started, error: pages.reason)
    }

    /// The longest Crawl-delay obeyed; a robots.txt asking more gets this.
    static let longestCrawlDelay = 60.0

    /// AutoThrottle (Scrapy's): the host's delay moves halfway to the
    /// latency it just took (one request at a time in flight, on average),
    /// between the `--delay` and Crawl-delay floor and 60 s; an error status
    /// never lowers it.
    private func throttle(_ host: HostState, latency: Double, status: Int) {
        guard options.autoThrottle != nil else { return }
        let target = max(host.minimumDelay, min(Self.longestCrawlDelay, (host.delay + latency) / 2))
        if status != 200 && target < host.delay { return }
        host.delay = target
    }

    /// A fetch failed: tried again after a back-off when the failure may
    /// pass (see ``FetchFailure/isTransient``), else the URL failed.
    func fail(_ job: CrawlJob, _ failure: FetchFailure) {
        release(job)
        if failure.isTransient { return retryLater(job, failure, retryAfter: nil, status: nil) }
        if job.purpose == .robots {
            return gaveUp(job, failure, host(job.url), status: nil)
        }
        conclude(job, failure)
    }

    /// Tries `job` again after an exponential back-off with jitter - or the
    /// server's `Retry-After`, which also holds the host's other requests -
    /// unless its retries are spent or the server asks for longer than
    /// `--max-retry-after`: then it failed, saying so.
    private func retryLater(_ job: CrawlJob, _ failure: FetchFailure, retryAfter: String?, status: Int?) {
        let host = host(job.url)
        let now = monotonicNow()
        var wait: Double
        var reason = failure.reason
        if let retryAfter, let seconds = Self.retryAfterSeconds(retryAfter, now: wallNow()) {
            guard seconds <= options.maxRetryAfter.inSeconds else {
                reason += "; Retry-After asks for \(formatSeconds(seconds)) s, longer than the \(formatSeconds(options.maxRetryAfter.inSeconds)) s the crawler waits (--max-retry-after)"
                return gaveUp(job, FetchFailure(failure.kind, reason), host, status: status)
            }
            wait = seconds
            host.nextStart = max(host.nextStart, now + seconds)
        } else {
            // 0.5 s, 1 s, 2 s, ... at most 30 s, each somewhere in [½, 1½] of it.
            wait = min(30, options.retryBackoff.inSeconds * Double(1 << min(job.attempts, 16))) * Double.random(in: 0.5...1.5)
        }
        guard job.attempts < options.retries else {
            if options.retries > 0 { reason += " (after \(options.retries) \(options.retries == 1 ? "retry" : "retries"))" }
            return gaveUp(job, FetchFailure(failure.kind, reason), host, status: status)
        }
        var again = job
        again.attempts += 1
        again.notBefore = now + wait
        report.retries += 1
        if job.purpose == .robots {
            host.robotsJob = again
            host.robots = .unknown
        } else {
            host.waiting.append(again)
            localJobs += 1
        }
        wake(at: again.notBefore)
    }

    private func gaveUp(_ job: CrawlJob, _ failure: FetchFailure, _ host: HostState, status: Int?) {
        if job.purpose == .robots {
            let reason = failure.kind == .connect || failure.kind == .tls ? failure.reason : "robots.txt of \(host.origin.authority) failed: \(failure.reason)"
            return robotsUnreadable(job, host, FetchFailure(failure.kind == .connect || failure.kind == .tls ? failure.kind : .robots, reason), status: status)
        }
        conclude(job, failure, status: status)
    }

    /// The URL failed for good: counted, listed, recorded, and done in the shared frontier.
    private func conclude(_ job: CrawlJob, _ failure: FetchFailure, status: Int? = nil) {
        record(job.url.description, failure)
        records?.write(job, status: status, bytes: 0, seconds: job.started > 0 ? monotonicNow() - job.started : 0, error: failure.reason)
        shared?.done(job, page: false, found: [])
    }

    /// Gives a job back at once (a keep-alive connection closed before it
    /// was sent: not a retry of the budget).
    func retry(_ job: CrawlJob) {
        release(job)
        if job.purpose == .robots {
            host(job.url).robotsJob = job
            host(job.url).robots = .unknown
        } else {
            host(job.url).putBack(job)
            localJobs += 1
        }
    }

    var snapshot: CrawlReport {
        var copy = report
        copy.wallSeconds = monotonicNow() - started
        if let shared {
            copy.crawlPages = shared.crawlPages
            copy.frontierCommands = shared.commands
        }
        records?.flush()
        copy.recordsError = records?.failure
        return copy
    }

    /// The pipeline's store wrote a page, or could not: a page that could
    /// not be saved is a failure of that page, by reason (loop thread).
    func saved(_ job: CrawlJob, bytes: Int, _ outcome: Result<Void, FetchFailure>) {
        report.inFlight -= 1
        switch outcome {
        case .success:
            report.pages += 1
            report.bytes += bytes
            records?.write(job, status: 200, bytes: bytes, seconds: monotonicNow() - job.started, error: nil)
        case .failure(let failure):
            record(job.url.description, failure)
            records?.write(job, status: 200, bytes: bytes, seconds: monotonicNow() - job.started, error: failure.reason)
        }
        onJobs() // the last page saved may end the crawl
    }

    /// The request for `job`: the crawler's User-Agent, the encodings it
    /// decodes, the page it was linked from.
    func request(_ job: CrawlJob) -> [UInt8] {
        var head = "GET \(job.url.target) HTTP/1.1\r\nHost: \(job.url.authority)\r\nUser-Agent: \(options.userAgent)\r\n"
        head += job.purpose == .robots ? "Accept: text/plain, */*\r\n" : "Accept: text/html, */*\r\n"
        head += "Accept-Encoding: \(ContentDecoding.accepted)\r\n"
        if let referrer = job.referrer, referrer.isSecure == job.url.isSecure || !referrer.isSecure {
            head += "Referer: \(referrer)\r\n" // never from an https page to an http one
        }
        return Array((head + "\r\n").utf8)
    }

    /// The seconds a `Retry-After` value asks for (RFC 9110 §10.2.3):
    /// delay-seconds, or an HTTP-date from `now` (wall-clock seconds);
    /// nil when it is neither.
    static func retryAfterSeconds(_ value: String, now: Double) -> Double? {
        let text = value.trimmingCharacters(in: " \t")
        if !text.isEmpty && text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
            return text.count > 12 ? Double.greatestFiniteMagnitude : Double(text)
        }
        // An IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
        let words = text.split(separator: " ")
        let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        guard words.count == 6, words[5] == "GMT", let day = Int(words[1]), let year = Int(words[3]),
              let month = months.firstIndex(of: words[2].lowercased()) else { return nil }
        let clock = words[4].split(separator: ":").compactMap { Int($0) }
        guard clock.count == 3, (1...31).contains(day), (1970...9999).contains(year),
              (0...23).contains(clock[0]), (0...59).contains(clock[1]), (0...60).contains(clock[2]) else { return nil }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(clock[0])
        parts.tm_min = Int32(clock[1])
        parts.tm_sec = Int32(clock[2])
        return max(0, Double(timegm(&parts)) - now)
    }
}

/// The wall clock, in seconds since 1970 (for HTTP dates).
private func wallNow() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var text = Substring(self)
        while let first = text.first, set.contains(first) { text.removeFirst() }
        while let last = text.last, set.contains(last) { text.removeLast() }
        return String(text)
    }
}

/// The crawl's per-page records (`--records FILE`), one JSON object a
/// line: `url`, `status` (null when no response), `bytes` (decoded),
/// `seconds`, `depth`, `referrer`, `error` (null, or why the URL failed or
/// was skipped). Buffered by stdio (a line costs no system call); a write
/// error is remembered and reported at the end.
final class CrawlRecords {
    private let file: UnsafeMutablePointer<FILE>
    let path: String
    private(set) var failure: String?

    init(path: String) throws {
        guard let file = fopen(path, "w") else {
            throw EventLoopError.system("fopen(\(path))")
        }
        self.file = file
        self.path = path
        setvbuf(file, nil, _IOFBF, 64 * 1024)
    }

    deinit { fclose(file) }

    func write(_ job: CrawlJob, status: Int?, bytes: Int, seconds: Double, error: String?) {
        var line = "{\"url\":\(Self.quoted(job.url.description)),\"status\":\(status.map(String.init) ?? "null"),\"bytes\":\(bytes)"
        line += ",\"seconds\":\((max(0, seconds) * 1000).rounded() / 1000),\"depth\":\(job.depth)"
        line += ",\"referrer\":\(job.referrer.map { Self.quoted($0.description) } ?? "null")"
        line += ",\"error\":\(error.map(Self.quoted) ?? "null")}\n"
        if fputs(line, file) < 0 && failure == nil { failure = "writing \(path): \(String(cString: strerror(errno)))" }
    }

    func flush() {
        if fflush(file) != 0 && failure == nil { failure = "writing \(path): \(String(cString: strerror(errno)))" }
    }

    /// `text` as a JSON string.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// The pipeline's store: each page under ``WebURL/fileName`` (unique per
/// URL), written on a pool thread - a write to disk must not hold the loop -
/// and every byte of it, or a failure of the page naming the call.
final class PageSaver {
    private let directory: String
    private let pool = ThreadPool(threads: 2)
    private let deliver: (CrawlJob, [UInt8]) -> Void

    init<Executor: EventLoopExecutor>(directory: String, executor: Executor, crawl: Crawl) {
        self.directory = directory
        // Checked on the loop's thread, where the results are delivered; weak,
        // since the crawl holds this saver (a cycle that outlived the crawl:
        // LeakSanitizer found the whole crawl, loop and pool leaked at exit).
        let bound = LoopBound(unchecked: WeakCrawl(crawl), loop: executor)
        let pool = self.pool
        deliver = { job, body in
            let path = directory + "/" + job.url.fileName
            do {
                try pool.submit({ try PageSaver.write(body, to: path) }, deliveringTo: executor) { _, result in
                    bound.value.crawl?.saved(job, bytes: body.count, result.mapError { error in
                        FetchFailure(.save, "\(error)")
                    })
                }
            } catch {
                bound.value.crawl?.saved(job, bytes: body.count, .failure(FetchFailure(.save, "\(error)")))
            }
        }
    }

    func save(_ job: CrawlJob, _ body: [UInt8]) { deliver(job, body) }

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
