import EventCore
import HTTP
#if canImport(Glibc)
import Glibc
#endif

// MARK: callbacks, on libev or epoll

enum CallbackCrawler {
    static func run<L: EventLoop>(_ address: SocketAddress, _ options: CrawlOptions, _ make: () throws -> L) throws -> CrawlReport {
        let loop = try make()
        let crawl: Crawl
        do {
            crawl = try Crawl.make(options, loop: loop)
        } catch {
            loop.close()
            throw error
        }
        let crawler = CallbackCrawlerState(loop, address, crawl)
        crawl.onJobs = { [weak crawler] in crawler?.fill() }
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
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: loopReadBufferBytes, alignment: 16)
    var progressTimer: (any Cancellable)?

    init(_ loop: L, _ address: SocketAddress, _ crawl: Crawl) {
        self.loop = loop
        self.address = address
        self.crawl = crawl
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
        watch = try crawler.loop.watchReadiness(socket.descriptor, [.read, .write]) { [unowned self] ready in handle(ready) }
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
                guard case .processed(let count) = try request[sent...].withUnsafeBytes({ bytes throws(EventLoopError) in try socket.write(bytes) }) else { return }
                sent += count
            }
            watch?.interest = .read
            switch try socket.read(into: crawler.readBuffer) {
            case .wouldBlock:
                return
            case .processed(0):
                parser.finish()
                if let response {
                    // A body that ends at the close (no Content-Length, not chunked): complete now.
                    return finish(.success(response))
                }
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
