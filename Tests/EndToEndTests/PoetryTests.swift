import EventCore
import Foundation
import Glibc
import SlowPoetry
import Testing
import TestSupport

@Suite("The poetry experiment, end to end")
struct PoetryTests {
    @Test func theBuiltInPoemsHaveTheTutorialsSizes() {
        #expect(Poem.builtIn.map(\.bytes.count) == [3003, 615, 653])
        #expect(zip(Poem.builtIn, [200, 50, 50]).map { poem, chunk in poem.chunks(of: chunk) } == [16, 13, 14])
        #expect(Poem.builtIn.allSatisfy { String(validating: $0.bytes, as: UTF8.self) != nil })
    }

    @Test(arguments: allEngines)
    func everyWayDownloadsEveryPoemIntactFromEachEngine(_ engine: String) throws {
        let servers = try zip(["the-loop-that-waits", "fifty-bytes", "the-third-server"], [200, 50, 50]).map { poem, chunk in
            try PoetryServerProcess(engine: engine, delay: 0.005, numBytes: chunk, poem: poem)
        }
        defer { servers.forEach { _ = try? $0.stop() } }
        let output = try runProcess(Program.crawler, ["--way", "all", "--json", "--timeout", "20"] + servers.map { "\($0.port)" }, timeout: 120)
        #expect(output.exitCode == 0, "\(output)")
        let report = try CrawlerReport.parse(output)
        #expect(report.ways.map(\.way) == allWays)
        for way in report.ways {
            #expect(way.poems.map(\.bytes) == [3003, 615, 653], "\(engine)/\(way.way)")
            let intact = way.poems.allSatisfy(\.intact)
            #expect(intact, "\(engine)/\(way.way): \(way.poems)")
        }
    }

    /// What holds whatever the machine's load: a way that downloads one poem
    /// after another takes at least the sum of the downloads, and a way that
    /// overlaps them takes less than that sum (it cannot otherwise), and at
    /// least the slowest. (It once asked every way to land within 1.6x its
    /// floor, which a loaded machine need not give.)
    @Test func oneByOneWaysTakeTheSumAndConcurrentWaysTheSlowest() throws {
        let output = try runProcess(Program.crawler, ["--delay", "0.05", "--json"], timeout: 120)
        #expect(output.exitCode == 0, "\(output)")
        let report = try CrawlerReport.parse(output)
        let sum = report.way("blocking")!.floorSeconds
        let slowest = report.way("async")!.floorSeconds
        #expect(abs(sum - 43 * 0.05) < 0.001, "16 + 13 + 14 chunks, one after another")
        #expect(abs(slowest - 16 * 0.05) < 0.001, "the 16-chunk poem decides")
        for way in report.ways {
            #expect(way.wallSeconds > 0.95 * way.floorSeconds, "\(way.way): wall \(way.wallSeconds) s, floor \(way.floorSeconds) s")
            if ["blocking", "busy"].contains(way.way) {
                #expect(abs(way.floorSeconds - sum) < 0.001, "\(way.way) goes one by one")
            } else {
                #expect(abs(way.floorSeconds - slowest) < 0.001, "\(way.way) overlaps the downloads")
                #expect(way.wallSeconds < 0.95 * sum, "\(way.way) overlapped nothing: \(way.wallSeconds) s, the sum is \(sum) s")
            }
        }
    }

    @Test func busyPollingBurnsTheCPUTheEventLoopsSave() throws {
        let output = try runProcess(Program.crawler, ["--delay", "0.05", "--json"], timeout: 120)
        let report = try CrawlerReport.parse(output)
        let busy = report.way("busy")!
        // Spinning keeps a core busy whenever it is given one; how much of the
        // wall time that is depends on what else the machine runs, so busy's
        // CPU is compared with the evented ways' (each run in the same
        // process, on the same machine), not with its wall time.
        for evented in ["epoll", "libev", "async", "async-epoll"] {
            let way = report.way(evented)!
            #expect(way.cpuSeconds * 10 < busy.cpuSeconds, "\(evented): \(way.cpuSeconds) s against busy's \(busy.cpuSeconds) s")
            #expect(way.cpuSeconds < 0.25 * way.wallSeconds, "\(evented) sleeps while it waits")
        }
    }

    @Test(arguments: allEngines)
    func onlyTheBlockingServerMakesClientsWaitInLine(_ engine: String) throws {
        // 3003 bytes in chunks of 1000: 4 chunks, 0.3 s apart: 1.2 s per
        // client, four clients at once. In line they take at least 4.8 s;
        // served together, 1.2 s - the bound between (3.6 s) leaves a loaded
        // machine 2.4 s of slack and still tells the two apart.
        let server = try PoetryServerProcess(engine: engine, delay: 0.3, numBytes: 1000)
        defer { _ = try? server.stop() }
        let output = try runProcess(Program.crawler, ["--way", "threads"] + Array(repeating: "\(server.port)", count: 4), timeout: 60)
        #expect(output.exitCode == 0, "\(output)")
        let elapsed = try #require(elapsedSeconds(output.standardOutput))
        if engine == "blocking" {
            #expect(elapsed > 4.4, "one after the other: \(elapsed) s")
        } else {
            #expect(elapsed < 3.6, "all at once: \(elapsed) s")
        }
    }

    @Test(arguments: allWays)
    func aServerKilledMidPoemIsReportedAndTheCrawlerFails(_ way: String) throws {
        // 61 chunks of 50 bytes, 0.05 s apart: about 3 s per poem.
        let server = try PoetryServerProcess(engine: "libev", delay: 0.05, numBytes: 50)
        let crawler = try SpawnedProcess(Program.crawler, ["--way", way, "--timeout", "5", "\(server.port)"])
        usleep(500_000)
        server.process.send(SIGKILL)
        _ = try server.process.wait(timeout: 5)
        let start = monotonicSeconds()
        let output = try crawler.wait(timeout: 30)
        #expect(monotonicSeconds() - start < 5, "\(way) noticed within 5 s")
        #expect(output.exitCode == 1, "\(way): \(output)")
        #expect(output.standardOutput.contains("cut short") || output.standardOutput.contains("failed"), "\(way): \(output)")
        #expect(output.standardOutput.contains("127.0.0.1:\(server.port)"), "the task names its server")
    }

    @Test(arguments: eventedEngines)
    func aThousandConcurrentClientsAllGetThePoem(_ engine: String) throws {
        let server = try PoetryServerProcess(engine: engine, delay: 0.01, numBytes: 1000)
        defer { _ = try? server.stop() }
        let script = """
        import asyncio, resource, sys
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        async def one(port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            data = await reader.read()
            writer.close()
            return data
        async def main():
            results = await asyncio.gather(*(one(int(sys.argv[1])) for _ in range(1000)))
            expected = open(sys.argv[2], "rb").read()
            print(sum(1 for r in results if r == expected))
        asyncio.run(main())
        """
        let poemPath = temporaryPath("poem")
        _ = FileManager.default.createFile(atPath: poemPath, contents: Data(Poem.loopThatWaits.bytes))
        defer { unlink(poemPath) }
        let output = try runProcess("/usr/bin/env", ["python3", "-c", script, "\(server.port)", poemPath], timeout: 120)
        #expect(output.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) == "1000", "\(engine): \(output)")
    }

    @Test(arguments: allEngines.filter { $0 != "blocking" })
    func outOfDescriptorsTheServerBacksOffAndRecovers(_ engine: String) throws {
        // 64 descriptors, 100 clients: accept fails with EMFILE while the
        // first clients are served. The server must pause accepting (not spin
        // on the listener's readiness) and serve the rest once they leave.
        // Without LeakSanitizer (under make test-asan): about one run in two,
        // the callback engines' server reported its Listener's weak-reference
        // side table (32 bytes, once) as leaked at exit, although the
        // Listener had closed and been deinitialized (shown with a print in
        // its deinit) - LeakSanitizer's false positive on Swift's side tables
        // (see PoetryServerProcess). The graceful-stop tests still check the
        // same server for leaks.
        let server = try PoetryServerProcess(engine: engine, delay: 0.05, numBytes: 100, poem: "fifty-bytes",
                                             descriptorLimit: 64, detectLeaks: false)
        let poemPath = temporaryPath("poem")
        _ = FileManager.default.createFile(atPath: poemPath, contents: Data(Poem.fiftyBytes.bytes))
        defer { unlink(poemPath) }
        let output = try runProcess("/usr/bin/env", ["python3", slowClientsScript, "\(server.port)", "100",
                                                     "--expect", poemPath, "--pid", "\(server.process.pid)",
                                                     "--timeout", "60"], timeout: 90)
        let ended = try server.stop()
        let report = try JSONDecoder().decode(SlowClientsReport.self, from: Data(output.standardOutput.utf8))
        #expect(report.intact == 100, "\(engine): \(output)")
        let cpu = try #require(report.serverCpuSeconds)
        #expect(cpu < 0.1 * report.seconds, "\(engine) burnt \(cpu) s of CPU in \(report.seconds) s: spinning on accept?")
        #expect(ended.standardError.contains("EMFILE"), "\(engine) says why it stopped accepting: \(ended)")
        #expect(ended.exitCode == 0, "\(ended)")
    }

    /// Issue "Green every time", 4: the async engines wrote each chunk from a
    /// copy of it, kept while a slow client's write waited - 64 KiB chunks
    /// and 5,000 clients that do not read held 364 MB (libev and epoll:
    /// 30 MB). Every engine now writes from the one poem all connections
    /// share: 100 clients that stop reading cost the server little memory
    /// each, whatever the chunk. (The poem is 8 MB so that the kernel's send
    /// buffers - up to 4 MB each here - fill and the writes wait; before the
    /// fix the async engines grew 6.9 MB here, libev and epoll 40 KiB.)
    /// The callback engines still copied the part of a chunk a full socket
    /// did not take into the connection's queue: 964 KiB in most runs, but
    /// 2.5 MB (40 clients with a whole 64 KiB chunk queued) whenever the
    /// kernel's TCP memory kept the send buffers small - which failed CI once.
    /// They now write from the shared poem with Connection.tryWrite: 150-280 KiB.
    @Test(arguments: eventedEngines)
    func clientsThatStopReadingDoNotCostAChunkEach(_ engine: String) throws {
        let poemPath = temporaryPath("big-poem")
        _ = FileManager.default.createFile(atPath: poemPath, contents: Data(repeating: UInt8(ascii: "v"), count: 8 << 20))
        defer { unlink(poemPath) }
        let process = try SpawnedProcess(Program.server, ["poetry", "--engine", engine, "--delay", "0.01", "--num-bytes", "65536", poemPath])
        defer { process.send(SIGKILL); _ = try? process.wait(timeout: 5) }
        let banner = process.waitForOutput(containing: "Serving")
        let port = try #require(banner.range(of: #"port (\d+)"#, options: .regularExpression).map { banner[$0].dropFirst(5) })
        let script = """
        import socket, sys, time
        port, pid = int(sys.argv[1]), int(sys.argv[2])
        def rss():
            for line in open("/proc/%d/status" % pid):
                if line.startswith("VmRSS:"): return int(line.split()[1])
        before = rss()
        clients = []
        for _ in range(100):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", port))
            clients.append(s)
        for s in clients: s.recv(1)   # served, then never read again
        peak = before
        end = time.time() + 3
        while time.time() < end:
            peak = max(peak, rss()); time.sleep(0.05)
        print("grew", peak - before)
        """
        let output = try runProcess("/usr/bin/env", ["python3", "-c", script, String(port), "\(process.pid)"], timeout: 60)
        let grew = Int(output.standardOutput.split(separator: " ").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? .max
        // A chunk copy per client would be 6,400 KiB; ThreadSanitizer's allocator keeps more of its own.
        // Under AddressSanitizer the figure says nothing: its quarantine holds every freed block
        // (up to 256 MB) so that a use after free is caught, and 100 busy clients free plenty
        // (9-11 MB grew there on every engine, with or without a copy per client); the bound is
        // checked by the plain and ThreadSanitizer stages and by make stress-test.
        if !addressSanitizerIsActive {
            let bound = threadSanitizerIsActive ? 5 * 1024 : 2 * 1024
            #expect(grew < bound, "\(engine): 100 clients that stopped reading grew the server \(grew) KiB: \(output)")
        }
        print("\(engine): 100 clients that stopped reading grew the server \(grew) KiB")
    }

    @Test(arguments: allEngines.filter { $0 != "blocking" })
    func aSIGTERMLetsThePoemsInFlightEndAndRefusesNewClients(_ engine: String) throws {
        // Issue 26: the poetry server in a ServiceGroup. 31 chunks of 100
        // bytes, 0.05 s apart: about 1.5 s per poem, far inside the stop timeout.
        let server = try PoetryServerProcess(engine: engine, delay: 0.05, numBytes: 100, stopTimeout: 60)
        defer { server.process.send(SIGKILL); _ = try? server.process.wait(timeout: 5) }
        let script = """
        import socket, sys, time
        port = int(sys.argv[1])
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
        got = [s.recv(100) for s in clients]   # each one is being served
        print("connected", flush=True)
        for i, s in enumerate(clients):
            while True:
                chunk = s.recv(65536)
                if not chunk: break
                got[i] += chunk
        print("lengths", sorted(set(len(g) for g in got)), flush=True)
        refused = False
        end = time.time() + 30
        while not refused and time.time() < end:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=5).close(); time.sleep(0.05)
            except OSError:
                refused = True
        print("refused" if refused else "accepted", flush=True)
        """
        let clients = try SpawnedProcess("/usr/bin/env", ["python3", "-c", script, "\(server.port)"])
        _ = clients.waitForOutput(containing: "connected")
        server.process.send(SIGTERM)
        let output = try clients.wait(timeout: 60)
        let ended = try server.process.wait(timeout: 60)
        let poemLength = Poem.named("the-loop-that-waits")!.bytes.count
        #expect(output.standardOutput.contains("lengths [\(poemLength)]"), "\(engine): every poem in flight whole: \(output)")
        #expect(output.standardOutput.contains("refused"), "\(engine): \(output)")
        #expect(ended.exitCode == 0, "\(engine): \(ended)")
        #expect(ended.standardError.contains("shut down gracefully"), "\(engine): \(ended.standardError)")
    }

    @Test func signalsDuringTheDownloadsLoseNothing() throws {
        let crawler = try SpawnedProcess(Program.crawler, ["--delay", "0.02", "--json"])
        for _ in 0..<20 {
            for signal in [SIGCHLD, SIGURG, SIGCONT, SIGWINCH] {
                crawler.send(signal)
                usleep(5_000)
            }
        }
        let output = try crawler.wait(timeout: 120)
        #expect(output.exitCode == 0, "\(output)")
        let report = try CrawlerReport.parse(output)
        #expect(report.ways.allSatisfy { $0.poems.allSatisfy(\.intact) })
    }

    @Test func aRefusedServerIsReportedAndTheOthersFinish() throws {
        let server = try PoetryServerProcess(engine: "async", delay: 0.005, numBytes: 500)
        defer { _ = try? server.stop() }
        let closed = try unusedPort()
        for way in allWays {
            let output = try runProcess(Program.crawler, ["--way", way, "\(closed)", "\(server.port)"], timeout: 60)
            #expect(output.exitCode == 1, "\(way): \(output)")
            #expect(output.standardOutput.contains("Task 1: failed after 0 bytes from 127.0.0.1:\(closed)"), "\(way): \(output)")
            #expect(output.standardOutput.contains("Connection refused"), "\(way): \(output)")
            #expect(output.standardOutput.contains("Task 2: got 3003 bytes of poetry from 127.0.0.1:\(server.port)"), "\(way): \(output)")
        }
    }

    @Test func aServerThatSendsNothingTimesOut() throws {
        // A listener that accepts (the kernel does) and never sends a byte.
        let silent = try SocketDescriptor.listening(on: SocketAddress(parsing: "0"))
        defer { silent.close() }
        let port = try silent.localAddress().port
        for way in allWays {
            let start = monotonicSeconds()
            let output = try runProcess(Program.crawler, ["--way", way, "--timeout", "0.5", "\(port)"], timeout: 30)
            #expect(output.exitCode == 1, "\(way): \(output)")
            #expect(output.standardOutput.contains("from 127.0.0.1:\(port)"), "\(way): \(output)")
            #expect(output.standardOutput.contains("timeout") || output.standardOutput.contains("timed out"), "\(way): \(output)")
            #expect(monotonicSeconds() - start < 10)
        }
    }

    @Test(arguments: allWays)
    func everyWaySpeaksTheClassicProtocolAndBoundsAHostileServer(_ way: String) throws {
        // Issue "Hardening", 3 and 6: a classic slow poetry server that never
        // reads (a request sent to it turns its close into a reset), one that
        // sends without end, one that sends a byte a second. The first poem
        // arrives whole; the others fail within the size and the deadline,
        // naming the address, the bytes and the reason; memory stays bounded.
        let poem = Poem.builtIn[1].bytes
        let poemPath = temporaryPath("fifty-bytes.txt")
        try Data(poem).write(to: URL(fileURLWithPath: poemPath))
        let peers = try SpawnedProcess("/usr/bin/env", ["python3", "-u", poetryPeersScript, poemPath, "--num-bytes", "50", "--delay", "0.01"])
        defer { peers.send(SIGKILL); _ = try? peers.wait(timeout: 5) }
        let banner = peers.waitForOutput(containing: "\n")
        let ports = banner.split(whereSeparator: \.isWhitespace).dropFirst().map(String.init)
        if ports.count != 3 { peers.send(SIGKILL) }
        try #require(ports.count == 3, "poetry_peers.py: \(banner) \(ports.count == 3 ? "" : String(describing: try? peers.wait(timeout: 5)))")
        // Python runs the crawler and reports its peak memory (its children's included).
        let script = """
        import resource, subprocess, sys
        done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
        print(done.stdout, end="")
        print("exit", done.returncode)
        print("maxrss", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        """
        let start = monotonicSeconds()
        let output = try runProcess("/usr/bin/env", ["python3", "-c", script, Program.crawler, "--way", way, "--timeout", "2",
                                                     "--max-poem-bytes", "1000000"] + ports, timeout: 60)
        let elapsed = monotonicSeconds() - start
        let text = output.standardOutput
        #expect(text.contains("Task 1: got \(poem.count) bytes of poetry from 127.0.0.1:\(ports[0])"), "\(way): \(output)")
        #expect(text.contains("Task 2: failed after "), "\(way): \(output)")
        #expect(text.contains("from 127.0.0.1:\(ports[1]): the poem is over 1000000 bytes (--max-poem-bytes)"), "\(way): \(output)")
        #expect(text.contains("from 127.0.0.1:\(ports[2]): no complete poem within 2 s (--timeout)"), "\(way): \(output)")
        #expect(text.contains("exit 1"), "\(way): \(output)")
        let kilobytes = Int(text.split(separator: "\n").first { $0.hasPrefix("maxrss") }?.split(separator: " ").last ?? "") ?? .max
        #expect(kilobytes < 64 * 1024, "\(way): \(kilobytes) KiB")
        // Two seconds for the trickle, a sum for the ways that go one by one.
        #expect(elapsed < 10, "\(way): \(elapsed) s")
    }

    @Test(arguments: [
        (Program.crawler, ["--way", "sideways"], "sideways"),
        (Program.crawler, ["http"], "http"),
        (Program.crawler, ["--delay", "-1"], "--delay"),
        (Program.crawler, ["127.0.0.1:99999"], "99999"),
        (Program.server, ["poetry", "--port", "70000"], "--port"),
        (Program.server, ["poetry", "--engine", "turbo"], "turbo"),
        (Program.server, ["poetry", "/no/such/poem.txt"], "/no/such/poem.txt"),
        (Program.server, ["poetry", "--poem", "limerick"], "limerick"),
    ])
    func usageErrorsNameTheArgumentAndExit64(_ program: String, _ arguments: [String], _ named: String) throws {
        let output = try runProcess(program, arguments, timeout: 30)
        #expect(output.exitCode == 64, "\(arguments): \(output)")
        #expect(output.standardError.contains(named), "\(arguments): \(output)")
    }
}

/// The seconds of the classic client's "Got K poems in H:MM:SS.ffffff".
func elapsedSeconds(_ output: String) -> Double? {
    guard let range = output.range(of: #"in \d+:\d\d:\d\d\.\d+"#, options: .regularExpression) else { return nil }
    let parts = output[range].dropFirst(3).split(separator: ":")
    return Double(parts[0])! * 3600 + Double(parts[1])! * 60 + Double(parts[2])!
}

let poetryPeersScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Examples/Crawler/scripts/poetry_peers.py").path

