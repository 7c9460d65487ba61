import EventCore
import HTTP
import TLS
#if canImport(Glibc)
import Glibc
#endif

// MARK: callbacks, on libev or epoll

package enum CallbackCrawler {
    package static func run<L: EventLoop>(_ addresses: SiteAddresses, _ options: CrawlOptions, _ make: () throws -> L) throws -> CrawlReport {
        let loop = try make()
        let crawl: Crawl
        do {
            crawl = try Crawl.make(options, loop: loop)
        } catch {
            loop.close()
            throw error
        }
        let tls: TLSContext?
        do {
            // One context for every connection: it keeps the server's
            // session, so each connection after the first resumes it.
            tls = try options.starts.contains(where: \.isSecure)
                ? TLSContext(.client(caFile: options.caFile, verifiesPeer: !options.insecure, handshakeTimeout: options.timeout))
                : nil
        } catch {
            loop.close()
            throw error
        }
        let crawler = CallbackCrawlerState(loop, addresses, crawl, tls: tls)
        crawl.onJobs = { [weak crawler] in crawler?.fill() }
        loop.monitor.start()
        crawler.fill()
        crawler.showProgress()
        if !crawler.crawl.isFinished { loop.runForever() }
        var report = crawler.crawl.snapshot
        report.loop = loop.monitor.statistics
        loop.monitor.stop()
        crawler.shutDown()
        loop.close()
        return report
    }
}

final class CallbackCrawlerState<L: EventLoop> {
    let loop: L
    /// Each site's address.
    let addresses: SiteAddresses
    let crawl: Crawl
    /// For https: the client context (nil for http).
    let tls: TLSContext?
    var connections: [FetchConnection<L>] = []
    var idle: [FetchConnection<L>] = []
    var progressTimer: (any Cancellable)?

    init(_ loop: L, _ addresses: SiteAddresses, _ crawl: Crawl, tls: TLSContext?) {
        self.loop = loop
        self.addresses = addresses
        self.crawl = crawl
        self.tls = tls
    }

    /// Hands jobs to idle connections (one to the job's site first), then
    /// to new ones up to the concurrency, then to an idle connection to
    /// another site (closed and made anew), as long as the crawl's
    /// politeness gives jobs.
    func fill() {
        while !idle.isEmpty || connections.count < crawl.options.concurrency {
            guard let job = crawl.next() else { break }
            if let index = idle.lastIndex(where: { $0.isConnected(to: job.url) }) {
                idle.remove(at: index).start(job)
            } else if connections.count >= crawl.options.concurrency, let connection = idle.popLast() {
                connection.start(job)
            } else {
                let connection = FetchConnection(self)
                connections.append(connection)
                connection.start(job)
            }
        }
        if crawl.isFinished { loop.stop() }
    }

    func finished(_ connection: FetchConnection<L>) {
        if connection.connection == nil {
            connections.removeAll { $0 === connection }
        } else {
            idle.append(connection)
        }
        fill()
    }

    func showProgress() {
        guard let progress = crawl.options.progress else { return }
        progressTimer = loop.schedule(after: .milliseconds(250)) { [weak self] in
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

/// One keep-alive connection of the crawler: a request at a time, on a
/// ``EventCore/Connection``.
final class FetchConnection<L: EventLoop>: HTTPMessageSink, ConnectionDelegate {
    unowned let crawler: CallbackCrawlerState<L>
    var connection: Connection<L>?
    var parser: HTTPParser!
    var job: CrawlJob?
    var received = 0
    var connected = false
    /// Whether the job went out on a kept-alive connection: if the server
    /// closed it meanwhile, the job is tried again on a new one.
    var reused = false
    var timer: (any Cancellable)?
    var response: HTTPMessage?
    /// The site the connection is to (while it is open).
    var site: (host: String, port: UInt16, isSecure: Bool)?

    init(_ crawler: CallbackCrawlerState<L>) { self.crawler = crawler }

    /// Whether the connection is open to `url`'s site.
    func isConnected(to url: WebURL) -> Bool {
        guard connection != nil, let site else { return false }
        return site.host == url.host && site.port == url.port && site.isSecure == url.isSecure
    }

    func start(_ job: CrawlJob) {
        if connection != nil && !isConnected(to: job.url) {
            disconnect() // kept alive to another site: this job needs its own
        }
        self.job = job
        received = 0
        response = nil
        reused = connection != nil
        timer = crawler.loop.schedule(after: crawler.crawl.options.timeout) { [weak self] in
            guard let self else { return }
            finish(.failure(.timedOut(after: crawler.crawl.options.timeout)))
        }
        if connection == nil {
            connected = false
            parser = HTTPParser(.response, limits: crawler.crawl.options.limits, sink: self)
            crawler.crawl.report.connections += 1
            do {
                let address = try crawler.addresses.address(of: job.url).get()
                // With TLS: SNI and the certificate's name are the URL's host.
                let layer = job.url.isSecure ? crawler.tls?.clientLayer(serverName: job.url.host, port: job.url.port) : nil
                connection = try Connection.connect(to: address, on: crawler.loop, layer: layer, delegate: self)
                site = (job.url.host, job.url.port, job.url.isSecure)
            } catch let failure as FetchFailure {
                return finish(.failure(failure))
            } catch {
                return finish(.failure(FetchFailure(.connect, "\(error)")))
            }
        }
        connection?.write(crawler.crawl.request(job)) // queued while connecting
    }

    func connectionEstablished() { connected = true }

    func connectionReceived(_ bytes: UnsafeRawBufferPointer) {
        guard job != nil else {
            return idleEvent() // bytes nobody asked for: the server misbehaves
        }
        received += bytes.count
        _ = parser.execute(bytes)
        if let failure = parser.failure {
            finish(.failure(FetchFailure(failure)!))
        } else if let response {
            finish(.success(response))
        }
    }

    func connectionReachedEnd() -> Bool {
        guard job != nil else {
            idleEvent() // the server closed a kept-alive connection
            return false
        }
        parser.finish()
        if let response {
            // A body that ends at the close (no Content-Length, not chunked):
            // complete now, on a connection that cannot be kept.
            disconnect()
            finish(.success(response))
        } else if received == 0 && reused {
            // The server closed a kept-alive connection as we reused it: try again.
            retry()
        } else {
            finish(.failure(FetchFailure(parser.failure) ?? .truncated))
        }
        return false
    }

    func connectionClosed(_ error: EventLoopError?) {
        connection = nil
        guard let error, job != nil else { return }
        if received == 0 && reused {
            retry()
        } else {
            // A TLS failure is not retried (it would fail again); the rest may be.
            finish(.failure(FetchFailure(error.isTLSFailure && !connected ? .tls : connected ? .connection : .connect, "\(error)")))
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
            if response.keepAlive && parser.failure == nil && connection?.isOpen == true {
                parser.resume()
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
        connection?.close()
        connection = nil
    }
}
