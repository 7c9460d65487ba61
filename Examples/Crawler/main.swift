// crawler: the tutorial's poetry client, in every way the tutorial writes it.
//
//     swift run crawler                       # the experiment: every way, a table
//     swift run crawler --way epoll           # one way against the built-in servers
//     swift run crawler --way async 10000 10001 10002   # against running servers
//     swift run crawler --timeline ways.svg   # and draw it
//
// With no address it starts the tutorial's three slow poetry servers in this
// process and checks every poem byte for byte. See Examples/Crawler/README.md.
import ArgumentParser
import Engines
import EventCore
import Foundation
import Glibc
import HTTP
import Resolver
import SlowPoetry
import Web

struct CrawlerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crawler",
        abstract: "Download poems from slow poetry servers in each way of the tutorial.",
        subcommands: [PoetryCommand.self, WebCommand.self, FetchOneCommand.self],
        defaultSubcommand: PoetryCommand.self)
}

/// The way to download: one of the seven, or all of them in turn.
enum WayChoice: String, CaseIterable, ExpressibleByArgument {
    case blocking, processes, threads, busy, epoll, libev, async
    case asyncEpoll = "async-epoll"
    case all
}

struct PoetryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "poetry",
        abstract: "The poetry client (the default).")

    @Option(help: "How to download: \(WayChoice.allCases.map(\.rawValue).joined(separator: ", ")).")
    var way: WayChoice = .all

    @Option(help: "Seconds between chunks of the built-in servers (ignored with addresses).")
    var delay: Double = 0.7

    @Option(help: "Seconds for each whole download, from connecting to the last byte; a download still going then fails.")
    var timeout: Double = 30

    @Option(name: .customLong("max-poem-bytes"), help: "The largest poem, in bytes; a server that sends more fails its download.")
    var maxPoemBytes: Int = DownloadRules.defaultMaxBytes

    @Option(help: "Draw the downloads' timeline to this SVG file.")
    var timeline: String?

    @Flag(help: "Print the results as JSON.")
    var json = false

    @Argument(help: "Slow poetry servers, [HOST:]PORT (a bare port means 127.0.0.1). None: start the tutorial's three here.")
    var addresses: [String] = []

    func validate() throws {
        let problems = [
            OptionBounds.seconds("--delay", delay, in: 0...OptionBounds.longestSeconds),
            OptionBounds.seconds("--timeout", timeout, in: 0.001...OptionBounds.longestSeconds),
            OptionBounds.count("--max-poem-bytes", maxPoemBytes, in: 1...OptionBounds.mostBytes),
        ]
        if let problem = problems.compactMap({ $0 }).first { throw ValidationError(problem) }
        for text in addresses {
            do { _ = try SocketAddress(parsing: text) } catch { throw ValidationError("invalid address \"\(text)\": \(error)") }
        }
    }

    func run() throws {
        ignoreSIGPIPE()
        let embedded = addresses.isEmpty ? try EmbeddedServers(delay: .seconds(delay)) : nil
        defer { embedded?.stop() }
        let targets = try embedded?.addresses ?? addresses.map { try SocketAddress(parsing: $0) }
        let ways = way == .all ? Way.allCases : [Way(rawValue: way.rawValue)!]
        // Given addresses, the classic client: connect and read, send nothing.
        let rules = DownloadRules(timeout: .seconds(timeout), maxBytes: maxPoemBytes, request: embedded == nil ? [] : tutorialRequest)
        var runs: [WayRun] = []
        for way in ways {
            if ways.count > 1 && !json { FileHandle.standardError.write("running \(way.rawValue)...\n".data(using: .utf8)!) }
            let cpuBefore = processCPUSeconds()
            let start = monotonicNow()
            let downloads = way.run(targets, rules)
            let wall = monotonicNow() - start
            let cpu = processCPUSeconds() - cpuBefore
            let floor = embedded?.floor(sequential: way.isSequential)
                ?? (way.isSequential ? downloads.map(\.duration).reduce(0, +) : downloads.map(\.duration).max() ?? 0)
            runs.append(WayRun(way: way, downloads: downloads, wallSeconds: wall, cpuSeconds: cpu, floorSeconds: floor, start: start))
        }
        if json {
            print(Report.json(runs))
        } else if runs.count == 1 {
            Report.classic(runs[0])
        } else {
            Report.table(runs, delay: embedded == nil ? nil : delay)
        }
        if let timeline {
            try Timeline.svg(runs, delay: embedded == nil ? nil : delay).write(toFile: timeline, atomically: true, encoding: .utf8)
            if !json { print("timeline: \(timeline)") }
        }
        if !runs.allSatisfy(\.allIntact) { throw ExitCode(1) }
    }
}

extension Engine: ExpressibleByArgument {}

struct WebCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "web",
        abstract: "Crawl a web site politely: each page of its host once, robots.txt obeyed, a delay and a connection cap per host, retries, gzip, keep-alive connections, http or https.")

    @Argument(help: "Where to start: one or more http:// or https:// URLs; links are followed within their sites (each one's scheme, host and port) only.")
    var urls: [String]

    @Option(help: "How to download: \(Engine.list(crawlEngines)).")
    var engine: Engine = .libev

    @Option(help: "Connections at once.")
    var concurrency: Int = 16

    @Option(name: .customLong("max-pages"), help: "Pages to fetch at most.")
    var maxPages: Int = 100_000

    @Option(help: "Save the pages in this directory (made if missing).")
    var out: String?

    @Option(help: "Seconds for one request, connection and whole response included.")
    var timeout: Double = 10

    @Option(name: .customLong("max-body"), help: "Largest page, in bytes; larger ones fail.")
    var maxBody: Int = 8 << 20

    @Option(help: "Share the crawl with every process given the same Redis frontier, redis[s]://[[USER]:PASSWORD@]HOST:PORT[/PREFIX] (rediss: over TLS; the password also from REDISCLI_AUTH): the queue and the seen-set live there.")
    var frontier: String?

    @Flag(help: "With --frontier: continue a crawl that stopped as a whole (every process gone).")
    var resume = false

    @Option(help: "With --frontier: seconds this process's claim on its jobs lasts unless renewed; then others take them back.")
    var lease: Double = 10

    @Option(help: "Ask this DNS server (ADDRESS or ADDRESS:PORT, port 53 by default; repeatable) for host names instead of those of /etc/resolv.conf; the hosts file still comes first.")
    var dns: [String] = []

    @Option(name: .customLong("user-agent"), help: "The User-Agent sent; its first word is the name robots.txt groups are matched against.")
    var userAgent = CrawlOptions(start: WebURL(host: "h", port: 80, target: "/")).userAgent

    @Option(name: .customLong("max-depth"), help: "Follow links at most this many steps from the start.")
    var maxDepth: Int?

    @Option(help: "Crawl only URLs this regular expression matches (repeatable: any of them).")
    var allow: [String] = []

    @Option(help: "Do not crawl URLs this regular expression matches (repeatable).")
    var deny: [String] = []

    @Option(name: .customLong("per-host"), help: "Requests in flight to the host at most.")
    var perHost: Int = 8

    @Option(help: "Seconds between the starts of two requests to the host at least (robots.txt's Crawl-delay raises it; shared by every process of a --frontier crawl).")
    var delay: Double = 0

    @Flag(name: .customLong("auto-throttle"), help: "Adapt the delay to the host's latency (Scrapy's AutoThrottle), never below --delay.")
    var autoThrottle = false

    @Option(name: .customLong("auto-throttle-start"), help: "With --auto-throttle: the delay to start from, in seconds.")
    var autoThrottleStart: Double = 5

    @Option(help: "Retries per URL after a connection error, a timeout, 408, 429 or a 5xx (exponential back-off with jitter, or the server's Retry-After).")
    var retries: Int = 2

    @Option(name: .customLong("max-retry-after"), help: "The longest Retry-After waited for, in seconds; a server asking more fails the URL.")
    var maxRetryAfter: Double = 120

    @Flag(name: .customLong("ignore-robots"), help: "Do not fetch or obey robots.txt.")
    var ignoreRobots = false

    @Option(help: "Write a JSON line per URL to this file: url, status, bytes, seconds, depth, referrer, error.")
    var records: String?

    @Option(name: .customLong("ca-file"), help: "For https (and a rediss:// frontier): trust the authorities of this PEM file instead of the system's.")
    var caFile: String?

    @Flag(help: "For https (and a rediss:// frontier): do not verify the server's certificate (insecure).")
    var insecure = false

    @Flag(help: "Print the summary as JSON.")
    var json = false

    func validate() throws {
        for server in dns {
            do { _ = try ResolverOptions.server(parsing: server) } catch { throw ValidationError("invalid --dns \"\(server)\": \(error)") }
        }
        if let frontier {
            do { _ = try FrontierAddress(frontier, environment: ProcessInfo.processInfo.environment) } catch { throw ValidationError("\(error)") }
        } else if resume {
            throw ValidationError("--resume needs --frontier: only a shared crawl can be resumed")
        }
        if let problem = OptionBounds.seconds("--lease", lease, in: 0.1...OptionBounds.longestSeconds) { throw ValidationError(problem) }
        guard crawlEngines.contains(engine) else {
            throw ValidationError("the web crawler has no \(engine) engine; --engine takes \(Engine.list(crawlEngines))")
        }
        guard !urls.isEmpty else { throw ValidationError("give the URL to start from (one or more)") }
        guard urls.count <= 1_000 else { throw ValidationError("at most 1000 start URLs (\(urls.count) given)") }
        var starts: [WebURL] = []
        for url in urls {
            do { starts.append(try WebURL(url)) } catch { throw ValidationError("\(error)") }
        }
        if !starts.contains(where: \.isSecure) && !(frontier?.hasPrefix("rediss://") ?? false) && (caFile != nil || insecure) {
            throw ValidationError("--ca-file and --insecure are for https:// crawls (and rediss:// frontiers)")
        }
        if let caFile, access(caFile, R_OK) != 0 {
            throw ValidationError("cannot read the --ca-file \"\(caFile)\": \(String(cString: strerror(errno)))")
        }
        for (name, patterns) in [("--allow", allow), ("--deny", deny)] {
            for pattern in patterns {
                do { _ = try Regex(pattern) } catch { throw ValidationError("invalid \(name) \"\(pattern)\": \(error)") }
            }
        }
        if userAgent.isEmpty || userAgent.utf8.contains(where: { $0 < 0x20 || $0 == 0x7f }) {
            throw ValidationError("invalid --user-agent: it must be a non-empty line of visible characters")
        }
        let problems = [
            OptionBounds.count("--per-host", perHost, in: 1...10_000),
            OptionBounds.count("--retries", retries, in: 0...100),
            maxDepth.flatMap { OptionBounds.count("--max-depth", $0, in: 0...1_000_000) },
            OptionBounds.seconds("--delay", delay, in: 0...OptionBounds.longestSeconds),
            OptionBounds.seconds("--auto-throttle-start", autoThrottleStart, in: 0...OptionBounds.longestSeconds),
            OptionBounds.seconds("--max-retry-after", maxRetryAfter, in: 0...OptionBounds.longestSeconds),
            OptionBounds.count("--concurrency", concurrency, in: 1...10_000),
            OptionBounds.count("--max-pages", maxPages, in: 1...100_000_000),
            OptionBounds.count("--max-body", maxBody, in: 1...OptionBounds.mostBytes),
            OptionBounds.seconds("--timeout", timeout, in: 0.001...OptionBounds.longestSeconds),
        ]
        if let problem = problems.compactMap({ $0 }).first { throw ValidationError(problem) }
    }

    func run() throws {
        ignoreSIGPIPE()
        var options = CrawlOptions(starts: try urls.map { try WebURL($0) })
        options.concurrency = concurrency
        options.maxPages = maxPages
        options.timeout = .seconds(timeout)
        options.limits.maxBodyBytes = maxBody
        options.frontier = try frontier.map { try FrontierAddress($0, environment: ProcessInfo.processInfo.environment) }
        options.resume = resume
        options.lease = .seconds(lease)
        options.userAgent = userAgent
        options.maxDepth = maxDepth
        options.allow = allow
        options.deny = deny
        options.perHost = perHost
        options.delay = .seconds(delay)
        options.autoThrottle = autoThrottle ? .seconds(autoThrottleStart) : nil
        options.retries = retries
        options.maxRetryAfter = .seconds(maxRetryAfter)
        options.obeysRobots = !ignoreRobots
        options.recordsPath = records
        options.caFile = caFile
        options.insecure = insecure
        if insecure {
            // As wget's --no-check-certificate does: the user asked, but says so.
            FileHandle.standardError.write("crawler: --insecure: server certificates are not verified\n".data(using: .utf8)!)
        }
        if !dns.isEmpty { options.resolver.servers = try dns.map { try ResolverOptions.server(parsing: $0) } }
        if let out {
            do {
                try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            } catch {
                throw ValidationError("cannot make the --out directory \"\(out)\": \(error.localizedDescription)")
            }
            options.outDirectory = out
        }
        if isatty(2) != 0 && !json {
            options.progress = { report in
                FileHandle.standardError.write("\r\u{1B}[K\(report.progressLine)".data(using: .utf8)!)
            }
        }
        let report: CrawlReport
        do {
            report = try crawl(engine: engine, options: options)
        } catch {
            FileHandle.standardError.write("crawler: cannot crawl \(urls.joined(separator: " ")): \(error)\n".data(using: .utf8)!)
            throw ExitCode(1)
        }
        if options.progress != nil { FileHandle.standardError.write("\r\u{1B}[K".data(using: .utf8)!) }
        print(json ? report.json : report.summary)
        if let failure = report.recordsError {
            FileHandle.standardError.write("crawler: the records are incomplete: \(failure)\n".data(using: .utf8)!)
            throw ExitCode(1)
        }
        if let failure = report.frontierError {
            FileHandle.standardError.write("crawler: \(failure)\n".data(using: .utf8)!)
            throw ExitCode(1)
        }
        // Sharing a crawl, this process may have found nothing left to fetch.
        if report.pages == 0 && report.crawlPages == nil { throw ExitCode(1) }
    }
}

/// The processes way's child: downloads one poem (blocking) and reports it on stdout.
struct FetchOneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fetch-one",
        abstract: "Download one poem and report it (the processes way's child).",
        shouldDisplay: false)

    @Argument var address: String
    @Option var timeout: Double?
    @Option(name: .customLong("max-poem-bytes")) var maxPoemBytes: Int = DownloadRules.defaultMaxBytes

    func run() throws {
        let rules = DownloadRules(timeout: timeout.map { .seconds($0) }, maxBytes: maxPoemBytes, request: [])
        let download = blockingDownload(try SocketAddress(parsing: address), rules)
        let report = ChildReport.encode(download)
        FileHandle.standardOutput.write(Data(report))
    }
}

CrawlerCommand.main()
