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
import EventCore
import Foundation
import SlowPoetry

struct CrawlerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crawler",
        abstract: "Download poems from slow poetry servers in each way of the tutorial.",
        subcommands: [PoetryCommand.self, FetchOneCommand.self],
        defaultSubcommand: PoetryCommand.self)
}

/// The way to download: one of the seven, or all of them in turn.
enum WayChoice: String, CaseIterable, ExpressibleByArgument {
    case blocking, processes, threads, busy, epoll, libev, async, all
}

struct PoetryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "poetry",
        abstract: "The poetry client (the default).")

    @Option(help: "How to download: \(WayChoice.allCases.map(\.rawValue).joined(separator: ", ")).")
    var way: WayChoice = .all

    @Option(help: "Seconds between chunks of the built-in servers (ignored with addresses).")
    var delay: Double = 0.7

    @Option(help: "Seconds without data after which a download fails.")
    var timeout: Double = 30

    @Option(help: "Draw the downloads' timeline to this SVG file.")
    var timeline: String?

    @Flag(help: "Print the results as JSON.")
    var json = false

    @Argument(help: "Slow poetry servers, [HOST:]PORT (a bare port means 127.0.0.1). None: start the tutorial's three here.")
    var addresses: [String] = []

    func validate() throws {
        guard delay >= 0, delay.isFinite else { throw ValidationError("--delay must be a number of seconds, not negative; got \(delay)") }
        guard timeout > 0, timeout.isFinite else { throw ValidationError("--timeout must be a positive number of seconds; got \(timeout)") }
        for text in addresses {
            do { _ = try SocketAddress(parsing: text) } catch { throw ValidationError("invalid address \"\(text)\": \(error)") }
        }
    }

    func run() throws {
        ignoreSIGPIPE()
        let embedded = addresses.isEmpty ? try EmbeddedServers(delay: delay) : nil
        defer { embedded?.stop() }
        let targets = try embedded?.addresses ?? addresses.map { try SocketAddress(parsing: $0) }
        let ways = way == .all ? Way.allCases : [Way(rawValue: way.rawValue)!]
        var runs: [WayRun] = []
        for way in ways {
            if ways.count > 1 && !json { FileHandle.standardError.write("running \(way.rawValue)...\n".data(using: .utf8)!) }
            let cpuBefore = processCPUSeconds()
            let start = monotonicNow()
            let downloads = way.run(targets, timeout: timeout)
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

/// The processes way's child: downloads one poem (blocking) and reports it on stdout.
struct FetchOneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fetch-one",
        abstract: "Download one poem and report it (the processes way's child).",
        shouldDisplay: false)

    @Argument var address: String
    @Option var timeout: Double?

    func run() throws {
        let download = blockingDownload(try SocketAddress(parsing: address), timeout: timeout)
        let report = ChildReport.encode(download)
        FileHandle.standardOutput.write(Data(report))
    }
}

CrawlerCommand.main()
