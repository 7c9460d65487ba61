import EV
import Epoll
import EventCore
import HTTP
#if canImport(Glibc)
import Glibc
#endif

/// How the crawler downloads.
public enum CrawlEngine: String, CaseIterable, Sendable {
    case libev, epoll, async
}

/// What to crawl and how.
public struct CrawlOptions: Sendable {
    /// Where to start; only URLs of its host and port are followed.
    public var start: WebURL
    /// Connections at once.
    public var concurrency = 16
    /// Pages to fetch at most (redirects do not count).
    public var maxPages = 100_000
    /// Save pages under this directory.
    public var outDirectory: String?
    /// Seconds for one request: connect, send, and the whole response.
    public var timeout = 10.0
    /// Redirects followed per URL.
    public var maxRedirects = 10
    /// Response limits: 100 header fields, a 64 KiB head, an 8 MiB body.
    public var limits = HTTPLimits(maxURIBytes: 8 * 1024, maxHeaderBytes: 64 * 1024, maxHeaderCount: 100, maxBodyBytes: 8 << 20)
    /// Called about four times a second with the crawl so far (the progress line).
    public var progress: (@Sendable (CrawlReport) -> Void)?

    public init(start: WebURL) { self.start = start }
}

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
    /// Requests in flight now.
    public var inFlight = 0
    /// Connections opened.
    public var connections = 0
    public var wallSeconds = 0.0

    public var errorCount: Int { errors.values.reduce(0, +) }
    public var pagesPerSecond: Double { wallSeconds > 0 ? Double(pages) / wallSeconds : 0 }

    /// The progress line: pages, in flight, errors, pages/s.
    public var progressLine: String {
        "\(pages) pages, \(inFlight) in flight, \(errorCount) errors, \(Int(pagesPerSecond.rounded())) pages/s"
    }
}

/// One URL to fetch: where the crawl found it, and how many redirects led here.
struct CrawlJob {
    let url: WebURL
    let found: WebURL
    /// The URLs that redirected here, first first.
    var chain: [WebURL] = []
    var redirects: Int { chain.count }
}

/// A failed fetch: the kind it counts under and what happened.
public struct FetchFailure: Error, Sendable {
    /// What kind of failure: the crawl's report counts failed URLs by it.
    public enum Kind: Hashable, Sendable, CustomStringConvertible {
        /// The connection could not be made.
        case connect
        /// The connection failed during the request (reset, ...).
        case connection
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

        public var description: String {
            switch self {
            case .connect: "connect"
            case .connection: "connection"
            case .timeout: "timeout"
            case .response(let kind): kind.rawValue
            case .status(let status): "HTTP \(status)"
            case .badRedirect: "bad redirect"
            case .tooManyRedirects: "too many redirects"
            case .save: "save"
            }
        }
    }

    public let kind: Kind
    /// What happened, for the report.
    public let reason: String

    init(_ kind: Kind, _ reason: String) {
        self.kind = kind
        self.reason = reason
    }

    /// No complete response within the request's timeout.
    static func timedOut(after seconds: Double) -> FetchFailure {
        FetchFailure(.timeout, "no complete response within \(formatSeconds(seconds)) s")
    }

    /// The server closed the connection before the response ended.
    static let truncated = FetchFailure(.response(.truncated), "the server closed the connection before the response ended")

    /// A response the parser refused, by its kind.
    init?(_ error: HTTPError?) {
        guard let error else { return nil }
        self.init(.response(error.kind), error.reason)
    }
}

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

    init(_ options: CrawlOptions) {
        self.options = options
        _ = schedule(options.start, found: options.start)
    }

    var hasJobs: Bool { frontierStart < frontier.count }
    var isFinished: Bool { !hasJobs && report.inFlight == 0 }

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

    /// Adds `url` unless it was seen, is elsewhere, or the page budget is spent.
    private func schedule(_ url: WebURL, found: WebURL) -> Bool {
        guard url.host == options.start.host && url.port == options.start.port else { return false }
        guard scheduledPages < options.maxPages else { return false }
        guard seen.insert(url).inserted else { return false }
        scheduledPages += 1
        frontier.append(CrawlJob(url: url, found: found))
        return true
    }

    /// A response arrived: a page (links to the frontier, bytes to the
    /// pipeline), a redirect (followed), or an error status.
    func completed(_ job: CrawlJob, _ response: HTTPMessage) {
        switch response.status {
        case 200:
            report.inFlight -= 1
            report.pages += 1
            report.bytes += response.body.count
            save(job.url, response.body)
            if (response.header("Content-Type") ?? "text/html").lowercased().contains("html") {
                for link in hrefLinks(in: response.body) {
                    switch job.url.resolveLink(link) {
                    case .url(let url): _ = schedule(url, found: job.url)
                    case .skipped(let reason): report.skipped[reason.description, default: 0] += 1
                    case .ignored: break
                    }
                }
            }
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
            guard target.host == options.start.host && target.port == options.start.port else { return }
            // Within its own chain a redirect is followed again (a loop ends
            // at the limit); to a page the crawl has seen, not (each URL once).
            let looping = job.chain.contains(target) || target == job.url
            guard looping || seen.insert(target).inserted else { return }
            var next = CrawlJob(url: target, found: job.found)
            next.chain = job.chain + [job.url]
            frontier.append(next)
        default:
            fail(job, FetchFailure(.status(response.status), "HTTP \(response.status) \(HTTPStatus.phrase(response.status))"))
        }
    }

    func fail(_ job: CrawlJob, _ failure: FetchFailure) {
        report.inFlight -= 1
        report.errors[failure.kind.description, default: 0] += 1
        report.failures.append((job.url.description, failure.reason))
    }

    /// Gives a job back (a keep-alive connection closed before it was sent).
    func retry(_ job: CrawlJob) {
        report.inFlight -= 1
        frontier.insert(job, at: frontierStart)
    }

    var snapshot: CrawlReport {
        var copy = report
        copy.wallSeconds = monotonicNow() - started
        return copy
    }

    /// The pipeline's store: each page under ``WebURL/fileName`` (unique per URL).
    private func save(_ url: WebURL, _ body: [UInt8]) {
        guard let directory = options.outDirectory else { return }
        let path = directory + "/" + url.fileName
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            report.errors[FetchFailure.Kind.save.description, default: 0] += 1
            report.failures.append((url.description, "\(SystemCallError(call: "open(\(path))"))"))
            return
        }
        body.withUnsafeBytes { bytes in
            var done = 0
            while done < bytes.count {
                let written = write(fd, bytes.baseAddress! + done, bytes.count - done)
                if written <= 0 { break }
                done += written
            }
        }
        close(fd)
    }

    /// The request for `job`.
    static func request(_ job: CrawlJob) -> [UInt8] {
        Array("GET \(job.url.target) HTTP/1.1\r\nHost: \(job.url.authority)\r\nUser-Agent: swift-libev-crawler\r\nAccept: text/html, */*\r\n\r\n".utf8)
    }
}

/// Crawls from `options.start` and returns what happened.
///
/// - Throws: ``EventCore/AddressError`` if the start's host does not resolve; every
///   other failure is a failed URL in the report.
public func crawl(engine: CrawlEngine, options: CrawlOptions) throws -> CrawlReport {
    let address = try SocketAddress(host: options.start.host, port: options.start.port)
    switch engine {
    case .libev: return try CallbackCrawler.run(address, options) { try Loop() }
    case .epoll: return try CallbackCrawler.run(address, options) { try EpollLoop() }
    case .async: return try AsyncCrawler.run(address, options)
    }
}

// MARK: callbacks, on libev or epoll

enum CallbackCrawler {
    static func run<L: EventLoop>(_ address: SocketAddress, _ options: CrawlOptions, _ make: () throws -> L) throws -> CrawlReport {
        let loop = try make()
        let crawler = CallbackCrawlerState(loop, address, options)
        crawler.fill()
        crawler.showProgress()
        if !crawler.crawl.isFinished { loop.runForever() }
        let report = crawler.crawl.snapshot
        crawler.shutDown()
        loop.close()
        return report
    }
}

final class CallbackCrawlerState<L: EventLoop> {
    let loop: L
    let address: SocketAddress
    let crawl: Crawl
    var connections: [FetchConnection<L>] = []
    var idle: [FetchConnection<L>] = []
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
    var progressTimer: (any Cancellable)?

    init(_ loop: L, _ address: SocketAddress, _ options: CrawlOptions) {
        self.loop = loop
        self.address = address
        crawl = Crawl(options)
    }

    deinit { readBuffer.deallocate() }

    /// Hands jobs to idle connections, then to new ones up to the concurrency.
    func fill() {
        while crawl.hasJobs {
            if let connection = idle.popLast() {
                connection.start(crawl.next()!)
            } else if connections.count < crawl.options.concurrency {
                let connection = FetchConnection(self)
                connections.append(connection)
                connection.start(crawl.next()!)
            } else {
                break
            }
        }
        if crawl.isFinished { loop.stop() }
    }

    func finished(_ connection: FetchConnection<L>) {
        if connection.socket == nil {
            connections.removeAll { $0 === connection }
        } else {
            idle.append(connection)
        }
        fill()
    }

    func showProgress() {
        guard let progress = crawl.options.progress else { return }
        progressTimer = loop.schedule(after: 0.25) { [weak self] in
            guard let self else { return }
            progress(crawl.snapshot)
            showProgress()
        }
    }

    func shutDown() {
        progressTimer?.cancel()
        for connection in connections { connection.disconnect() }
        connections = []
        idle = []
    }
}

/// One keep-alive connection of the crawler: a request at a time.
final class FetchConnection<L: EventLoop>: HTTPMessageSink {
    unowned let crawler: CallbackCrawlerState<L>
    var socket: SocketDescriptor?
    var watch: (any IOWatching)?
    var parser: HTTPParser!
    var job: CrawlJob?
    var request: [UInt8] = []
    var sent = 0
    var received = 0
    var connected = false
    /// Whether the job went out on a kept-alive connection: if the server
    /// closed it meanwhile, the job is tried again on a new one.
    var reused = false
    var timer: (any Cancellable)?
    var response: HTTPMessage?

    init(_ crawler: CallbackCrawlerState<L>) { self.crawler = crawler }

    func start(_ job: CrawlJob) {
        self.job = job
        request = Crawl.request(job)
        sent = 0
        received = 0
        response = nil
        reused = socket != nil
        timer = crawler.loop.schedule(after: crawler.crawl.options.timeout) { [weak self] in
            guard let self else { return }
            finish(.failure(.timedOut(after: crawler.crawl.options.timeout)))
        }
        if socket == nil {
            do {
                try connect()
            } catch {
                return finish(.failure(FetchFailure(.connect, "\(error)")))
            }
        } else {
            watch?.interest = [.read, .write]
        }
    }

    func connect() throws {
        let socket = try SocketDescriptor.tcp(crawler.address.family)
        self.socket = socket
        connected = false
        parser = HTTPParser(.response, limits: crawler.crawl.options.limits, sink: self)
        crawler.crawl.report.connections += 1
        try? socket.setNoDelay()
        if case .processed = try socket.connect(to: crawler.address) { connected = true }
        watch = try crawler.loop.watchReadiness(socket.fd, [.read, .write]) { [unowned self] ready in handle(ready) }
    }

    func handle(_ ready: Interest) {
        guard let socket, job != nil else {
            return idleEvent()
        }
        do {
            if !connected {
                guard ready.contains(.write) || ready.contains(.error) else { return }
                try socket.connectResult(to: crawler.address)
                connected = true
            }
            while sent < request.count {
                guard case .processed(let count) = try request[sent...].withUnsafeBytes({ bytes throws(SystemCallError) in try socket.write(bytes) }) else { return }
                sent += count
            }
            watch?.interest = .read
            switch try socket.read(into: crawler.readBuffer) {
            case .wouldBlock:
                return
            case .processed(0):
                parser.finish()
                if job != nil {
                    if received == 0 && reused {
                        // The server closed a kept-alive connection as we reused it: try again.
                        return retry()
                    }
                    finish(.failure(FetchFailure(parser.failure) ?? .truncated))
                }
            case .processed(let count):
                received += count
                _ = parser.execute(UnsafeRawBufferPointer(rebasing: crawler.readBuffer[..<count]))
                if let failure = parser.failure {
                    finish(.failure(FetchFailure(failure)!))
                } else if let response {
                    finish(.success(response))
                }
            }
        } catch {
            if received == 0 && reused {
                return retry()
            }
            finish(.failure(FetchFailure(connected ? .connection : .connect, "\(error)")))
        }
    }

    /// An idle kept-alive connection became readable: the server closed it (or misbehaved).
    func idleEvent() {
        disconnect()
        crawler.connections.removeAll { $0 === self }
        crawler.idle.removeAll { $0 === self }
        crawler.fill()
    }

    func parsed(_ message: inout HTTPMessage) -> Bool {
        response = message
        return true // one response per request: pause
    }

    func retry() {
        timer?.cancel()
        let job = self.job!
        self.job = nil
        disconnect()
        crawler.crawl.retry(job)
        crawler.connections.removeAll { $0 === self }
        crawler.fill()
    }

    func finish(_ outcome: Result<HTTPMessage, FetchFailure>) {
        guard let job else { return }
        self.job = nil
        timer?.cancel()
        timer = nil
        switch outcome {
        case .success(let response):
            crawler.crawl.completed(job, response)
            if response.keepAlive && parser.failure == nil {
                parser.resume()
                watch?.interest = .read // to notice the server closing it while idle
            } else {
                disconnect()
            }
        case .failure(let failure):
            crawler.crawl.fail(job, failure)
            disconnect()
        }
        crawler.finished(self)
    }

    func disconnect() {
        watch?.cancel()
        watch = nil
        socket?.close()
        socket = nil
    }
}

// MARK: async/await on the libev loop

enum AsyncCrawler {
    static func run(_ address: SocketAddress, _ options: CrawlOptions) throws -> CrawlReport {
        let loop = try Loop()
        let report = try loop.run { executor in
            let state = AsyncCrawlState(Crawl(options), executor)
            let progress: Task<Void, Never>? = options.progress.map { progress in
                Task(executorPreference: executor) {
                    while !Task.isCancelled {
                        do { try await executor.sleep(seconds: 0.25) } catch { return }
                        progress(state.crawl.snapshot)
                    }
                }
            }
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<options.concurrency {
                    group.addTask(executorPreference: executor) { await state.worker(address) }
                }
            }
            progress?.cancel()
            return state.crawl.snapshot
        }
        loop.close()
        return report
    }
}

/// The crawl shared by the async workers.
final class AsyncCrawlState: @unchecked Sendable {
    // Sendable so that the workers can share it: they all run on the loop's
    // executor (executor preference, nonisolated(nonsending) awaits), so it is
    // only touched on the loop's one thread, between awaits.
    let crawl: Crawl
    let executor: LoopExecutor
    private var waiting: [CheckedContinuation<Void, Never>] = []
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)

    init(_ crawl: Crawl, _ executor: LoopExecutor) {
        self.crawl = crawl
        self.executor = executor
    }

    deinit { readBuffer.deallocate() }

    /// The next job; waits while others may still find links; nil when the crawl is over.
    func nextJob() async -> CrawlJob? {
        while true {
            if let job = crawl.next() { return job }
            if crawl.isFinished {
                wakeAll()
                return nil
            }
            await withCheckedContinuation { waiting.append($0) }
        }
    }

    func wakeAll() {
        let sleepers = waiting
        waiting = []
        for sleeper in sleepers { sleeper.resume() }
    }

    /// A worker: one keep-alive connection, a request at a time.
    func worker(_ address: SocketAddress) async {
        var connection: AsyncFetchConnection?
        while let job = await nextJob() {
            if connection == nil { connection = AsyncFetchConnection(self, address) }
            let outcome = await connection!.fetch(job)
            switch outcome {
            case .response(let response):
                crawl.completed(job, response)
                if !response.keepAlive { connection = nil }
            case .retry:
                crawl.retry(job)
                connection = nil
            case .failed(let failure):
                crawl.fail(job, failure)
                connection = nil
            }
            wakeAll()
        }
        connection?.close()
    }
}

/// How a fetch on a keep-alive connection ended.
enum FetchOutcome {
    case response(HTTPMessage)
    case failed(FetchFailure)
    /// The server closed a kept-alive connection as it was reused: try again on a new one.
    case retry
}

/// One keep-alive connection of an async worker.
final class AsyncFetchConnection: HTTPMessageSink {
    unowned let state: AsyncCrawlState
    let address: SocketAddress
    var socket: AsyncSocket?
    var parser: HTTPParser!
    var response: HTTPMessage?

    init(_ state: AsyncCrawlState, _ address: SocketAddress) {
        self.state = state
        self.address = address
    }

    func parsed(_ message: inout HTTPMessage) -> Bool {
        response = message
        return true
    }

    func fetch(_ job: CrawlJob) async -> FetchOutcome {
        let options = state.crawl.options
        let reused = socket != nil
        do {
            return try await withTimeout(options.timeout) { () async throws -> FetchOutcome in
                if socket == nil {
                    do {
                        socket = try await AsyncSocket.connect(to: address, on: state.executor)
                    } catch let error as TimeoutError {
                        throw error
                    } catch {
                        return .failed(FetchFailure(.connect, "\(error)"))
                    }
                    state.crawl.report.connections += 1
                    parser = HTTPParser(.response, limits: options.limits, sink: self)
                } else {
                    parser.resume()
                }
                response = nil
                var received = 0
                do {
                    try await socket!.write(Crawl.request(job))
                    while response == nil {
                        let count = try await socket!.read(into: state.readBuffer)
                        if count == 0 {
                            parser.finish()
                            if response != nil { break }
                            if received == 0 && reused { return .retry }
                            close()
                            return .failed(FetchFailure(parser.failure) ?? .truncated)
                        }
                        received += count
                        _ = parser.execute(UnsafeRawBufferPointer(rebasing: state.readBuffer[..<count]))
                        if let failure = FetchFailure(parser.failure) {
                            close()
                            return .failed(failure)
                        }
                    }
                } catch let error as TimeoutError {
                    throw error
                } catch {
                    close()
                    if received == 0 && reused { return .retry }
                    return .failed(FetchFailure(.connection, "\(error)"))
                }
                if !response!.keepAlive { close() }
                return .response(response!)
            }
        } catch {
            close()
            return .failed(.timedOut(after: options.timeout))
        }
    }

    func close() {
        socket?.close()
        socket = nil
    }
}
