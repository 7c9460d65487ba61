import EventCore
import EventLoopTesting
import HTTP
import Testing
import Web

/// The HTTP server's request latencies (what `/metrics` reports as
/// `http_request_duration_seconds`), exact on the loop's clock: from a
/// request's first byte read to its answer's last byte sent.
@Suite("Request latency on the testing loop")
struct RequestLatencyOnTheTestLoopTests {
    @Test(arguments: HTTPCode.allCases)
    func aRequestCountsFromItsFirstByteToItsAnswersLastByte(_ code: HTTPCode) throws {
        let (loop, address, worker) = try serveSite(code)
        defer { loop.close(); withExtendedLifetime(worker) {} } // the worker's listener closes with its loop
        let context = try #require(worker.context)
        let latencies = loop.runOnLoop { RequestLatencies(measuring: context) }
        let client = try connectedClient(address)
        defer { client.close() }
        loop.runPending()

        // A head in two parts, 3 s apart: 3 s, not the instant of its last part.
        send(client, "GET /plaintext HTTP/1.1\r\nHo")
        loop.runPending()
        loop.advance(by: .seconds(3))
        #expect(latencies.histogram.count == 0, "\(code): nothing answered yet")
        send(client, "st: a\r\n\r\n")
        loop.runPending()
        #expect(received(client).text.hasPrefix("HTTP/1.1 200 OK"), "\(code)")
        #expect(latencies.histogram.count == 1 && latencies.histogram.maximum == .seconds(3), "\(code): \(latencies.histogram)")

        // Three pipelined in one segment, answered at once: three of no time.
        loop.advance(by: .seconds(5))
        send(client, String(repeating: "GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n", count: 3))
        loop.runPending()
        #expect(received(client).text.components(separatedBy: "HTTP/1.1 200 OK").count == 4, "\(code)")
        #expect(latencies.histogram.count == 4 && latencies.histogram.sum == .seconds(3), "\(code): \(latencies.histogram)")

        // One that ends a segment and one begun in it, finished 2 s later:
        // the first at once, the second 2 s.
        send(client, "GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\nGET /plaintext HTTP/1.1\r\n")
        loop.runPending()
        loop.advance(by: .seconds(2))
        send(client, "Host: a\r\n\r\n")
        loop.runPending()
        #expect(received(client).text.components(separatedBy: "HTTP/1.1 200 OK").count == 3, "\(code)")
        #expect(latencies.histogram.count == 6 && latencies.histogram.sum == .seconds(5), "\(code): \(latencies.histogram)")

        // A bad request is answered (400) and measured too.
        send(client, "BAD\r\n\r\n")
        loop.runPending()
        #expect(received(client).text.hasPrefix("HTTP/1.1 400"), "\(code)")
        #expect(latencies.histogram.count == 7, "\(code): \(latencies.histogram)")
    }
}
