import Engines
import EventCore
import Foundation
import Glibc
import Testing
import TestSupport

/// A `server http` process, started and asked for its port.
final class HTTPServerProcess {
    let process: SpawnedProcess
    let port: UInt16
    let statsPath = temporaryPath("stats.json")

    init(engine: String, _ extra: [String] = [], descriptorLimit: Int? = nil, environment: [String: String] = [:]) throws {
        let arguments = ["http", "--engine", engine, "--port", "0", "--stats", statsPath] + extra
        if let descriptorLimit {
            process = try SpawnedProcess("/usr/bin/prlimit", ["--nofile=\(descriptorLimit):\(descriptorLimit)", Program.server] + arguments,
                                         environment: environment)
        } else {
            process = try SpawnedProcess(Program.server, arguments, environment: environment)
        }
        let banner = process.waitForOutput(containing: "Serving HTTP")
        guard let range = banner.range(of: #":(\d+)/"#, options: .regularExpression),
              let port = UInt16(banner[range].dropFirst().dropLast()) else {
            process.send(SIGKILL)
            throw EventLoopError.system("server banner: \(banner)", .ioError)
        }
        self.port = port
    }

    var url: String { "http://127.0.0.1:\(port)" }

    /// The server's open descriptors now.
    var descriptorCount: Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(process.pid)/fd").count) ?? -1
    }

    /// Resident memory, in KiB.
    var residentKiB: Int {
        let status = (try? String(contentsOfFile: "/proc/\(process.pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
    }

    /// Waits until the descriptor count is at most `count` (connections are closed asynchronously).
    func waitForDescriptors(atMost count: Int, timeout: Double = 10) -> Int {
        let deadline = monotonicSeconds() + timeout
        var now = descriptorCount
        while now > count && monotonicSeconds() < deadline {
            usleep(20_000)
            now = descriptorCount
        }
        return now
    }

    /// Stops the server (SIGTERM); returns how it ended and what it counted.
    func stop() throws -> (ProcessOutput, ServerStats?) {
        process.send(SIGTERM)
        // Generous: under make stress-test's load the threads engine took over
        // 10 s to join its threads, and the wait then killed it.
        let output = try process.wait(timeout: 30)
        defer { unlink(statsPath) }
        let stats = try? JSONDecoder().decode(ServerStats.self, from: Data(contentsOf: URL(fileURLWithPath: statsPath)))
        return (output, stats)
    }
}

/// What `server http --stats` writes.
struct ServerStats: Decodable {
    var accepted: Int
    var open: Int
    var peakOpen: Int
    var responses: [String: Int]
    var pageFetches: [Int]
}

/// What `crawler web --json` prints.
struct WebCrawlReport: Decodable {
    struct Failure: Decodable { var url: String; var reason: String }

    /// The report `crawler web --json` printed; an error that shows the whole output if it is not one.
    static func parse(_ output: ProcessOutput) throws -> WebCrawlReport {
        do {
            return try JSONDecoder().decode(WebCrawlReport.self, from: Data(output.standardOutput.utf8))
        } catch {
            throw EventLoopError.system("crawler web --json printed no report: \(output)", .ioError)
        }
    }

    var pages: Int
    var bytes: Int
    var redirects: Int
    var connections: Int
    var wallSeconds: Double
    var errors: [String: Int]
    var skipped: [String: Int]
    var failures: [Failure]
    /// With --frontier: the whole crawl's pages, and this process's Redis commands.
    var crawlPages: Int?
    var frontierCommands: Int?
    var frontierError: String?
}

let scriptsDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Examples").path
let probeScript = scriptsDirectory + "/Server/scripts/http_probe.py"
let badSiteScript = scriptsDirectory + "/Crawler/scripts/bad_site.py"

/// Runs `http_probe.py PORT ARGUMENTS...` and decodes the JSON it prints last.
func probe(_ port: UInt16, _ arguments: [String], timeout: Double = 60) throws -> [String: Any] {
    let output = try runProcess("/usr/bin/env", ["python3", probeScript, "\(port)"] + arguments, timeout: timeout)
    let line = output.standardOutput.split(separator: "\n").last.map(String.init) ?? ""
    guard let json = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
        throw EventLoopError.system("http_probe \(arguments): \(output)", .ioError)
    }
    return json
}

/// The HTTP server's engines: all but one client at a time.
let httpEngines = Engine.allCases.filter { $0 != .blocking }.map(\.rawValue)

/// The engines of a timeout test end to end: the threads (no loop), and
/// each code of the evented engines once - callbacks on libev, async on
/// epoll - for the kernel's side. The timeouts' logic is tested for the
/// callback and the async code exactly, on the testing loop's clock
/// (Tests/EventLoopTestingTests/HTTPTimeoutsOnTheTestLoopTests.swift).
let timeoutEngines = [Engine.threads, .libev, .asyncEpoll].map(\.rawValue)

@Suite("The HTTP server and the web crawler, end to end", .serialized)
struct WebTests {
    @Test(arguments: httpEngines)
    func curlAndPythonKeepTheConnectionAliveAndPipeline(_ engine: String) throws {
        let server = try HTTPServerProcess(engine: engine)
        // curl: two URLs, one connection.
        let curl = try runProcess("/usr/bin/curl", ["-s", "--http1.1", "\(server.url)/plaintext", "\(server.url)/page/3",
                                                   "-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\n"])
        #expect(curl.standardOutput == "200 1\n200 0\n", "\(engine): \(curl)")
        let body = try runProcess("/usr/bin/curl", ["-s", "-i", "\(server.url)/plaintext"])
        #expect(body.standardOutput.hasPrefix("HTTP/1.1 200 OK\r\n") && body.standardOutput.hasSuffix("\r\n\r\nHello, World!"), "\(body)")
        let head = try runProcess("/usr/bin/curl", ["-s", "-I", "\(server.url)/page/1"])
        #expect(head.standardOutput.contains("Content-Type: text/html"), "\(head)")
        // Python's http.client: three requests over one socket, HTTP/1.0 keep-alive too.
        let script = """
        import http.client, sys
        c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
        out = []
        for path in ["/plaintext", "/page/2", "/nowhere"]:
            c.request("GET", path)
            r = c.getresponse(); body = r.read()
            out.append("%d %d" % (r.status, len(body)))
            if path == "/plaintext": first = c.sock
        out.append("same socket" if c.sock is first else "new socket")
        http.client.HTTPConnection._http_vsn, http.client.HTTPConnection._http_vsn_str = 10, "HTTP/1.0"
        c2 = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
        c2.request("GET", "/plaintext", headers={"Connection": "keep-alive"}); r = c2.getresponse()
        out.append("%d %s %s" % (r.status, r.getheader("Connection"), r.read().decode()))
        print("; ".join(out))
        """
        let python = try runProcess("/usr/bin/env", ["python3", "-c", script, "\(server.port)"])
        #expect(python.standardOutput.hasPrefix("200 13; 200 "), "\(engine): \(python)")
        #expect(python.standardOutput.contains("; 404 ") && python.standardOutput.contains("same socket; 200 keep-alive Hello, World!"),
                "\(engine): \(python)")
        // Sixteen pipelined requests in one write: sixteen answers, in order.
        let pipelined = try probe(server.port, ["pipelined", "16"])
        #expect(pipelined["statuses"] as? [Int] == Array(repeating: 200, count: 16), "\(engine): \(pipelined)")
        #expect(pipelined["titles"] as? [Int] == Array(0..<15), "\(engine): \(pipelined)")
        #expect(pipelined["plaintextLast"] as? Bool == true && pipelined["closed"] as? Bool == true)
        let (ended, stats) = try server.stop()
        #expect(ended.exitCode == 0, "\(ended)")
        // curl 3 (and a HEAD), Python 3 + 1, the pipeline 16.
        #expect(stats?.responses["200"] == 23 && stats?.responses["404"] == 1, "\(String(describing: stats))")
    }

    static let badInputs: [(String, Int)] = [
        (#"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"#, 400),
        (#"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"#, 400),
        (#"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello"#, 400),
        (#"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"#, 400),
        (#"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello"#, 400),
        (#"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n"#, 400),
        (#"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"#, 400),
        (#"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n"#, 400),
        (#"GET / HTTP/1.1\r\n\r\n"#, 400),
        (#"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"#, 400),
        (#"GET / HTTP/1.1\r\nHost : a\r\n\r\n"#, 400),
        (#"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n"#, 400),
        (#"GET / HTTP/1.1\r\nHost: a\r\nX: b\x00c\r\n\r\n"#, 400),
        (#"GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n"#, 400),
        (#"GET / HTTP/01.1\r\nHost: a\r\n\r\n"#, 400),
        ("GET /" + String(repeating: "a", count: 65536) + #" HTTP/1.1\r\nHost: a\r\n\r\n"#, 414),
        (#"GET / HTTP/1.1\r\nHost: a\r\nX: "# + String(repeating: "v", count: 16 * 1024) + #"\r\n\r\n"#, 431),
        (#"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhiTHERE\r\n\r\n"#, 400),
        // Issue "Hardening", 8: framing http_parser lets through.
        (#"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"#, 400),
        (#"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n0\r\n\r\n"#, 400),
        (#"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"#, 501),
        (#"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n"#, 400),
        (#"\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"#, 400),
    ]

    @Test(arguments: httpEngines)
    func everyBadInputGetsItsStatusTheConnectionClosesAndTheNextIsServed(_ engine: String) throws {
        let server = try HTTPServerProcess(engine: engine)
        let baseline = server.descriptorCount
        for (request, status) in Self.badInputs {
            let result = try probe(server.port, ["send", request])
            let statuses = result["statuses"] as? [Int] ?? []
            #expect(statuses.last == status, "\(engine): \(request.prefix(80)): \(result)")
            #expect(result["closed"] as? Bool == true, "\(engine): \(request.prefix(80)) left the connection open")
            let next = try probe(server.port, ["send", #"GET /plaintext HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"#])
            #expect(next["statuses"] as? [Int] == [200], "\(engine): after \(request.prefix(80)): \(next)")
        }
        #expect(server.waitForDescriptors(atMost: baseline) == baseline)
        let (ended, _) = try server.stop()
        #expect(ended.exitCode == 0, "\(ended)")
    }

    @Test(arguments: httpEngines)
    func curlGets100ContinueAndAnAbsoluteFormTargetIsServed(_ engine: String) throws {
        // Issue "Hardening", 10: without 100 Continue curl waits a second
        // before it sends a body it announced with Expect.
        let server = try HTTPServerProcess(engine: engine)
        let body = temporaryPath("body")
        try Data(repeating: UInt8(ascii: "x"), count: 4096).write(to: URL(fileURLWithPath: body))
        defer { unlink(body) }
        // curl -v shows what came back: the interim 100 before the final
        // answer (a timing bound - curl's 1 s wait - is what a loaded machine breaks).
        let posted = try runProcess("/usr/bin/curl", ["-s", "-v", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Expect: 100-continue",
                                                      "--data-binary", "@" + body, "\(server.url)/form"], timeout: 30)
        #expect(posted.standardOutput == "405", "\(engine): \(posted)")
        #expect(posted.standardError.contains("< HTTP/1.1 100 Continue"), "\(engine): no 100 Continue: \(posted)")
        #expect(!posted.standardError.contains("Done waiting for 100-continue"), "\(engine): curl waited for 100 Continue: \(posted)")
        let absolute = try runProcess("/usr/bin/curl", ["-s", "--request-target", "http://example.com/plaintext", "\(server.url)/"], timeout: 30)
        #expect(absolute.standardOutput == "Hello, World!", "\(engine): \(absolute)")
        _ = try server.stop()
    }

    @Test(arguments: httpEngines)
    func aThousandClientsResettingMidRequestLeakNothing(_ engine: String) throws {
        let server = try HTTPServerProcess(engine: engine)
        let baseline = server.descriptorCount
        _ = try probe(server.port, ["resets", "1000"], timeout: 120)
        #expect(server.waitForDescriptors(atMost: baseline) == baseline, "\(engine): descriptors back to \(baseline)")
        let next = try probe(server.port, ["send", #"GET /plaintext HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"#])
        #expect(next["statuses"] as? [Int] == [200], "\(engine): \(next)")
        let (ended, _) = try server.stop()
        #expect(ended.exitCode == 0, "\(ended)")
    }

    @Test(arguments: httpEngines)
    func outOfDescriptorsTheServerBacksOffAndRecovers(_ engine: String) throws {
        // 64 descriptors, 100 clients holding their connection for 1.5 s:
        // accept fails with EMFILE; the server pauses accepting (no spinning)
        // and serves the rest once the first leave.
        let server = try HTTPServerProcess(engine: engine, descriptorLimit: 64)
        let baseline = server.descriptorCount
        let cpuBefore = processCPUSeconds(server.process.pid)
        let start = monotonicSeconds()
        let result = try probe(server.port, ["hold", "100", "1.5"], timeout: 120)
        let seconds = monotonicSeconds() - start
        let cpu = processCPUSeconds(server.process.pid) - cpuBefore
        #expect(result["ok"] as? Int == 100, "\(engine): \(result)")
        #expect(cpu < 0.1 * seconds, "\(engine) burnt \(cpu) s of CPU in \(seconds) s: spinning on accept?")
        #expect(server.waitForDescriptors(atMost: baseline) == baseline, "\(engine): descriptors back to \(baseline)")
        let (ended, _) = try server.stop()
        #expect(ended.standardError.contains("EMFILE"), "\(engine) says why it stopped accepting: \(ended)")
        #expect(ended.exitCode == 0, "\(ended)")
    }

    @Test(arguments: httpEngines)
    func aSlowReaderPausesItsConnectionNotTheServer(_ engine: String) throws {
        // Under AddressSanitizer freed memory sits in a quarantine (256 MiB)
        // before reuse, so RSS would grow with any work: turn it off for the
        // server. Its allocator still keeps more than malloc does, hence a
        // wider bound there - still well under the 18 MB of answers that
        // buffering them all would hold.
        var environment: [String: String] = [:]
        var bound = 4 * 1024
        if addressSanitizerIsActive {
            let options = ProcessInfo.processInfo.environment["ASAN_OPTIONS"].map { $0 + ":" } ?? ""
            environment["ASAN_OPTIONS"] = options + "quarantine_size_mb=0:thread_local_quarantine_size_kb=0"
            bound = 12 * 1024
        }
        // ThreadSanitizer's allocator and its shadow of every page touched add
        // to RSS as well (4,108 KiB seen once for the async engine, against a
        // 4,096 bound that holds without it).
        if threadSanitizerIsActive {
            bound = 8 * 1024
        }
        let server = try HTTPServerProcess(engine: engine, environment: environment)
        let baseline = server.descriptorCount
        let before = server.residentKiB
        // 40,000 pipelined requests (about 18 MB of answers), nothing read for 6 s.
        let reader = try SpawnedProcess("/usr/bin/env", ["python3", probeScript, "\(server.port)", "slow-reader", "40000", "6"])
        _ = reader.waitForOutput(containing: "sent", timeout: 30)
        usleep(1_000_000)
        // Others are served meanwhile, at once.
        let start = monotonicSeconds()
        let curl = try runProcess("/usr/bin/curl", ["-s", "-m", "5", "\(server.url)/plaintext"])
        // Served while the reader is paused, not after it (it reads again 5 s
        // from now): the bound leaves a loaded machine room and tells the two apart.
        #expect(curl.standardOutput == "Hello, World!" && monotonicSeconds() - start < 3, "\(engine): \(curl)")
        let during = server.residentKiB
        let output = try reader.wait(timeout: 60)
        #expect(output.standardOutput.contains("\"responses\": 40000"), "\(engine): \(output)")
        #expect(during - before < bound, "\(engine): memory grew \(during - before) KiB while the reader did not read")
        print("\(engine): memory grew \(during - before) KiB while the reader did not read (bound \(bound))")
        #expect(server.waitForDescriptors(atMost: baseline) == baseline, "\(engine): descriptors back to \(baseline)")
        _ = try server.stop()
    }

    @Test(arguments: httpEngines)
    func atTheConnectionCapANewClientWaitsUntilOneCloses(_ engine: String) throws {
        let server = try HTTPServerProcess(engine: engine, ["--max-connections", "2"])
        let script = """
        import json, socket, sys, time
        port = int(sys.argv[1])
        request = b"GET /plaintext HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n"
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        for s in held:  # both accepted: each is answered
            s.sendall(request)
            s.settimeout(5)
            assert s.recv(4096).startswith(b"HTTP/1.1 200"), "a held connection was not served"
        third = socket.create_connection(("127.0.0.1", port))  # the kernel's backlog takes it
        third.sendall(request)
        third.settimeout(0.5)
        try:
            early = len(third.recv(4096))
        except socket.timeout:
            early = 0
        held[0].close()
        start = time.monotonic()
        third.settimeout(10)
        try:
            late = third.recv(4096)
        except socket.timeout:
            late = b""
        print(json.dumps({"early": early, "served": late.startswith(b"HTTP/1.1 200"), "after": time.monotonic() - start}))
        """
        let output = try runProcess("/usr/bin/env", ["python3", "-c", script, "\(server.port)"], timeout: 60)
        let line = output.standardOutput.split(separator: "\n").last.map(String.init) ?? ""
        let result = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(engine): \(output)")
        #expect(result["early"] as? Int == 0, "\(engine) served a third connection over --max-connections 2")
        #expect(result["served"] as? Bool == true, "\(engine) never took the waiting client once one closed: \(output)")
        #expect((result["after"] as? Double ?? 99) < 5, "\(engine): \(output)")
        let (ended, stats) = try server.stop()
        #expect(ended.exitCode == 0)
        #expect(stats?.peakOpen == 2, "\(String(describing: stats))")
    }

    @Test(arguments: eventedEngines)
    func tenThousandIdleConnectionsAreHeld(_ engine: String) throws {
        let server = try HTTPServerProcess(engine: engine)
        let baseline = server.descriptorCount
        let script = """
        import resource, signal, socket, sys
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        held = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(int(sys.argv[2]))]
        print("ready", flush=True)
        signal.pause()
        """
        let holder = try SpawnedProcess("/usr/bin/env", ["python3", "-c", script, "\(server.port)", "10000"])
        _ = holder.waitForOutput(containing: "ready", timeout: 120)
        let curl = try runProcess("/usr/bin/curl", ["-s", "-m", "5", "\(server.url)/plaintext"])
        #expect(curl.standardOutput == "Hello, World!", "\(engine): \(curl)")
        #expect(server.waitForDescriptors(atMost: .max) >= baseline + 10_000, "\(engine) holds them all")
        holder.send(SIGKILL)
        _ = try holder.wait(timeout: 60)
        #expect(server.waitForDescriptors(atMost: baseline, timeout: 20) == baseline)
        let (ended, stats) = try server.stop()
        #expect(ended.exitCode == 0)
        #expect((stats?.peakOpen ?? 0) >= 10_000, "\(String(describing: stats))")
    }

    @Test(arguments: httpEngines)
    func sigtermFinishesTheRequestInFlightAndExits(_ engine: String) throws {
        let server = try HTTPServerProcess(engine: engine)
        let script = """
        import socket, sys, time, os, signal
        port, pid = int(sys.argv[1]), int(sys.argv[2])
        idle = socket.create_connection(("127.0.0.1", port))
        idle.sendall(b"GET /plaintext HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n"); idle.recv(4096)
        busy = socket.create_connection(("127.0.0.1", port))
        busy.sendall(b"GET /page/1 HTTP/1.1\\r\\nHost: a\\r\\n")
        time.sleep(0.3)
        start = time.time(); os.kill(pid, signal.SIGTERM); time.sleep(0.5)
        busy.sendall(b"\\r\\n"); busy.settimeout(5); data = b""
        while True:
            chunk = busy.recv(65536)
            if not chunk: break
            data += chunk
        idle.settimeout(5)
        print("busy", data.split(b"\\r\\n")[0].decode(), "closed", "idle closed" if idle.recv(10) == b"" else "idle open")
        """
        let output = try runProcess("/usr/bin/env", ["python3", "-c", script, "\(server.port)", "\(server.process.pid)"], timeout: 30)
        #expect(output.standardOutput.contains("busy HTTP/1.1 200 OK closed idle closed"), "\(engine): \(output)")
        // It exits by itself (0, not killed at the wait's end) once the answer
        // is out; how fast is the machine's business (5.5-6.2 s was seen under
        // make stress-test's load, where the bound was 5 s).
        let ended = try server.process.wait(timeout: 30)
        #expect(ended.exitCode == 0, "\(engine): \(ended)")
    }

    @Test(arguments: timeoutEngines)
    func slowClientsGet408OrAreClosedWhileOthersAreServed(_ engine: String) throws {
        let server = try HTTPServerProcess(engine: engine, ["--header-timeout", "1", "--idle-timeout", "2"])
        let baseline = server.descriptorCount
        // A slowloris (a head one byte a while), a client that never sends,
        // and curl polling meanwhile.
        let script = """
        import select, socket, sys, time, threading
        port = int(sys.argv[1]); out = {}
        def slowloris():
            s = socket.create_connection(("127.0.0.1", port)); start = time.time(); data = b""
            s.settimeout(10)
            try:
                for byte in b"GET / HTTP/1.1\\r\\nHost: a\\r\\nX-Slow: " + b"v" * 100:
                    if select.select([s], [], [], 0)[0]: break
                    s.send(bytes([byte])); time.sleep(0.1)
            except OSError:
                pass
            answered = time.time() - start
            try:
                while True:
                    chunk = s.recv(4096)
                    if not chunk: break
                    data += chunk
            except OSError:
                pass
            out["slowloris"] = "%s after %.1f s" % (data.split(b"\\r\\n")[0].decode(), answered)
        def silent():
            s = socket.create_connection(("127.0.0.1", port)); start = time.time(); s.settimeout(10)
            out["silent"] = "closed after %.1f s" % (time.time() - start) if s.recv(10) == b"" else "got data"
        threads = [threading.Thread(target=slowloris), threading.Thread(target=silent)]
        for t in threads: t.start()
        for t in threads: t.join()
        print(out["slowloris"]); print(out["silent"])
        """
        let clients = try SpawnedProcess("/usr/bin/env", ["python3", "-c", script, "\(server.port)"])
        var slowest = 0.0
        for _ in 0..<10 {
            let start = monotonicSeconds()
            let curl = try runProcess("/usr/bin/curl", ["-s", "-m", "5", "\(server.url)/plaintext"])
            slowest = max(slowest, monotonicSeconds() - start)
            #expect(curl.standardOutput == "Hello, World!", "\(engine): \(curl)")
            usleep(200_000)
        }
        // The slow clients hold on for up to 10 s; curl gives up at 5.
        #expect(slowest < 4, "\(engine): a curl took \(slowest) s")
        let output = try clients.wait(timeout: 30)
        let lines = output.standardOutput.split(separator: "\n")
        // 408 one to two seconds after the first byte (the tick is one second).
        let slow = lines.first.map(String.init) ?? ""
        #expect(slow.hasPrefix("HTTP/1.1 408 Request Timeout after "), "\(engine): \(output)")
        let seconds = Double(slow.split(separator: " ").dropLast().last ?? "") ?? 0
        #expect(seconds >= 1 && seconds < 3.5, "\(engine): \(slow)")
        #expect(lines.count == 2 && lines[1].hasPrefix("closed after "), "\(engine): \(output)")
        #expect(server.waitForDescriptors(atMost: baseline) == baseline)
        _ = try server.stop()
    }

    @Test(arguments: timeoutEngines)
    func emptyLinesOnceASecondCannotHoldTheServer(_ engine: String) throws {
        // Issue "Hardening", 1: fifty connections, at the connection cap, each
        // sending an empty line a second and never a request line. Each is cut
        // at the head timeout; curl, refused a place meanwhile, is served then.
        let server = try HTTPServerProcess(engine: engine, ["--max-connections", "50", "--header-timeout", "2"])
        let baseline = server.descriptorCount
        let script = """
        import socket, sys, threading, time
        port = int(sys.argv[1]); results = []
        def hold():
            s = socket.create_connection(("127.0.0.1", port)); start = time.time(); data = b""
            s.settimeout(0.2)
            while time.time() - start < 20:
                try:
                    s.send(b"\\r\\n")
                except OSError:
                    break
                try:
                    chunk = s.recv(4096)
                    if not chunk: break
                    data += chunk
                except socket.timeout:
                    pass
                except OSError:
                    break
                time.sleep(0.8)
            results.append((time.time() - start, data.split(b"\\r\\n")[0].decode()))
        threads = [threading.Thread(target=hold) for _ in range(50)]
        for t in threads: t.start()
        time.sleep(0.5)
        print("holding", flush=True)
        for t in threads: t.join()
        print("slowest %.1f" % max(r[0] for r in results))
        print("answers", sorted(set(r[1] for r in results)))
        """
        let clients = try SpawnedProcess("/usr/bin/env", ["python3", "-c", script, "\(server.port)"])
        _ = clients.waitForOutput(containing: "holding")
        let start = monotonicSeconds()
        let curl = try runProcess("/usr/bin/curl", ["-s", "-m", "15", "\(server.url)/plaintext"], timeout: 30)
        let waited = monotonicSeconds() - start
        #expect(curl.standardOutput == "Hello, World!", "\(engine): \(curl)")
        #expect(waited < 8, "\(engine): curl waited \(waited) s")
        let output = try clients.wait(timeout: 60)
        let slowest = Double(output.standardOutput.split(separator: "\n").first { $0.hasPrefix("slowest") }?.split(separator: " ").last ?? "") ?? 99
        #expect(slowest < 6, "\(engine): a connection of empty lines was held \(slowest) s: \(output)")
        #expect(output.standardOutput.contains("HTTP/1.1 408 Request Timeout"), "\(engine): \(output)")
        #expect(server.waitForDescriptors(atMost: baseline) == baseline)
        _ = try server.stop()
    }

    /// Issue "Green every time", 4: a client pipelining without pause (and
    /// reading every answer) must not starve the others. The async engines
    /// read as long as its bytes kept coming - a probe waited 1 to 5 s, or
    /// for ever - while the callback engines read once per turn of the loop.
    /// Every engine now bounds a connection's work per turn; a probe waits
    /// milliseconds (the bound leaves a loaded, sanitized machine room).
    @Test(arguments: httpEngines)
    func aPipeliningClientCannotStarveTheOthers(_ engine: String) throws {
        let server = try HTTPServerProcess(engine: engine)
        let result = try probe(server.port, ["starve", "25"], timeout: 300)
        #expect(result["ok"] as? Int == 25, "\(engine): \(result)")
        let slowest = result["slowest"] as? Double ?? 99
        #expect(slowest < 2, "\(engine): a probe waited \(slowest) s beside the pipelining client: \(result)")
        #expect((result["pipelined"] as? Int ?? 0) > 0, "\(engine): the pipelining client was served too: \(result)")
        let (ended, _) = try server.stop()
        #expect(ended.exitCode == 0, "\(ended)")
    }

    @Test(arguments: httpEngines)
    func aLingeringCloseEndsOnTimeWhateverThePeerSends(_ engine: String) throws {
        // Issue "Hardening", 7: after an error answer the server lingers for
        // the peer's FIN at most 2 s in all - a byte every 0.3 s is no reprieve.
        let server = try HTTPServerProcess(engine: engine)
        let script = """
        import socket, sys, time
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
        s.sendall(b"GET / HTTP/1.1\\r\\nHost : a\\r\\n\\r\\n")
        s.settimeout(5)
        answer = b""
        while not answer.endswith(b"\\n") or b"\\r\\n\\r\\n" not in answer:
            chunk = s.recv(4096)
            if not chunk: break
            answer += chunk
        start = time.time()
        while time.time() - start < 15:
            try:
                s.send(b"x")
            except OSError:
                break
            time.sleep(0.3)
        print(answer.split(b"\\r\\n")[0].decode(), "closed after %.1f" % (time.time() - start))
        """
        let output = try runProcess("/usr/bin/env", ["python3", "-c", script, "\(server.port)"], timeout: 30)
        #expect(output.standardOutput.hasPrefix("HTTP/1.1 400 Bad Request closed after "), "\(engine): \(output)")
        let seconds = Double(output.standardOutput.split(separator: " ").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 99
        #expect(seconds < 4.5, "\(engine): lingered \(seconds) s")
        _ = try server.stop()
    }

    @Test(arguments: timeoutEngines)
    func aPeerThatNeverReadsIsClosedAtTheIdleTimeout(_ engine: String) throws {
        // Issue "Hardening", 7: partial sends are not progress enough to hold
        // a connection past its idle timeout when the peer takes nothing.
        let server = try HTTPServerProcess(engine: engine, ["--idle-timeout", "2"])
        let baseline = server.descriptorCount
        let script = """
        import socket, sys, threading, time
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
        threading.Thread(target=s.sendall, args=(b"GET /page/1 HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n" * 20000,), daemon=True).start()
        time.sleep(0.2)
        print("sent", flush=True)
        time.sleep(30)
        """
        let client = try SpawnedProcess("/usr/bin/env", ["python3", "-c", script, "\(server.port)"])
        defer { client.send(SIGKILL); _ = try? client.wait(timeout: 5) }
        _ = client.waitForOutput(containing: "sent")
        let start = monotonicSeconds()
        let left = server.waitForDescriptors(atMost: baseline, timeout: 20)
        let seconds = monotonicSeconds() - start
        #expect(left == baseline, "\(engine)")
        #expect(seconds < 4.5, "\(engine): a peer that reads nothing was held \(seconds) s (idle timeout 2 s)")
        _ = try server.stop()
    }

    @Test(arguments: httpEngines)
    func twoWorkersShareThePortAndServeEveryPageOnce(_ engine: String) throws {
        let server = try HTTPServerProcess(engine: engine, ["--workers", "2"])
        #expect(listeningSockets(port: server.port) == 2, "one listening socket per worker, on the same port")
        let output = try runProcess(Program.crawler, ["web", "\(server.url)/", "--concurrency", "8", "--json"], timeout: 120)
        let report = try WebCrawlReport.parse(output)
        #expect(report.pages == 1002 && report.errors.isEmpty, "\(output)")
        let (ended, stats) = try server.stop()
        #expect(ended.exitCode == 0, "\(engine): \(ended)") // says how it ended: a signal, or killed at the wait's end
        #expect(stats?.pageFetches.allSatisfy { $0 == 1 } == true)
        #expect((stats?.accepted ?? 0) >= 8)
    }

    @Test(arguments: ["libev", "async-epoll"])
    func theCrawlerFindsItsHostByNameOnTheLoop(_ engine: String) throws {
        let server = try HTTPServerProcess(engine: "epoll")
        let dns = try DNSServer(records: ["127.0.0.1 site.test"])
        let output = try runProcess(Program.crawler, ["web", "http://site.test:\(server.port)/", "--engine", engine, "--max-pages", "20",
                                                      "--dns", "127.0.0.1:\(dns.port)", "--json"], timeout: 120)
        let report = try WebCrawlReport.parse(output)
        #expect(report.pages == 20 && report.errors.isEmpty, "\(output)")
        // A name the server says does not exist: exit 1, the reason named.
        let missing = try runProcess(Program.crawler, ["web", "http://gone.test:\(server.port)/", "--engine", engine,
                                                       "--dns", "127.0.0.1:\(dns.port)"], timeout: 120)
        #expect(missing.exitCode == 1)
        #expect(missing.standardError.contains("resolve(gone.test): the name does not exist (NXDOMAIN)"), "\(missing)")
        let badServer = try runProcess(Program.crawler, ["web", "http://site.test/", "--dns", "dns.example"], timeout: 60)
        #expect(badServer.exitCode == 64 && badServer.standardError.contains("invalid --dns \"dns.example\""), "\(badServer)")
        _ = try server.stop()
    }

    @Test(arguments: eventedEngines)
    func httpsForCurlAndStalledOrPlainClientsClosed(_ engine: String) throws {
        let fixtures = try TLSFixtures()
        let server = try HTTPServerProcess(engine: engine, ["--tls-cert", fixtures.serverCertificate, "--tls-key", fixtures.serverKey,
                                                            "--header-timeout", "0.5"])
        let url = "https://localhost:\(server.port)/plaintext"
        // Two requests on one connection (keep-alive over TLS).
        let fetched = try runProcess("/usr/bin/curl", ["-s", "--cacert", fixtures.caCertificate, url, url, "-w", " %{num_connects}"])
        #expect(fetched.standardOutput == "Hello, World! 1Hello, World! 0", "\(fetched)")
        // Three requests pipelined in three TLS records of one segment: the
        // server's one read takes one record, OpenSSL holds the others
        // (announced by no readiness), and all three are answered.
        let pipelined = """
        import socket, ssl, sys
        context = ssl.create_default_context(cafile=sys.argv[2])
        with context.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname="localhost") as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)  # three records, one segment
            for close in (b"", b"", b"Connection: close\\r\\n"):
                s.sendall(b"GET /plaintext HTTP/1.1\\r\\nHost: x\\r\\n" + close + b"\\r\\n")
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
            s.settimeout(10)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk: break
                data += chunk
        print(data.count(b"Hello, World!"))
        """
        let three = try runProcess("/usr/bin/env", ["python3", "-c", pipelined, "\(server.port)", fixtures.caCertificate], timeout: 60)
        #expect(three.standardOutput == "3\n", "\(engine): \(three)")
        let untrusted = try runProcess("/usr/bin/curl", ["-s", url])
        #expect(untrusted.exitCode == 60, "curl refuses the test CA's certificate unless told: \(untrusted)")
        // 300 clients that connect and never start the handshake, one that
        // speaks plain HTTP: each is closed (at the 0.5 s handshake timeout,
        // or at once), and the server still serves.
        let script = """
        import socket, sys, time
        port = int(sys.argv[1])
        stalled = [socket.create_connection(("127.0.0.1", port)) for _ in range(300)]
        plain = socket.create_connection(("127.0.0.1", port))
        plain.sendall(b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
        plain.settimeout(10)
        try:
            answered = plain.recv(100)
        except ConnectionResetError:
            answered = b""
        closed = 0
        for s in stalled:
            s.settimeout(10)
            try:
                if s.recv(1) == b"": closed += 1
            except ConnectionResetError:
                closed += 1
        print(closed, len(answered) < 10 or not answered.startswith(b"HTTP"))
        """
        let clients = try runProcess("/usr/bin/env", ["python3", "-c", script, "\(server.port)"], timeout: 60)
        #expect(clients.standardOutput == "300 True\n", "\(clients)")
        let after = try runProcess("/usr/bin/curl", ["-s", "--cacert", fixtures.caCertificate, url])
        #expect(after.standardOutput == "Hello, World!", "\(after)")
        let (ended, _) = try server.stop()
        #expect(ended.exitCode == 0, "\(ended)")
    }

    @Test func httpsIsRefusedOnTheThreadsEngineAndWithHalfItsFiles() throws {
        for arguments in [["--engine", "threads", "--tls-cert", "c.pem", "--tls-key", "k.pem"], ["--engine", "async", "--tls-cert", "c.pem"]] {
            let output = try runProcess(Program.server, ["http"] + arguments)
            #expect(output.exitCode == 64, "\(arguments): \(output)")
        }
        let missing = try runProcess(Program.server, ["http", "--engine", "async", "--port", "0", "--tls-cert", "/no/such.pem", "--tls-key", "/no/such.key"])
        #expect(missing.exitCode == 1 && missing.standardError.contains("/no/such.pem"), "\(missing)")
    }

    @Test(arguments: [("libev", "libev"), ("epoll", "epoll"), ("async", "async"), ("async-epoll", "async-epoll"), ("threads", "libev")])
    func theCrawlerFetchesEveryPageExactlyOnceWithinItsConcurrency(_ serverEngine: String, _ crawlerEngine: String) throws {
        let server = try HTTPServerProcess(engine: serverEngine)
        let output = try runProcess(Program.crawler, ["web", "\(server.url)/", "--engine", crawlerEngine, "--concurrency", "8", "--json"], timeout: 120)
        let report = try WebCrawlReport.parse(output)
        #expect(report.pages == 1002 && report.errors.isEmpty, "\(output)")
        let (_, stats) = try server.stop()
        let counts = try #require(stats)
        #expect(counts.pageFetches.count == 1001 && counts.pageFetches.allSatisfy { $0 == 1 },
                "every page once: \(counts.pageFetches.enumerated().filter { $0.element != 1 }.prefix(10))")
        #expect(counts.peakOpen <= 8, "at most 8 connections at once; the server saw \(counts.peakOpen)")
        #expect(report.connections <= 8)
    }

    @Test(arguments: eventedEngines)
    func theCrawlerCrawlsASiteServedByPython(_ engine: String) throws {
        let root = temporaryPath("site")
        try FileManager.default.createDirectory(atPath: root + "/pages", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        try #"<a href="pages/0.html">start</a> <a href="https://example.com/">away</a>"#.write(toFile: root + "/index.html", atomically: true, encoding: .utf8)
        for page in 0..<50 {
            try "<a href='\((page + 1) % 50).html'>next</a> <a href=\"/pages/\(page * 3 % 50).html\">jump</a> <a href='../index.html'>home</a>"
                .write(toFile: root + "/pages/\(page).html", atomically: true, encoding: .utf8)
        }
        let port = try unusedPort()
        let python = try SpawnedProcess("/usr/bin/env", ["python3", "-u", "-m", "http.server", "--bind", "127.0.0.1", "\(port)", "--directory", root])
        defer { python.send(SIGKILL); _ = try? python.wait(timeout: 5) }
        _ = python.waitForOutput(containing: "Serving HTTP")
        let out = temporaryPath("pages")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let output = try runProcess(Program.crawler, ["web", "http://127.0.0.1:\(port)/", "--engine", engine, "--concurrency", "4",
                                                      "--out", out, "--json"], timeout: 120)
        let report = try WebCrawlReport.parse(output)
        // "/", "/index.html" and the 50 pages; Python's server closes after each answer (HTTP/1.0).
        #expect(report.pages == 52 && report.errors.isEmpty, "\(engine): \(output)")
        // One file per URL: "/" and "/index.html" apart (issue "Hardening", 11).
        let saved = try FileManager.default.contentsOfDirectory(atPath: out)
        #expect(saved.count == 52 && saved.contains("%2Fpages%2F49.html") && saved.contains("%2F") && saved.contains("%2Findex.html"),
                "\(saved.sorted())")
        let page = try String(contentsOfFile: out + "/%2Fpages%2F7.html", encoding: .utf8)
        #expect(page.contains("<a href='8.html'>next</a>"))
    }

    /// Issue "Green every time", 5: `Crawl.save` stopped at a failed write
    /// and recorded nothing (a truncated file was left), and wrote on the
    /// loop's thread. A page is saved on a pool thread now, and one that
    /// cannot be is a failure of that page naming the call and the reason;
    /// the others are saved. (A symlink to /dev/full makes a write fail with
    /// ENOSPC; one into a missing directory makes the open fail.)
    @Test(arguments: eventedEngines)
    func aPageThatCannotBeSavedIsAFailureAndTheOthersAreSaved(_ engine: String) throws {
        let server = try HTTPServerProcess(engine: "libev", ["--pages", "20"])
        defer { _ = try? server.stop() }
        let out = temporaryPath("saved")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: out) }
        #expect(symlink("/dev/full", out + "/%2Fpage%2F3") == 0)
        #expect(symlink("/nonexistent-\(getpid())/x", out + "/%2Fpage%2F5") == 0)
        let output = try runProcess(Program.crawler, ["web", "\(server.url)/", "--engine", engine, "--out", out, "--json"], timeout: 120)
        let report = try WebCrawlReport.parse(output)
        // "/", "/plaintext" and the 20 pages, but the two that could not be saved.
        #expect(report.pages == 20 && report.errors == ["save": 2], "\(engine): \(output)")
        let reasons = Dictionary(report.failures.map { ($0.url, $0.reason) }, uniquingKeysWith: { $1 })
        #expect(reasons["\(server.url)/page/3"] == "write(\(out)/%2Fpage%2F3) failed: No space left on device (ENOSPC)", "\(reasons)")
        #expect(reasons["\(server.url)/page/5"] == "open(\(out)/%2Fpage%2F5) failed: No such file or directory (ENOENT)", "\(reasons)")
        let saved = try FileManager.default.contentsOfDirectory(atPath: out)
        // 20 pages and the test's own dangling link for page 5; the failed write left no file.
        #expect(saved.count == 21 && !saved.contains("%2Fpage%2F3"), "\(saved.sorted())")
        #expect(try String(contentsOfFile: out + "/%2Fpage%2F7", encoding: .utf8).contains("<title>Page 7</title>"))
    }

    /// Starts bad_site.py; returns it and its port.
    func startBadSite() throws -> (SpawnedProcess, String) {
        let site = try SpawnedProcess("/usr/bin/env", ["python3", "-u", badSiteScript, "0"])
        let banner = site.waitForOutput(containing: "\n")
        let port = banner.split(separator: " ").last.map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
        return (site, port)
    }

    @Test(arguments: eventedEngines)
    func aMisbehavingSiteFailsThoseURLsAndTheCrawlGoesOn(_ engine: String) throws {
        let (site, port) = try startBadSite()
        let output = try runProcess(Program.crawler, ["web", "http://127.0.0.1:\(port)/", "--engine", engine, "--timeout", "2",
                                                      "--max-body", "\(1 << 20)", "--json"], timeout: 60)
        site.send(SIGKILL)
        let siteOutput = try site.wait(timeout: 5)
        let report = try WebCrawlReport.parse(output)
        // / and the ten good pages, a body that ends at the close, and the
        // two pages framed by / (issue "Green every time", 5), each once.
        #expect(report.pages == 14, "\(engine): \(output)")
        // Framing http_parser lets through fails by its kind (issue "Hardening", 8 and 9);
        // the two encoded hostile links are pages the site does not have (404);
        // the image and the script are not pages (not fetched, or they would be 404s too).
        #expect(report.errors == ["head too large": 2, "truncated": 1, "too many redirects": 1, "body too large": 1,
                                  "HTTP 404": 3, "timeout": 1, "connection": 1, "bad framing": 5, "unsupported": 1,
                                  "malformed": 1, "HTTP 204": 1],
                "\(engine): \(report.errors) \(report.failures)")
        func reason(_ suffix: String) -> String? { report.failures.first { $0.url.hasSuffix(suffix) }?.reason }
        #expect(reason("/no-content") == "HTTP 204 No Content", "\(engine): \(report.failures)")
        #expect(reason("/not-http")?.hasPrefix("the status line does not begin with HTTP/") == true, "\(engine): \(report.failures)")
        #expect(reason("/chunk-size-overflow") == "a chunk size of more than 15 hex digits (over 2^60 bytes)", "\(engine): \(report.failures)")
        #expect(report.skipped == ["too long": 1, "invalid host": 1], "\(engine): \(report.skipped)")
        #expect(report.redirects >= 11, "the loop was followed to the limit, and /moved once")
        #expect(output.exitCode == 0)
        // Nothing a page said reached a request line raw (issue "Hardening", 2).
        #expect(!siteOutput.standardOutput.contains("violation"), "\(engine): \(siteOutput.standardOutput)")
        #expect(report.failures.contains { $0.url.hasSuffix("/x%20HTTP/1.1X-Injected:%20yesFoo:%20bar") }, "\(report.failures)")
    }

    @Test(arguments: eventedEngines)
    func aServerSending100ContinueForeverTimesOutOnTime(_ engine: String) throws {
        // Issue "Hardening", 5: bytes that keep arriving must not push the
        // request's deadline back, nor may a stale clock bring it forward.
        let (site, port) = try startBadSite()
        defer { site.send(SIGKILL); _ = try? site.wait(timeout: 5) }
        let start = monotonicSeconds()
        // --retries 0: the one timeout is the point (retries would repeat it).
        let output = try runProcess(Program.crawler, ["web", "http://127.0.0.1:\(port)/continue-forever", "--engine", engine,
                                                      "--timeout", "2", "--retries", "0", "--json"], timeout: 60)
        let elapsed = monotonicSeconds() - start
        let report = try WebCrawlReport.parse(output)
        #expect(report.errors == ["timeout": 1], "\(engine): \(output)")
        #expect(report.wallSeconds >= 1.95 && report.wallSeconds < 3, "\(engine): the 2 s timeout fired after \(report.wallSeconds) s")
        #expect(elapsed < 10)
    }

    @Test(arguments: [
        ("server", ["http", "--port", "70000"], "--port"),
        ("server", ["http", "--engine", "fibers"], "--engine"),
        ("server", ["http", "--workers", "0"], "--workers"),
        ("crawler", ["web", "ftp://example.com/"], "ftp://example.com/"),
        ("crawler", ["web", "http://127.0.0.1:1/", "--concurrency", "0"], "--concurrency"),
        ("crawler", ["web", "http://127.0.0.1:1/", "--frontier", "http://127.0.0.1:6379/"], "http://127.0.0.1:6379/"),
        ("crawler", ["web", "http://127.0.0.1:1/", "--frontier", "redis://127.0.0.1:99999/x"], "redis://127.0.0.1:99999/x"),
        ("crawler", ["web", "http://127.0.0.1:1/", "--resume"], "--resume"),
        // Issue "Green every time", 2: every numeric option has an upper bound too.
        ("crawler", ["web", "http://127.0.0.1:1/", "--lease", "1e17"], "--lease"),
        ("crawler", ["web", "http://127.0.0.1:1/", "--timeout", "1e300"], "--timeout"),
        ("crawler", ["web", "http://127.0.0.1:1/", "--max-pages", "999999999999"], "--max-pages"),
        ("crawler", ["web", "http://127.0.0.1:1/", "--max-body", "99999999999"], "--max-body"),
        ("crawler", ["--timeout", "1e17"], "--timeout"),
        ("crawler", ["--delay", "nan"], "--delay"),
        ("crawler", ["--max-poem-bytes", "99999999999"], "--max-poem-bytes"),
        ("server", ["http", "--idle-timeout", "1e17"], "--idle-timeout"),
        ("server", ["http", "--header-timeout", "inf"], "--header-timeout"),
        ("server", ["http", "--max-body", "9999999999999"], "--max-body"),
        ("server", ["http", "--max-connections", "99999999"], "--max-connections"),
        ("server", ["poetry", "--delay", "1e17"], "--delay"),
        ("server", ["poetry", "--num-bytes", "99999999999"], "--num-bytes"),
    ])
    func usageErrorsNameTheArgumentAndExit64(_ program: String, _ arguments: [String], _ named: String) throws {
        let output = try runProcess(program == "server" ? Program.server : Program.crawler, arguments)
        #expect(output.exitCode == 64, "\(output)")
        #expect(output.standardError.contains(named), "\(output)")
    }

    @Test func aRefusedStartIsAFailedURLAndTheCrawlerExitsNonZero() throws {
        let port = try unusedPort()
        let output = try runProcess(Program.crawler, ["web", "http://127.0.0.1:\(port)/", "--json"])
        let report = try WebCrawlReport.parse(output)
        #expect(report.errors == ["connect": 1] && report.failures.first?.reason.contains("ECONNREFUSED") == true, "\(output)")
        #expect(output.exitCode == 1)
    }
}

/// Sockets listening on 127.0.0.1:`port` (/proc/net/tcp: state 0A).
func listeningSockets(port: UInt16) -> Int {
    let table = (try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8)) ?? ""
    let local = ":" + String(format: "%04X", port)
    return table.split(separator: "\n").dropFirst().filter { line in
        let fields = line.split(separator: " ")
        return fields.count > 3 && fields[1].hasSuffix(local) && fields[3] == "0A"
    }.count
}

/// A process's user and system CPU seconds, from /proc/PID/stat.
func processCPUSeconds(_ pid: pid_t) -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return 0 }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    let ticks = (Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)
    return ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
}
