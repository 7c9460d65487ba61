import EV
import Engines
import Epoll
import EventCore
import HTTP

/// The engines the web crawler has: the evented ones.
public let crawlEngines: [Engine] = [.libev, .epoll, .async, .asyncEpoll]

/// Crawls from `options.start` and returns what happened.
///
/// - Precondition: `engine` is one of ``crawlEngines``.
/// - Throws: ``EventCore/AddressError`` if the start's host does not resolve; every
///   other failure is a failed URL in the report.
public func crawl(engine: Engine, options: CrawlOptions) throws -> CrawlReport {
    precondition(crawlEngines.contains(engine), "the web crawler has no \(engine) engine")
    let address = try SocketAddress(host: options.start.host, port: options.start.port)
    switch engine {
    case .libev: return try CallbackCrawler.run(address, options) { try Loop() }
    case .epoll: return try CallbackCrawler.run(address, options) { try EpollLoop() }
    case .async: return try AsyncCrawler.run(address, options) { try Loop() }
    case .asyncEpoll: return try AsyncCrawler.run(address, options) { try EpollLoop() }
    case .blocking, .threads: preconditionFailure("the web crawler has no \(engine) engine")
    }
}
