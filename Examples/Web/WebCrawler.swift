import EV
import Engines
import Epoll
import EventCore
import HTTP
import Resolver

/// The engines the web crawler has: the evented ones.
public let crawlEngines: [Engine] = [.libev, .epoll, .async, .asyncEpoll]


/// Crawls from `options.starts` and returns what happened.
///
/// - Precondition: `engine` is one of ``crawlEngines``.
/// - Throws: ``EventCore/EventLoopError`` if a start's host does not resolve; every
///   other failure is a failed URL in the report.
public func crawl(engine: Engine, options: CrawlOptions) throws -> CrawlReport {
    precondition(crawlEngines.contains(engine), "the web crawler has no \(engine) engine")
    // Each site's address, looked up once before the crawl: the crawl
    // requests nothing of any other site.
    var addresses = SiteAddresses()
    for site in options.sites {
        addresses[site] = try lookUp(site.host, port: site.port, options.resolver)
    }
    switch engine {
    case .libev: return try CallbackCrawler.run(addresses, options) { try Loop() }
    case .epoll: return try CallbackCrawler.run(addresses, options) { try EpollLoop() }
    case .async: return try AsyncCrawler.run(addresses, options) { try Loop() }
    case .asyncEpoll: return try AsyncCrawler.run(addresses, options) { try EpollLoop() }
    case .blocking, .threads: preconditionFailure("the web crawler has no \(engine) engine")
    }
}

/// The crawl's sites (origins) and the address each is reached at.
package typealias SiteAddresses = [WebURL: SocketAddress]

extension Dictionary where Key == WebURL, Value == SocketAddress {
    /// The address of `url`'s site, or the failure of a URL of no site of
    /// the crawl (never requested: the crawl checks links, redirects and
    /// shared jobs against its sites first).
    func address(of url: WebURL) -> Result<SocketAddress, FetchFailure> {
        if let address = self[url.origin] { return .success(address) }
        return .failure(FetchFailure(.connect, "\(url.authority) is not a site of this crawl"))
    }
}

/// The address of `host`: a numeric one as it is, a name looked up with
/// c-ares on a loop of its own (before the crawl's loop starts, so nothing
/// else waits for it), preferring IPv4 as the servers listen there by default.
///
/// - Throws: ``EventCore/EventLoopError`` naming the host and why it did not resolve.
func lookUp(_ host: String, port: UInt16, _ options: ResolverOptions) throws -> SocketAddress {
    if let numeric = numericAddress(host, port: port) { return numeric }
    let loop = try Loop()
    let resolver = try NameResolver(on: loop, options: options)
    var outcome: Result<[SocketAddress], EventLoopError>?
    resolver.resolve(host, port: port) { result in
        outcome = result
        loop.stop()
    }
    loop.runForever()
    resolver.close()
    let addresses = try (outcome ?? .failure(EventLoopError(.loopClosed, operation: "resolve(\(host))"))).get()
    return addresses.first { $0.family == .ipv4 } ?? addresses[0]
}
