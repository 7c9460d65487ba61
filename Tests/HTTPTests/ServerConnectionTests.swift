import Foundation
import HTTP
import Testing

/// Feeds `request` to a fresh server connection (in one write, or a byte at
/// a time) and returns everything it answered, and whether it is closing.
func serve(_ request: String, byteByByte: Bool = false, limits: HTTPServerLimits = HTTPServerLimits(),
           pages: Int = 10) -> (output: String, closing: Bool) {
    let context = HTTPServerContext(site: HTTPSite(pages: pages), limits: limits)
    let connection = HTTPServerConnection(context: context, now: 0)
    let bytes = Array(request.utf8)
    if byteByByte {
        for byte in bytes { [byte].withUnsafeBytes { connection.receive($0, now: 0) } }
    } else {
        bytes.withUnsafeBytes { connection.receive($0, now: 0) }
    }
    return (drain(connection), connection.closing)
}

/// Takes all of a connection's output.
func drain(_ connection: HTTPServerConnection) -> String {
    var output: [UInt8] = []
    while connection.hasOutput {
        let count = connection.withPendingOutput { pending in
            output.append(contentsOf: pending)
            return pending.count
        }
        connection.didSend(count, now: 0)
    }
    return String(decoding: output, as: UTF8.self)
}

/// The status lines of `output`, in order.
func statuses(_ output: String) -> [Int] {
    output.components(separatedBy: "HTTP/1.1 ").dropFirst().map { Int($0.prefix(3)) ?? -1 }
}

@Suite("The server's connection: bytes in, bytes out")
struct ServerConnectionTests {
    static let badInputs: [(String, String, Int)] = [
        ("Content-Length with Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("two different Content-Lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", 400),
        ("Content-Length +5", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello", 400),
        ("Content-Length -1", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
        ("Content-Length 0x5", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello", 400),
        ("Content-Length of 20 digits", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400),
        ("chunked not last", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400),
        ("chunk size 0x5", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", 400),
        ("no Host", "GET / HTTP/1.1\r\n\r\n", 400),
        ("two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("space before the colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
        ("bare CR", "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400),
        ("NUL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: b\u{0}c\r\n\r\n", 400),
        ("a control character in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: b\u{1}c\r\n\r\n", 400),
        ("obsolete line folding", "GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n", 400),
        ("HTTP/01.1", "GET / HTTP/01.1\r\nHost: a\r\n\r\n", 400),
        ("HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        ("a 64 KiB URI", "GET /" + String(repeating: "a", count: 65536) + " HTTP/1.1\r\nHost: a\r\n\r\n", 414),
        ("a body over the limit", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999\r\n\r\n", 413),
        ("CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 405),
        ("garbage", "\u{16}\u{3}\u{1}\u{2}\u{0}\u{1}\u{0}\u{1}\u{fc}\u{3}\u{3}", 400),
        // Framing http_parser lets through (issue "Hardening", 8).
        ("junk instead of the CRLF after chunk data", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400),
        ("Transfer-Encoding on HTTP/1.0", "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n0\r\n\r\n", 400),
        ("Transfer-Encoding: gzip, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
        ("a chunk size with trailing space", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", 400),
        ("a second chunk size with trailing space", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nh\r\n4\t\r\nello\r\n0\r\n\r\n", 400),
        ("chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400),
        // Empty lines before a request line: a few are tolerated (RFC 9112, 2.2), not more.
        ("five empty lines before the request line", String(repeating: "\r\n", count: 5) + "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ]

    @Test(arguments: badInputs)
    func aBadRequestGetsItsStatusAndTheConnectionCloses(_ name: String, _ request: String, _ status: Int) {
        for byteByByte in [false, true] {
            let (output, closing) = serve(request, byteByByte: byteByByte)
            #expect(statuses(output) == [status], "\(name), byte by byte: \(byteByByte): \(output)")
            #expect(output.contains("Connection: close\r\n"), "\(name): \(output)")
            #expect(closing, "\(name)")
        }
    }

    @Test func theErrorNamesWhatWasWrong() {
        #expect(serve("GET / HTTP/1.1\r\nHost : a\r\n\r\n").output.contains("invalid character 0x20 in a header field name"))
        #expect(serve("GET / HTTP/1.1\r\nHost: a\r\nX-Folded: b\r\n c\r\n\r\n").output.contains("obsolete line folding in header \"X-Folded\""))
        #expect(serve("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").output.contains("2 Host headers"))
        #expect(serve("GET / HTTP/2.0\r\nHost: a\r\n\r\n").output.contains("HTTP/2.0 is not supported"))
    }

    @Test func fiveEmptyLinesBetweenTwoRequestsAreTooMany() {
        for byteByByte in [false, true] {
            let four = serve("GET / HTTP/1.1\r\nHost: a\r\n\r\n" + String(repeating: "\n", count: 4) + "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                             byteByByte: byteByByte)
            #expect(statuses(four.output) == [200, 200] && !four.closing)
            let five = serve("GET / HTTP/1.1\r\nHost: a\r\n\r\n" + String(repeating: "\n", count: 5) + "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                             byteByByte: byteByByte)
            #expect(statuses(five.output) == [200, 400] && five.closing, "\(five.output)")
            #expect(five.output.contains("more than 4 empty lines before the request line"))
        }
    }

    @Test func upgradeIsIgnoredAndTheNextRequestServed() {
        for byteByByte in [false, true] {
            let (output, closing) = serve("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n",
                                          byteByByte: byteByByte)
            #expect(statuses(output) == [200, 200], "\(output)")
            #expect(output.hasSuffix("Hello, World!") && !closing)
        }
    }

    @Test func moreBodyThanDeclaredIsABadNextRequest() {
        let (output, closing) = serve("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhiTHERE\r\n\r\n")
        #expect(statuses(output) == [405, 400], "\(output)")
        #expect(closing)
    }

    @Test func threePipelinedRequestsGetThreeAnswersInOrder() {
        for byteByByte in [false, true] {
            let (output, closing) = serve("GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\nGET /page/3 HTTP/1.1\r\nHost: a\r\n\r\nHEAD /nowhere HTTP/1.1\r\nHost: a\r\n\r\n",
                                          byteByByte: byteByByte)
            #expect(statuses(output) == [200, 200, 404])
            let plaintext = output.range(of: "Hello, World!")!.lowerBound
            let page = output.range(of: "<title>Page 3</title>")!.lowerBound
            #expect(plaintext < page)
            #expect(!output.contains("404 Not Found: /nowhere"), "HEAD has no body")
            #expect(!closing)
        }
    }

    @Test(arguments: [
        "GET /plaintext HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n",
        "GET /page/7?x=1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "\r\nGET /page/0 HTTP/1.1\r\nHost: a\r\nX-Split: value with spaces\r\n\r\n",
        "\r\n\r\n\n\r\nGET /page/0 HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /page/7 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 ;name=value\r\nhello\r\n2;x\r\nhi\r\n0\r\nX-Trailer: t\r\n\r\n",
        "GET /page/7 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n",
        "GET http://example.com/page/7 HTTP/1.1\r\nHost: a\r\n\r\n",
    ])
    func aValidRequestFedByteByByteGetsTheSameAnswer(_ request: String) {
        let whole = serve(request)
        let bytes = serve(request, byteByByte: true)
        #expect(statuses(whole.output) == [200])
        // The two may straddle a second: the Date lines may differ.
        #expect(withoutDate(whole.output) == withoutDate(bytes.output))
        #expect(whole.closing == bytes.closing)
    }

    /// The output with each `Date:` header's value blanked.
    private func withoutDate(_ output: String) -> String {
        output.split(separator: "\r\n", omittingEmptySubsequences: false)
            .map { $0.hasPrefix("Date: ") ? "Date: -" : String($0) }
            .joined(separator: "\r\n")
    }

    @Test func plaintextIsTheUsualResponse() {
        let (output, _) = serve("GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(output.hasPrefix("HTTP/1.1 200 OK\r\nServer: swift-libev\r\nDate: "))
        #expect(output.hasSuffix(" GMT\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!"))
    }

    @Test func http10ClosesUnlessAskedToKeepAlive() {
        let plain = serve("GET /plaintext HTTP/1.0\r\n\r\n")
        #expect(plain.output.contains("Connection: close\r\n") && plain.closing)
        let kept = serve("GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        #expect(kept.output.contains("Connection: keep-alive\r\n") && !kept.closing)
        let asked = serve("GET /plaintext HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(statuses(asked.output) == [200], "nothing after Connection: close: \(asked.output)")
        #expect(asked.closing)
    }

    @Test func otherMethodsGet405AndTheConnectionStays() {
        let (output, closing) = serve("DELETE /page/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(statuses(output) == [405, 200])
        #expect(output.contains("Allow: GET, HEAD\r\n"))
        #expect(!closing)
    }

    /// A head of exactly `size` bytes, blank line included.
    func head(_ size: Int) -> String {
        let frame = "GET / HTTP/1.1\r\nHost: a\r\nX: \r\n\r\n"
        return "GET / HTTP/1.1\r\nHost: a\r\nX: " + String(repeating: "v", count: size - frame.utf8.count) + "\r\n\r\n"
    }

    @Test func headersOneByteUnderAndOverTheLimit() {
        for byteByByte in [false, true] {
            #expect(statuses(serve(head(16 * 1024 - 1), byteByByte: byteByByte).output) == [200])
            #expect(statuses(serve(head(16 * 1024), byteByByte: byteByByte).output) == [200])
            #expect(statuses(serve(head(16 * 1024 + 1), byteByByte: byteByByte).output) == [431])
        }
        var limits = HTTPServerLimits()
        limits.parser.maxHeaderBytes = 100
        #expect(statuses(serve(head(100), limits: limits).output) == [200])
        #expect(statuses(serve(head(101), limits: limits).output) == [431])
    }

    @Test func targetsOneByteUnderAndOverTheLimit() {
        func target(_ size: Int) -> String { "GET /" + String(repeating: "a", count: size - 1) + " HTTP/1.1\r\nHost: a\r\n\r\n" }
        #expect(statuses(serve(target(8 * 1024)).output) == [404])
        #expect(statuses(serve(target(8 * 1024 + 1)).output) == [414])
    }

    @Test func tooManyHeaderFieldsGet431() {
        let fields = (0..<100).map { "X-\($0): y\r\n" }.joined()
        #expect(statuses(serve("GET / HTTP/1.1\r\nHost: a\r\n" + fields + "\r\n").output) == [431])
        #expect(statuses(serve("GET / HTTP/1.1\r\n" + fields.dropLast(0) + "Host: a\r\n\r\n").output) == [431])
        let fewer = (0..<98).map { "X-\($0): y\r\n" }.joined()
        #expect(statuses(serve("GET / HTTP/1.1\r\nHost: a\r\n" + fewer + "\r\n").output) == [200])
    }

    @Test func aPeerThatDoesNotReadPausesTheParser() {
        var limits = HTTPServerLimits()
        limits.outputHighWater = 4096
        let context = HTTPServerContext(site: HTTPSite(pages: 10), limits: limits)
        let connection = HTTPServerConnection(context: context, now: 0)
        let request = Array(String(repeating: "GET /page/1 HTTP/1.1\r\nHost: a\r\n\r\n", count: 1000).utf8)
        request.withUnsafeBytes { connection.receive($0, now: 0) }
        // Answers stop just past the mark, and the engine is told to stop reading.
        let pending = connection.withPendingOutput { $0.count }
        #expect(pending > 4096 && pending < 4096 + 1024, "\(pending) bytes pending")
        #expect(!connection.wantsInput)
        // As the peer reads, the rest are answered, all of them, in order,
        // never more than the mark and one answer pending.
        var answered = 0
        var rounds = 0
        while connection.hasOutput {
            let chunk = connection.withPendingOutput { Array($0) }
            #expect(chunk.count < 4096 + 1024)
            answered += statuses(String(decoding: chunk, as: UTF8.self)).count
            connection.didSend(chunk.count, now: 0)
            rounds += 1
        }
        #expect(answered == 1000)
        #expect(rounds > 50)
        #expect(connection.wantsInput)
    }

    @Test func aHeadThatDoesNotArriveGets408() {
        let context = HTTPServerContext(site: HTTPSite(pages: 10), limits: HTTPServerLimits())
        let connection = HTTPServerConnection(context: context, now: 100)
        Array("GET / HTTP/1.1\r\nHost:".utf8).withUnsafeBytes { connection.receive($0, now: 100) }
        connection.tick(now: 109)
        #expect(!connection.hasOutput)
        connection.tick(now: 110.5)
        #expect(statuses(drain(connection)) == [408])
        #expect(connection.isDone)
    }

    @Test func emptyLinesSentSlowlyStartTheHeadTimeout() {
        // A line end a second, never a request line: the head timeout runs
        // from the first one, whatever comes after (issue "Hardening", 1).
        for pieces in [["\r\n", "\r\n", "\r\n", "\r\n"], ["\r", "\n", "\r", "\n", "\r", "\n", "\r", "\n"], ["\n", "\n", "\n", "\n"]] {
            let context = HTTPServerContext(site: HTTPSite(pages: 10), limits: HTTPServerLimits())
            let connection = HTTPServerConnection(context: context, now: 100)
            for (second, piece) in pieces.enumerated() {
                Array(piece.utf8).withUnsafeBytes { connection.receive($0, now: 100 + Double(second)) }
                connection.tick(now: 100 + Double(second))
            }
            connection.tick(now: 109.5)
            #expect(!connection.hasOutput && !connection.isDone, "\(pieces)")
            connection.tick(now: 110.5)
            #expect(statuses(drain(connection)) == [408], "\(pieces)")
            #expect(connection.isDone)
        }
    }

    @Test func theHeadTimeoutOfTheNextRequestRunsFromItsFirstByte() {
        let context = HTTPServerContext(site: HTTPSite(pages: 10), limits: HTTPServerLimits())
        let connection = HTTPServerConnection(context: context, now: 0)
        Array("GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n".utf8).withUnsafeBytes { connection.receive($0, now: 0) }
        #expect(statuses(drain(connection)) == [200])
        // Kept alive: 30 s of nothing is the idle timeout's business, not the head's.
        connection.tick(now: 30)
        #expect(!connection.hasOutput && !connection.isDone)
        Array("\r\n".utf8).withUnsafeBytes { connection.receive($0, now: 30) }
        Array("GET /plaintext HTTP/1.1\r\n".utf8).withUnsafeBytes { connection.receive($0, now: 35) }
        connection.tick(now: 39.5)
        #expect(!connection.hasOutput)
        connection.tick(now: 40.5)
        #expect(statuses(drain(connection)) == [408])
    }

    @Test func aConnectionBetweenRequestsHoldsNoParserAndTheNextRequestReusesOne() {
        // Issue 14: an idle keep-alive connection held its parser and output
        // buffer (about 1 KB); now they rest in the loop's context.
        let context = HTTPServerContext(site: HTTPSite(pages: 10), limits: HTTPServerLimits())
        let a = HTTPServerConnection(context: context, now: 0)
        let b = HTTPServerConnection(context: context, now: 0)
        func send(_ connection: HTTPServerConnection, _ text: String) {
            Array(text.utf8).withUnsafeBytes { connection.receive($0, now: 0) }
        }
        send(a, "GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(context.parsersAtRest == 0)
        #expect(statuses(drain(a)) == [200])
        #expect(context.parsersAtRest == 1 && context.outputBuffersAtRest == 1)
        // b's request takes a's parser: still one in all.
        send(b, "GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(context.parsersAtRest == 0 && context.outputBuffersAtRest == 0)
        #expect(statuses(drain(b)) == [200])
        #expect(context.parsersAtRest == 1 && context.outputBuffersAtRest == 1)
        // Half a request holds the parser; a second connection meanwhile needs its own.
        send(a, "POST /form HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
        send(b, "\r\n")
        #expect(context.parsersAtRest == 0)
        send(b, "GET /page/1 HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(statuses(drain(b)) == [200])
        #expect(context.parsersAtRest == 1)
        send(a, "lo\r\n0\r\n\r\n")
        #expect(statuses(drain(a)) == [405])
        #expect(context.parsersAtRest == 2)
        // A parser that was mid-chunk on one connection parses a fresh stream on the next.
        for connection in [a, b, a] {
            send(connection, "GET /page/2 HTTP/1.1\r\nHost: a\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(statuses(drain(connection)) == [200, 200])
        }
        #expect(context.parsersAtRest == 2)
        // A failed stream keeps its parser until the connection goes.
        send(a, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        #expect(statuses(drain(a)) == [400] && a.isDone)
        #expect(context.parsersAtRest == 1)
    }

    @Test func expectContinueGets100ContinueBeforeTheBody() {
        let context = HTTPServerContext(site: HTTPSite(pages: 10), limits: HTTPServerLimits())
        let connection = HTTPServerConnection(context: context, now: 0)
        Array("POST /form HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n".utf8).withUnsafeBytes { connection.receive($0, now: 0) }
        #expect(drain(connection) == "HTTP/1.1 100 Continue\r\n\r\n")
        Array("hello".utf8).withUnsafeBytes { connection.receive($0, now: 0) }
        #expect(statuses(drain(connection)) == [405])
        #expect(!connection.closing)
        // A body refused at once gets its final answer, not 100.
        let refused = serve("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 99999999\r\n\r\n").output
        #expect(statuses(refused) == [413] && !refused.contains("100 Continue"), "\(refused)")
        // No body, or HTTP/1.0: no 100.
        #expect(statuses(serve("GET /plaintext HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n").output) == [200])
        #expect(!serve("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx").output.contains("100 Continue"))
    }

    @Test func anAbsoluteFormTargetIsServedAsItsPath() {
        #expect(serve("GET http://example.com/plaintext HTTP/1.1\r\nHost: a\r\n\r\n").output.hasSuffix("Hello, World!"))
        #expect(serve("GET HTTP://EXAMPLE.COM:8080/page/3?x=1 HTTP/1.1\r\nHost: a\r\n\r\n").output.contains("<title>Page 3</title>"))
        #expect(serve("GET http://example.com HTTP/1.1\r\nHost: a\r\n\r\n").output.contains("<title>"))
        #expect(statuses(serve("GET http://example.com/nowhere HTTP/1.1\r\nHost: a\r\n\r\n").output) == [404])
    }

    @Test func anIdleConnectionIsClosedWithoutAWord() {
        let context = HTTPServerContext(site: HTTPSite(pages: 10), limits: HTTPServerLimits())
        let connection = HTTPServerConnection(context: context, now: 0)
        Array("GET / HTTP/1.1\r\nHost: a\r\n\r\n".utf8).withUnsafeBytes { connection.receive($0, now: 0) }
        _ = drain(connection)
        connection.tick(now: 59)
        #expect(!connection.isDone)
        connection.tick(now: 61)
        #expect(connection.isDone && connection.abandoned && !connection.hasOutput)
    }

    @Test func requestsBeforeTheClientsCloseAreAnswered() {
        let context = HTTPServerContext(site: HTTPSite(pages: 10), limits: HTTPServerLimits())
        let connection = HTTPServerConnection(context: context, now: 0)
        Array("GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\nGET /page/1 HTTP/1.1\r\nHost: a\r\n\r\n".utf8).withUnsafeBytes { connection.receive($0, now: 0) }
        connection.receiveEnd(now: 0)
        #expect(statuses(drain(connection)) == [200, 200])
        #expect(connection.isDone && !connection.abandoned)
    }

    @Test func theServerCountsEveryPage() {
        let context = HTTPServerContext(site: HTTPSite(pages: 10), limits: HTTPServerLimits())
        let connection = HTTPServerConnection(context: context, now: 0)
        Array("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /page/9 HTTP/1.1\r\nHost: a\r\n\r\nHEAD /page/9 HTTP/1.1\r\nHost: a\r\n\r\nGET /page/10 HTTP/1.1\r\nHost: a\r\n\r\n".utf8)
            .withUnsafeBytes { connection.receive($0, now: 0) }
        #expect(context.stats.pageFetches[0] == 1)
        #expect(context.stats.pageFetches[10] == 2)
        #expect(context.stats.responses == [200: 3, 404: 1])
    }
}

@Suite("The fuzzer's corpus, replayed")
struct FuzzCorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz/corpus").path

    @Test(arguments: HTTPFuzzDriver.Target.allCases)
    func everyInputOfTheCorpusRunsThrough(_ target: HTTPFuzzDriver.Target) throws {
        let directory = Self.corpus + "/" + target.rawValue
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        #expect(names.count >= 1)
        for name in names {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name))
            bytes.withUnsafeBytes { HTTPFuzzDriver.run(target, $0) }
        }
    }
}
