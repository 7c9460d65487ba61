import EventCore
import HTTP
import TLS
#if canImport(Glibc)
import Glibc
#endif

// MARK: async/await, on libev or epoll (one code)

package enum AsyncCrawler {
    package static func run<L: EventLoop>(_ addresses: SiteAddresses, _ options: CrawlOptions, _ make: () throws -> L) throws -> CrawlReport {
        let loop = try make()
        loop.monitor.start()
        var report = try loop.run { executor in
            // The workers share the crawl, each reaching it through the
            // checked handle (they all run on the loop's executor).
            let crawl = try Crawl.make(options, loop: executor.runningLoop)
            // One TLS context for every connection: it keeps the server's
            // session, so each connection after the first resumes it.
            let tls = try options.starts.contains(where: \.isSecure)
                ? TLSContext(.client(caFile: options.caFile, verifiesPeer: !options.insecure, handshakeTimeout: options.timeout))
                : nil
            let state = LoopBound(AsyncCrawlState(crawl, executor, addresses, tls: tls), loop: executor)
            // Jobs from a shared frontier (or its end) wake the waiting workers.
            crawl.onJobs = { state.value.wakeAll() }
            defer { crawl.onJobs = {} }
            let progress: Task<Void, Never>? = options.progress.map { progress in
                Task(executorPreference: executor) {
                    while !Task.isCancelled {
                        do { try await executor.sleep(for: .milliseconds(250)) } catch { return }
                        progress(state.value.crawl.snapshot)
                    }
                }
            }
            await withTaskGroup(of: Void.self) { group in
                // No more workers (each a connection) than the sites take at once.
                for _ in 0..<min(options.concurrency, options.perHost * addresses.count) {
                    group.addTask(executorPreference: executor) { await state.value.worker() }
                }
            }
            progress?.cancel()
            return state.value.crawl.snapshot
        }
        report.loop = loop.monitor.statistics
        loop.monitor.stop()
        loop.close()
        return report
    }
}

/// The crawl shared by the async workers; not `Sendable`: they reach it on
/// the loop's thread through a ``EventCore/LoopBound``.
final class AsyncCrawlState<Executor: EventLoopExecutor> {
    let crawl: Crawl
    let executor: Executor
    /// Each site's address.
    let addresses: SiteAddresses
    /// For https: the client context (nil for http).
    let tls: TLSContext?
    private var waiting: [CheckedContinuation<Void, Never>] = []
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: loopReadBufferBytes, alignment: 16)

    init(_ crawl: Crawl, _ executor: Executor, _ addresses: SiteAddresses, tls: TLSContext?) {
        self.crawl = crawl
        self.executor = executor
        self.addresses = addresses
        self.tls = tls
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

    /// A worker: one keep-alive connection, a request at a time (a new
    /// connection when the job is another site's).
    func worker() async {
        var connection: AsyncFetchConnection<Executor>?
        while let job = await nextJob() {
            if let open = connection, !open.isConnected(to: job.url) {
                open.close()
                connection = nil
            }
            if connection == nil {
                switch addresses.address(of: job.url) {
                case .success(let address): connection = AsyncFetchConnection(self, address, site: job.url.origin)
                case .failure(let failure):
                    crawl.fail(job, failure)
                    wakeAll()
                    continue
                }
            }
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

/// A crawler's connection: a socket, or TLS over one.
enum FetchStream {
    case plain(AsyncSocket)
    case tls(TLSSocket)

    func read(into buffer: UnsafeMutableRawBufferPointer) async throws -> Int {
        switch self {
        case .plain(let socket): try await socket.read(into: buffer)
        case .tls(let socket): try await socket.read(into: buffer)
        }
    }

    func write(_ bytes: [UInt8]) async throws {
        switch self {
        case .plain(let socket): try await socket.write(bytes)
        case .tls(let socket): try await socket.write(bytes)
        }
    }

    func close() {
        switch self {
        case .plain(let socket): socket.close()
        case .tls(let socket): socket.close()
        }
    }
}

/// One keep-alive connection of an async worker.
final class AsyncFetchConnection<Executor: EventLoopExecutor>: HTTPMessageSink {
    unowned let state: AsyncCrawlState<Executor>
    let address: SocketAddress
    /// The site the connection is to.
    let site: WebURL
    var socket: FetchStream?
    var parser: HTTPParser!
    var response: HTTPMessage?

    init(_ state: AsyncCrawlState<Executor>, _ address: SocketAddress, site: WebURL) {
        self.state = state
        self.address = address
        self.site = site
    }

    /// Whether this connection is to `url`'s site.
    func isConnected(to url: WebURL) -> Bool {
        url.host == site.host && url.port == site.port && url.isSecure == site.isSecure
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
                        let plain = try await AsyncSocket.connect(to: address, on: state.executor)
                        if job.url.isSecure, let tls = state.tls {
                            // SNI and the certificate's name: the URL's host.
                            socket = .tls(try await TLSSocket.client(over: plain, serverName: job.url.host, port: job.url.port, context: tls))
                        } else {
                            socket = .plain(plain)
                        }
                    } catch let error as EventLoopError where error.code == .timedOut {
                        throw error
                    } catch let error as EventLoopError where error.isTLSFailure {
                        return .failed(FetchFailure(.tls, "\(error)")) // not retried: it would fail again
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
                    try await socket!.write(state.crawl.request(job))
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
                } catch let error as EventLoopError where error.code == .timedOut {
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

extension EventLoopError {
    /// Whether it is a TLS failure (a certificate, the protocol), not the socket's.
    var isTLSFailure: Bool {
        if case .tls = code { return true }
        return false
    }
}
