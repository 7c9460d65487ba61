import Foundation
import Glibc
import Testing
import TestSupport

let politeSiteScript = scriptsDirectory + "/Crawler/scripts/polite_site.py"

/// A running polite_site.py: its port and the requests it logged.
final class PoliteSite {
    let process: SpawnedProcess
    let port: String

    init(_ arguments: [String] = []) throws {
        process = try SpawnedProcess("/usr/bin/env", ["python3", "-u", politeSiteScript, "0"] + arguments)
        let banner = process.waitForOutput(containing: "\n", timeout: 30)
        port = banner.split(separator: " ").last.map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
    }

    /// One logged request.
    struct Request {
        let path: String
        let time: Double
        let userAgent: String
        let acceptEncoding: String
        let referer: String
    }

    /// Stops the site and returns the requests it saw, in order.
    func stop() throws -> [Request] {
        process.send(SIGKILL)
        let output = try process.wait(timeout: 10).standardOutput
        return output.split(separator: "\n").compactMap { line -> Request? in
            guard line.hasPrefix("request ") else { return nil }
            // "request PATH t=T ua=UA ae=AE referer=R": UA and AE may hold spaces.
            let text = String(line.dropFirst(8))
            guard let t = text.range(of: " t="), let ua = text.range(of: " ua="), let ae = text.range(of: " ae="),
                  let referer = text.range(of: " referer=") else { return nil }
            return Request(path: String(text[..<t.lowerBound]), time: Double(text[t.upperBound..<ua.lowerBound]) ?? 0,
                           userAgent: String(text[ua.upperBound..<ae.lowerBound]),
                           acceptEncoding: String(text[ae.upperBound..<referer.lowerBound]),
                           referer: String(text[referer.upperBound...]))
        }
    }
}

/// Issue "TLS on the loop", 3: the crawler's polite defaults against a site
/// that states its wishes - robots.txt with a Crawl-delay, nofollow, a
/// `<base>`, gzip and deflate, a flaky page with Retry-After, one that asks
/// to wait a day, a decompression bomb - on every engine.
@Suite("A polite crawl, end to end")
struct PoliteCrawlTests {
    @Test(arguments: eventedEngines)
    func thePoliteDefaultsObeyTheSite(_ engine: String) throws {
        let site = try PoliteSite()
        let records = temporaryPath("records") + ".jsonl"
        defer { unlink(records) }
        let output = try runProcess(Program.crawler, ["web", "http://127.0.0.1:\(site.port)/", "--engine", engine, "--timeout", "5",
                                                      "--records", records, "--json"], timeout: 120)
        let requests = try site.stop()
        let report = try WebCrawlReport.parse(output)
        let paths = requests.map(\.path)
        // robots.txt first, and once.
        #expect(paths.first == "/robots.txt" && paths.filter { $0 == "/robots.txt" }.count == 1, "\(engine): \(paths)")
        // Nothing it disallows, nothing nofollow, nothing in a script, a style or a comment.
        #expect(!paths.contains { $0.hasPrefix("/never/") || $0 == "/private/secret" || $0 == "/private/ok/not" }, "\(engine): \(paths)")
        #expect(paths.contains("/private/ok") && paths.contains("/dir/inner"), "\(engine): Allow ...$ and <base href>: \(paths)")
        // Links found in gzip, deflate and raw deflate bodies.
        #expect(["/b-link", "/c-link", "/d-link"].allSatisfy(paths.contains), "\(engine): \(paths)")
        #expect(requests.allSatisfy { $0.userAgent == "swift-libev-crawler/1.0" && $0.acceptEncoding == "gzip, deflate" })
        #expect(requests.first { $0.path == "/dir/inner" }?.referer == "http://127.0.0.1:\(site.port)/based/page")
        // The Crawl-delay (0.2 s) between the starts of any two page requests;
        // /flaky's retries after its Retry-After (1 s).
        let pages = requests.dropFirst()
        let gaps = zip(pages.dropFirst(), pages).map { $0.time - $1.time }
        #expect(gaps.allSatisfy { $0 >= 0.19 }, "\(engine): gaps \(gaps.map { (($0 * 1000).rounded()) })")
        let flaky = requests.filter { $0.path == "/flaky" }.map(\.time)
        #expect(flaky.count == 3 && zip(flaky.dropFirst(), flaky).allSatisfy { $0 - $1 >= 0.99 }, "\(engine): \(flaky)")
        #expect(paths.filter { $0 == "/busy" }.count == 1, "a day's Retry-After is not waited for, nor retried")
        // The report: 23 pages; the day-long 503 and the bomb failed, by name.
        #expect(report.pages == 23, "\(engine): \(output)")
        #expect(report.errors == ["HTTP 503": 1, "content encoding": 1], "\(engine): \(report.errors) \(report.failures)")
        func reason(_ suffix: String) -> String { report.failures.first { $0.url.hasSuffix(suffix) }?.reason ?? "" }
        #expect(reason("/busy").contains("Retry-After asks for 100000 s, longer than the 120 s"), "\(reason("/busy"))")
        #expect(reason("/bomb").contains("larger than 8388608 bytes"), "\(reason("/bomb"))")
        #expect(report.skipped == ["disallowed by robots.txt": 2, "nofollow link": 1, "nofollow page": 1], "\(engine): \(report.skipped)")
        #expect(output.exitCode == 0)
        // A record per URL: robots.txt, 23 pages, 2 disallowed, 2 failed.
        let lines = try String(contentsOfFile: records, encoding: .utf8).split(separator: "\n")
        let parsed = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(parsed.count == lines.count && lines.count == 28, "\(engine): \(lines.count) records")
        let inner = parsed.first { ($0["url"] as? String)?.hasSuffix("/dir/inner") == true }
        #expect(inner?["status"] as? Int == 200 && inner?["depth"] as? Int == 2 && inner?["error"] is NSNull)
        #expect((inner?["referrer"] as? String)?.hasSuffix("/based/page") == true && inner?["seconds"] is Double)
        let secret = parsed.first { ($0["url"] as? String)?.hasSuffix("/private/secret") == true }
        #expect(secret?["error"] as? String == "disallowed by robots.txt" && secret?["status"] is NSNull)
        let bomb = parsed.first { ($0["url"] as? String)?.hasSuffix("/bomb") == true }
        #expect(bomb?["status"] as? Int == 200 && (bomb?["error"] as? String)?.contains("larger than") == true)
    }

    @Test func depthPatternsAndIgnoringRobotsAreTheAppsToChoose() throws {
        let site = try PoliteSite()
        let output = try runProcess(Program.crawler, ["web", "http://127.0.0.1:\(site.port)/", "--ignore-robots", "--max-depth", "2",
                                                      "--deny", "/(bomb|busy|flaky)$", "--allow", "/(deep|private|$)",
                                                      "--user-agent", "polite-test/2.0 (+mailto:x@example.org)", "--json"], timeout: 60)
        let requests = try site.stop()
        let paths = Set(requests.map(\.path))
        let report = try WebCrawlReport.parse(output)
        #expect(!paths.contains("/robots.txt") && paths.contains("/private/secret"), "--ignore-robots: \(paths.sorted())")
        #expect(paths == ["/", "/private/secret", "/private/ok", "/private/ok/not", "/deep/1", "/deep/2"], "\(paths.sorted())")
        #expect(requests.allSatisfy { $0.userAgent == "polite-test/2.0 (+mailto:x@example.org)" })
        #expect(report.pages == 6 && report.errors.isEmpty, "\(output)")
    }

    @Test func aRobotsTxtThatFailsDisallowsTheHostAndOneThatIsMissingAllowsIt() throws {
        // 503: tried again (once here), then every page is disallowed, saying why.
        let failing = try PoliteSite(["--robots-status", "503"])
        let output = try runProcess(Program.crawler, ["web", "http://127.0.0.1:\(failing.port)/", "--retries", "1", "--json"], timeout: 60)
        let paths = try failing.stop().map(\.path)
        let report = try WebCrawlReport.parse(output)
        #expect(paths == ["/robots.txt", "/robots.txt"], "\(paths)")
        #expect(report.pages == 0 && report.errors == ["robots.txt unreachable": 1] && output.exitCode == 1, "\(output)")
        #expect(report.failures.first?.reason.contains("HTTP 503") == true
                && report.failures.first?.reason.contains("every page of the host is taken as disallowed") == true, "\(report.failures)")
        // 404: no rules, so everything (but nofollow) is crawled: the two
        // private pages too (and /flaky fails: its Retry-After is over the 0.5 s allowed).
        let missing = try PoliteSite(["--robots-status", "404"])
        let all = try runProcess(Program.crawler, ["web", "http://127.0.0.1:\(missing.port)/", "--max-retry-after", "0.5", "--json"], timeout: 60)
        let allPaths = try missing.stop().map(\.path)
        #expect(allPaths.contains("/private/secret") && !allPaths.contains { $0.hasPrefix("/never/") }, "\(allPaths)")
        #expect(try WebCrawlReport.parse(all).pages == 24, "\(all)")
    }

    @Test func aHundredMegabyteRobotsTxtIsRefusedInBoundedMemory() throws {
        let site = try PoliteSite(["--robots-bytes", "100000000"])
        let measure = """
        import resource, subprocess, sys
        done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
        print(done.stdout, end="")
        print("exit", done.returncode)
        print("maxrss", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        """
        let output = try runProcess("/usr/bin/env", ["python3", "-c", measure, Program.crawler, "web",
                                                     "http://127.0.0.1:\(site.port)/", "--timeout", "20"], timeout: 120)
        _ = try site.stop()
        let text = output.standardOutput
        #expect(text.contains("exit 1") && text.contains("robots.txt unreachable 1"), "\(output)")
        #expect(text.contains("robots.txt of 127.0.0.1:\(site.port) failed: the body is over 8388608 bytes")
                && text.contains("every page of the host is taken as disallowed"), "\(output)")
        let kilobytes = Int(text.split(separator: "\n").first { $0.hasPrefix("maxrss") }?.split(separator: " ").last ?? "") ?? .max
        if !addressSanitizerIsActive {
            #expect(kilobytes < 128 * 1024, "the crawler grew to \(kilobytes) KiB")
        }
    }
}

/// Issue "TLS on the loop", 2: `crawler web https://...` on every engine
/// (TLS over the async sockets, and as the callback `Connection`'s layer),
/// with the test's own CA (`--ca-file`), refusing a certificate it cannot
/// trust unless told `--insecure`.
@Suite("The crawler over https")
struct HTTPSCrawlTests {
    @Test(arguments: eventedEngines)
    func anHTTPSSiteIsCrawledAsItsHTTPTwinIs(_ engine: String) throws {
        let fixtures = try TLSFixtures()
        let site = try PoliteSite(["--tls", fixtures.serverCertificate, fixtures.serverKey])
        let url = "https://127.0.0.1:\(site.port)/"
        let output = try runProcess(Program.crawler, ["web", url, "--engine", engine, "--ca-file", fixtures.caCertificate, "--json"],
                                    timeout: 120)
        // Not trusted without the CA: the host's pages fail, naming why, and nothing is retried.
        let untrusted = try runProcess(Program.crawler, ["web", url, "--engine", engine, "--json"], timeout: 60)
        let insecure = try runProcess(Program.crawler, ["web", url, "--engine", engine, "--insecure", "--max-depth", "0",
                                                        "--ignore-robots", "--json"], timeout: 60)
        let paths = try site.stop().map(\.path)
        let report = try WebCrawlReport.parse(output)
        #expect(report.pages == 23 && report.errors == ["HTTP 503": 1, "content encoding": 1], "\(engine): \(output)")
        #expect(paths.first == "/robots.txt" && !paths.contains { $0.hasPrefix("/never/") })
        #expect(report.failures.allSatisfy { $0.url.hasPrefix(url) })
        let refused = try WebCrawlReport.parse(untrusted)
        #expect(refused.errors == ["TLS": 1] && untrusted.exitCode == 1, "\(engine): \(untrusted)")
        #expect(refused.failures.first?.reason.contains("not signed by a trusted authority") == true, "\(refused.failures)")
        #expect(try WebCrawlReport.parse(insecure).pages == 1, "\(engine): \(insecure)")
        #expect(insecure.standardError.contains("--insecure: server certificates are not verified"), "\(insecure)")
        #expect(!output.standardError.contains("not verified"), "\(output)")
    }

    @Test func aWrongNameIsRefusedAndTLSOptionsNeedHTTPS() throws {
        let fixtures = try TLSFixtures()
        let site = try PoliteSite(["--tls", fixtures.wrongNameCertificate, fixtures.wrongNameKey])
        let output = try runProcess(Program.crawler, ["web", "https://127.0.0.1:\(site.port)/", "--ca-file", fixtures.caCertificate,
                                                      "--json"], timeout: 60)
        _ = try site.stop()
        let report = try WebCrawlReport.parse(output)
        #expect(report.errors == ["TLS": 1] && report.failures.first?.reason.contains("the certificate is not for this name") == true, "\(output)")
        let stray = try runProcess(Program.crawler, ["web", "http://127.0.0.1:1/", "--insecure"], timeout: 30)
        #expect(stray.exitCode == 64 && stray.standardError.contains("are for https:// crawls"), "\(stray)")
    }
}

/// Issue "TLS on the loop", 3: with `--frontier`, the delay between a
/// host's requests is the crawl's, kept in Redis: three crawlers do not hit
/// the host three times as often.
@Suite("A polite crawl shared through Redis")
struct SharedPoliteCrawlTests {
    @Test func threeCrawlersKeepOneDelayBetweenThem() throws {
        let redis = try RedisServer()
        let site = try PoliteSite()
        let crawlers = try ["libev", "epoll", "async"].map {
            try SpawnedProcess(Program.crawler, ["web", "http://127.0.0.1:\(site.port)/", "--frontier", redis.url(prefix: "polite"),
                                                 "--engine", $0, "--delay", "0.3", "--max-retry-after", "0.5", "--json"])
        }
        let reports = try crawlers.map { try WebCrawlReport.parse(try $0.wait(timeout: 120)) }
        let requests = try site.stop()
        // Each process reads the robots.txt once, when it first has a page
        // of the host (one may have none); the pages are the crawl's, once each.
        let robots = requests.filter { $0.path == "/robots.txt" }.count
        #expect((1...3).contains(robots), "\(robots) robots.txt requests")
        let pages = requests.filter { $0.path != "/robots.txt" }
        #expect(Set(pages.map(\.path)).count == pages.count, "each page once: \(pages.map(\.path))")
        #expect(reports.map(\.pages).reduce(0, +) == 22, "\(reports.map(\.pages)) \(reports.map(\.errors))")
        #expect(!pages.contains { $0.path.hasPrefix("/never/") || $0.path == "/private/secret" })
        // 0.3 s apart, whichever process sent them. Each process starts when
        // Redis's reply reaches it, so a slow reply narrows one gap; unshared,
        // three processes would start together, a third of the delay apart.
        let times = pages.map(\.time).sorted()
        let gaps = zip(times.dropFirst(), times).map { $0 - $1 }
        #expect(gaps.allSatisfy { $0 >= 0.15 }, "gaps \(gaps.map { ($0 * 1000).rounded() })")
        let span = (times.last ?? 0) - (times.first ?? 0)
        #expect(span >= 0.3 * Double(times.count - 1) * 0.9, "\(times.count) requests in \(span) s")
    }
}

/// Issue "TLS on the loop", 2: the Redis frontier over TLS (`rediss://`:
/// Debian's hiredis 0.14 has no hiredis_ssl, so the package's TLS, as the
/// Redis connection's layer), against redis-server's own `tls-port`.
@Suite("The Redis frontier over TLS")
struct RedissFrontierTests {
    @Test func aCrawlSharesARedisSpokenOverTLSAndRefusesOneItCannotTrust() throws {
        let fixtures = try TLSFixtures()
        let redis = try RedisServer(tls: (fixtures.serverCertificate, fixtures.serverKey))
        let server = try HTTPServerProcess(engine: "libev", ["--pages", "50"])
        defer { _ = try? server.stop() }
        let output = try runProcess(Program.crawler, ["web", "\(server.url)/", "--frontier", redis.url(prefix: "secure"),
                                                      "--ca-file", fixtures.caCertificate, "--json"], timeout: 120)
        let report = try WebCrawlReport.parse(output)
        #expect(report.pages > 50 && report.crawlPages == report.pages && report.errors.isEmpty && report.frontierError == nil,
                "\(output)")
        #expect(try redis.cli(["HGET", "{secure}:crawl", "pages"]) == "\(report.pages)")
        // The system's CAs do not know the test's: the frontier fails, naming why.
        let refused = try runProcess(Program.crawler, ["web", "\(server.url)/", "--frontier", redis.url(prefix: "other"), "--json"],
                                     timeout: 60)
        #expect(refused.exitCode == 1 && refused.standardError.contains("not signed by a trusted authority"), "\(refused)")
        #expect(refused.standardError.contains("rediss://127.0.0.1:\(redis.port)"), "\(refused)")
    }
}

/// Issue "TLS on the loop", 3: several allowed hosts. Each start URL names
/// a site (scheme, host and port) the crawl may follow links into: links
/// between the sites are followed, each site gets its own robots.txt and
/// politeness, and a link to any other site - another port, or the same
/// port under another name - is not requested.
@Suite("A crawl of several sites")
struct SeveralSitesCrawlTests {
    /// Two sites served by Python's http.server that link to each other,
    /// and to a third site that is not the crawl's (nothing listens there:
    /// a request to it would be a connection error).
    final class TwoSites {
        let root: String
        let servers: [SpawnedProcess]
        let ports: [UInt16]
        let elsewhere: UInt16

        init() throws {
            root = temporaryPath("sites")
            ports = [try unusedPort(), try unusedPort()]
            elsewhere = try unusedPort()
            let (a, b) = (ports[0], ports[1])
            let pages = [
                "a/index.html": """
                <a href="/a1.html">a1</a> <a href="http://127.0.0.1:\(b)/b1.html">b1</a>
                <a href="http://127.0.0.1:\(elsewhere)/c.html">not the crawl's</a>
                <a href="http://localhost:\(a)/a1.html">the same server, another site</a>
                """,
                "a/a1.html": "a1",
                "a/a2.html": "a2",
                "b/index.html": #"<a href="b1.html">b1</a>"#,
                "b/b1.html": #"<a href="http://127.0.0.1:\#(a)/a2.html">a2</a> <a href="/">home</a>"#,
            ]
            for (path, text) in pages {
                let file = root + "/" + path
                try FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try text.write(toFile: file, atomically: true, encoding: .utf8)
            }
            let root = root
            servers = try zip(["a", "b"], ports).map { name, port in
                try SpawnedProcess("/usr/bin/env", ["python3", "-u", "-m", "http.server", "--bind", "127.0.0.1", "\(port)",
                                                    "--directory", root + "/" + name])
            }
            for server in servers { _ = server.waitForOutput(containing: "Serving HTTP") }
        }

        var starts: [String] { ports.map { "http://127.0.0.1:\($0)/" } }

        deinit {
            for server in servers {
                server.send(SIGKILL)
                _ = try? server.wait(timeout: 5)
            }
            try? FileManager.default.removeItem(atPath: root)
        }
    }

    @Test(arguments: eventedEngines)
    func linksBetweenTheStartsSitesAreFollowedAndNoOthers(_ engine: String) throws {
        let sites = try TwoSites()
        let records = temporaryPath("records")
        defer { try? FileManager.default.removeItem(atPath: records) }
        let output = try runProcess(Program.crawler, ["web"] + sites.starts + ["--engine", engine, "--records", records, "--json"],
                                    timeout: 120)
        let report = try WebCrawlReport.parse(output)
        // a: /, /a1.html, /a2.html (linked from b); b: /, /b1.html.
        #expect(report.pages == 5 && report.errors.isEmpty, "\(engine): \(output)")
        let urls = try String(contentsOfFile: records, encoding: .utf8).split(separator: "\n").compactMap {
            (try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["url"] as? String
        }
        let (a, b) = (sites.ports[0], sites.ports[1])
        #expect(Set(urls) == ["http://127.0.0.1:\(a)/robots.txt", "http://127.0.0.1:\(a)/", "http://127.0.0.1:\(a)/a1.html",
                              "http://127.0.0.1:\(a)/a2.html", "http://127.0.0.1:\(b)/robots.txt", "http://127.0.0.1:\(b)/",
                              "http://127.0.0.1:\(b)/b1.html"], "\(engine): \(urls)")
    }

    /// An https site and an http one in one crawl: TLS for the one, plain
    /// for the other, each with its own robots.txt and politeness.
    @Test(arguments: ["libev", "async"])
    func anHTTPSSiteAndAnHTTPSiteInOneCrawl(_ engine: String) throws {
        let fixtures = try TLSFixtures()
        let secure = try PoliteSite(["--tls", fixtures.serverCertificate, fixtures.serverKey])
        let plain = try PoliteSite()
        let output = try runProcess(Program.crawler, ["web", "https://127.0.0.1:\(secure.port)/", "http://127.0.0.1:\(plain.port)/",
                                                      "--engine", engine, "--ca-file", fixtures.caCertificate, "--json"], timeout: 120)
        let (securePaths, plainPaths) = (try secure.stop().map(\.path), try plain.stop().map(\.path))
        let report = try WebCrawlReport.parse(output)
        #expect(report.pages == 46 && report.errors == ["HTTP 503": 2, "content encoding": 2], "\(engine): \(output)")
        #expect(securePaths.first == "/robots.txt" && plainPaths.first == "/robots.txt", "\(securePaths) \(plainPaths)")
        #expect(Set(securePaths) == Set(plainPaths), "the same site twice: \(securePaths) \(plainPaths)")
    }

    @Test func severalSitesShareOneFrontierAndItsNameIsTheirStarts() throws {
        let sites = try TwoSites()
        let redis = try RedisServer()
        let crawlers = try ["libev", "async-epoll"].map {
            try SpawnedProcess(Program.crawler, ["web"] + sites.starts + ["--frontier", redis.url(prefix: "two"), "--engine", $0, "--json"])
        }
        let reports = try crawlers.map { try WebCrawlReport.parse(try $0.wait(timeout: 120)) }
        #expect(reports.map(\.pages).reduce(0, +) == 5 && reports.allSatisfy { $0.errors.isEmpty }, "\(reports.map(\.pages)) \(reports.map(\.errors))")
        #expect(try redis.cli(["HGET", "{two}:crawl", "pages"]) == "5")
        // Another set of starts is another crawl: refused by name, nothing mixed.
        let other = try runProcess(Program.crawler, ["web", sites.starts[0], "--frontier", redis.url(prefix: "two"), "--resume"], timeout: 60)
        #expect(other.exitCode == 1 && other.standardError.contains("it holds a crawl of \(sites.starts.joined(separator: " "))"), "\(other)")
    }
}
