import EventCore
import EventLoopTesting
import HTTP
import Testing
import Web

/// The two codes of the web crawler (each runs on libev and on epoll).
enum CrawlCode: String, CaseIterable, Sendable {
    case callbacks, async

    func crawl(_ addresses: SiteAddresses, _ options: CrawlOptions, on loop: TestLoop) throws -> CrawlReport {
        switch self {
        case .callbacks: try CallbackCrawler.run(addresses, options) { loop }
        case .async: try AsyncCrawler.run(addresses, options) { loop }
        }
    }
}

/// The crawler's politeness delay on the loop's clock: the example server
/// serves a site on the same testing loop (over a Unix socket, which the
/// crawler is given as the site's address), and the crawl's requests keep
/// their delay to the nanosecond - what the end-to-end tests check with a
/// delay of 0.2 s against a Python site, here with ten seconds in no time.
@Suite("The crawler's politeness on the testing loop")
struct PoliteCrawlOnTheTestLoopTests {
    @Test(arguments: CrawlCode.allCases)
    func theDelayIsKeptBetweenRequestsToAHost(_ code: CrawlCode) throws {
        // The crawl closes the loop at its end, the site's worker with it.
        let (loop, address, worker) = try serveSite(.callbacks, pages: 4)
        defer { withExtendedLifetime(worker) {} }
        let site = try WebURL("http://site.test/")
        var options = CrawlOptions(start: site)
        options.delay = .seconds(10)
        options.concurrency = 4
        let start = loop.now
        let report = try code.crawl([site.origin: address], options, on: loop)
        let took = start.duration(to: loop.now)
        #expect(report.pages == 6 && report.errors.isEmpty, "\(code): \(report.pages) pages, \(report.errors) \(report.failures) \(report.skipped)")
        // robots.txt (a 404: everything allowed) and / at once, then the
        // other five pages (/plaintext, /page/0 to 3) one at a time, each
        // started ten seconds after the one before - and a millisecond: the
        // crawler wakes a millisecond after a slot opens, so that a timer
        // that fires early never finds it still shut.
        #expect(took == .seconds(50) + .milliseconds(5), "\(code): \(took)")
    }
}
