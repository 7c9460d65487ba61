import Foundation
import Glibc
import Testing
import TestSupport

/// Issue "At home in the Swift server ecosystem": `server http` runs in a
/// swift-service-lifecycle `ServiceGroup` (SIGTERM graceful, a second one
/// forceful), logs through swift-log, and with `--metrics-port` serves
/// its loops' monitors and its answers through swift-metrics as
/// Prometheus text - scraped here by curl while load moves the numbers.
@Suite("server http in the Swift server ecosystem")
struct ServerEcosystemTests {
    /// The value of the sample `name{labels...}` in Prometheus text (the
    /// sum over samples whose labels contain every one of `labels`).
    static func sample(_ text: String, _ name: String, _ labels: [String] = []) -> Double? {
        var total: Double?
        for line in text.split(separator: "\n") where line.hasPrefix(name + "{") || line.hasPrefix(name + " ") {
            guard labels.allSatisfy({ line.contains($0) }), let value = line.split(separator: " ").last.flatMap({ Double($0) }) else { continue }
            total = (total ?? 0) + value
        }
        return total
    }

    @Test(arguments: ["libev", "epoll", "async", "async-epoll"])
    func metricsAreScrapedAndMoveUnderLoad(_ engine: String) throws {
        let server = try HTTPServerProcess(engine: engine, ["--metrics-port", "0", "--metrics-interval", "0.1"])
        let banner = server.process.waitForOutput(containing: "/metrics")
        let metricsURL = try #require(banner.split(separator: "\n").first { $0.hasPrefix("Metrics on ") }?.split(separator: " ").last.map(String.init))
        func scrape() throws -> String {
            let output = try runProcess("/usr/bin/curl", ["-s", "--max-time", "10", metricsURL])
            #expect(output.exitCode == 0, "\(output)")
            return output.standardOutput
        }
        func eventually(_ condition: (String) -> Bool) throws -> String {
            var text = try scrape()
            for _ in 0..<100 where !condition(text) {
                usleep(100_000)
                text = try scrape()
            }
            return text
        }
        let before = try eventually { Self.sample($0, "loop_iterations_total") != nil }
        #expect(Self.sample(before, "loop_iterations_total", ["loop=\"0\""]) != nil, "\(before)")
        let answeredBefore = Self.sample(before, "http_responses_total", ["engine=\"\(engine)\"", "status=\"200\""]) ?? 0
        // 300 requests on keep-alive connections.
        let load = try runProcess("/usr/bin/curl", ["-s", "-o", "/dev/null", "--parallel", "--parallel-max", "4"]
                                  + Array(repeating: "\(server.url)/plaintext", count: 300), timeout: 60)
        #expect(load.exitCode == 0, "\(load)")
        let after = try eventually { (Self.sample($0, "http_responses_total", ["engine=\"\(engine)\"", "status=\"200\""]) ?? 0) >= answeredBefore + 300 }
        #expect((Self.sample(after, "http_responses_total", ["engine=\"\(engine)\"", "status=\"200\""]) ?? 0) >= answeredBefore + 300, "\(after)")
        #expect((Self.sample(after, "http_connections_accepted_total", ["engine=\"\(engine)\""]) ?? 0) >= 1)
        #expect((Self.sample(after, "loop_iterations_total") ?? 0) > (Self.sample(before, "loop_iterations_total") ?? 0))
        #expect((Self.sample(after, "loop_running_seconds_total") ?? 0) > 0 && (Self.sample(after, "loop_blocked_seconds_total") ?? 0) > 0)
        #expect(Self.sample(after, "loop_delay_seconds", ["quantile=\"0.99\""]) != nil && Self.sample(after, "loop_utilization") != nil)
        #expect(after.contains("# TYPE http_responses_total counter"), "Prometheus's text format")
        // Request latencies: every answer counted...
        let measured = Self.sample(after, "http_request_duration_seconds_count", ["engine=\"\(engine)\""]) ?? 0
        #expect(measured >= 300, "\(after)")
        #expect(Self.sample(after, "http_request_duration_seconds", ["engine=\"\(engine)\"", "quantile=\"0.99\""]) != nil, "\(after)")
        // ... and one whose head comes in two parts 300 ms apart takes 300 ms
        // (its first byte read to its answer's last byte sent).
        let slow = try connectTCP(port: server.port)
        defer { close(slow) }
        var limit = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(slow, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        _ = "GET /plaintext HTTP/1.1\r\nHo".withCString { send(slow, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
        usleep(300_000)
        _ = "st: a\r\nConnection: close\r\n\r\n".withCString { send(slow, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
        var reply = [UInt8](repeating: 0, count: 4096)
        #expect(recv(slow, &reply, reply.count, Int32(MSG_WAITALL)) > 0)
        let slowSeen = try eventually { (Self.sample($0, "http_request_duration_seconds_count", ["engine=\"\(engine)\""]) ?? 0) > measured }
        let slowest = Self.sample(slowSeen, "http_request_duration_seconds", ["engine=\"\(engine)\"", "quantile=\"max\""]) ?? 0
        #expect(slowest >= 0.25 && slowest < 60, "\(slowSeen)")
        let sumBefore = Self.sample(after, "http_request_duration_seconds_sum", ["engine=\"\(engine)\""]) ?? 0
        #expect((Self.sample(slowSeen, "http_request_duration_seconds_sum", ["engine=\"\(engine)\""]) ?? 0) >= sumBefore + 0.25, "\(slowSeen)")
        // Anything but GET /metrics is a 404.
        let other = try runProcess("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", metricsURL.replacingOccurrences(of: "/metrics", with: "/other")])
        #expect(other.standardOutput == "404")
        let (ended, stats) = try server.stop()
        #expect(ended.exitCode == 0, "\(ended)")
        #expect((stats?.responses["200"] ?? 0) >= 300)
    }

    /// The metrics endpoint's bounds: a head over 16 KiB is dropped at once,
    /// one never finished after 5 s; neither is answered.
    @Test func theMetricsEndpointDropsHugeAndUnfinishedHeads() throws {
        let server = try HTTPServerProcess(engine: "epoll", ["--metrics-port", "0"])
        defer { _ = try? server.stop() }
        let banner = server.process.waitForOutput(containing: "/metrics")
        let port = try #require(banner.split(separator: "\n").first { $0.hasPrefix("Metrics on ") }
            .flatMap { $0.split(separator: ":").last?.split(separator: "/").first }.flatMap { UInt16($0) })
        func answer(_ sent: String) throws -> (bytes: Int, seconds: Double) {
            let socket = try connectTCP(port: port)
            defer { close(socket) }
            var limit = timeval(tv_sec: 20, tv_usec: 0)
            setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
            _ = sent.withCString { send(socket, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
            let start = monotonicSeconds()
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = recv(socket, &buffer, buffer.count, 0)
            return (max(count, 0), monotonicSeconds() - start)
        }
        let huge = try answer("GET /metrics HTTP/1.1\r\nX: " + String(repeating: "x", count: 20_000))
        #expect(huge.bytes == 0 && huge.seconds < 4, "dropped at once, unanswered: \(huge)")
        let unfinished = try answer("GET /metrics HTTP/1.1\r\n")
        #expect(unfinished.bytes == 0 && unfinished.seconds >= 4 && unfinished.seconds < 19, "dropped after 5 s: \(unfinished)")
    }

    /// The first SIGTERM starts the graceful stop, which waits (up to a
    /// stop timeout of 60 s) for a response a client does not read; the
    /// second stops the loops at once.
    @Test(arguments: ["libev", "async-epoll"])
    func aSecondSigtermStopsAtOnce(_ engine: String) throws {
        let server = try HTTPServerProcess(engine: engine, ["--high-water", "1024", "--stop-timeout", "60"])
        // A client that asks for 200 pages pipelined and reads none: their
        // answers fill the socket's buffers, so the graceful stop waits.
        let socket = try connectTCP(port: server.port)
        defer { close(socket) }
        var size: Int32 = 4096
        setsockopt(socket, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        let requests = String(repeating: "GET /page/1 HTTP/1.1\r\nHost: x\r\n\r\n", count: 2000)
        _ = requests.withCString { send(socket, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
        usleep(300_000)
        let start = monotonicSeconds()
        server.process.send(SIGTERM)
        usleep(300_000)
        server.process.send(SIGTERM)
        let output = try server.process.wait(timeout: 30)
        let elapsed = monotonicSeconds() - start
        #expect(output.exitCode == 0, "\(output)")
        #expect(output.standardError.contains("the loops shut down gracefully") && output.standardError.contains("the loops stop now"),
                "\(output.standardError)")
        #expect(elapsed < 30, "the second SIGTERM ends the wait for the stalled client (the stop timeout is 60 s): \(elapsed) s")
    }

    /// `crawler web --json` reports its loop as its monitor saw it.
    @Test(arguments: ["libev", "async-epoll"])
    func theCrawlersReportHasItsLoopsDelay(_ engine: String) throws {
        let server = try HTTPServerProcess(engine: "epoll", ["--pages", "100"])
        defer { _ = try? server.stop() }
        let output = try runProcess(Program.crawler, ["web", "\(server.url)/", "--engine", engine, "--json"], timeout: 120)
        let report = try #require(try JSONSerialization.jsonObject(with: Data(output.standardOutput.utf8)) as? [String: Any])
        let loop = try #require(report["loop"] as? [String: Any], "\(output)")
        let delay = try #require(loop["delaySeconds"] as? [String: Double])
        #expect((loop["iterations"] as? Int ?? 0) > 0 && (loop["runningSeconds"] as? Double ?? 0) > 0, "\(loop)")
        #expect(delay["p50"] != nil && delay["p99"] != nil && (delay["max"] ?? -1) >= 0 && (delay["p50"] ?? 1) <= (delay["p99"] ?? 0), "\(loop)")
    }

    @Test func usageErrorsOfTheNewOptions() throws {
        for arguments in [["--engine", "threads", "--metrics-port", "0"], ["--metrics-port", "70000"], ["--metrics-interval", "0"],
                          ["--log-level", "chatty"], ["--stop-timeout", "-1"]] {
            let output = try runProcess(Program.server, ["http"] + arguments)
            #expect(output.exitCode == 64, "\(arguments): \(output)")
        }
    }
}

/// A blocking TCP socket connected to 127.0.0.1:`port`.
private func connectTCP(port: UInt16) throws -> Int32 {
    let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard socket >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        let error = POSIXErrorCode(rawValue: errno) ?? .ECONNREFUSED
        close(socket)
        throw POSIXError(error)
    }
    return socket
}
