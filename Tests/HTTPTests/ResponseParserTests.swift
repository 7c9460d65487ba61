import HTTP
import Testing

/// Collects the responses a parser completes.
final class ResponseCollector: HTTPMessageSink {
    var responses: [HTTPMessage] = []
    func parsed(_ message: inout HTTPMessage) -> Bool {
        responses.append(message)
        return false
    }
}

/// Parses `text` as responses (in one piece, or a byte at a time), then the close.
func parseResponses(_ text: String, byteByByte: Bool = false) -> (responses: [HTTPMessage], failure: HTTPError?) {
    let sink = ResponseCollector()
    let parser = HTTPParser(.response, sink: sink)
    let bytes = Array(text.utf8)
    if byteByByte {
        for byte in bytes where parser.failure == nil { _ = [byte].withUnsafeBytes { parser.execute($0) } }
    } else {
        _ = bytes.withUnsafeBytes { parser.execute($0) }
    }
    parser.finish()
    return (sink.responses, parser.failure)
}

@Suite("The crawler's response parser: the framing http_parser lets through")
struct ResponseParserTests {
    static let badFraming: [(String, String, HTTPError.Kind)] = [
        ("junk instead of the CRLF after chunk data",
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", .badFraming),
        ("a chunk size with trailing space",
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", .badFraming),
        ("Transfer-Encoding in an HTTP/1.0 response",
         "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", .badFraming),
        ("Transfer-Encoding: gzip, chunked",
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", .unsupported),
        ("a bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", .badFraming),
        ("Content-Length with Transfer-Encoding",
         "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", .badFraming),
        ("a body shorter than its Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", .truncated),
        ("five empty lines before the status line", String(repeating: "\r\n", count: 5) + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", .malformed),
    ]

    @Test(arguments: badFraming)
    func badFramingFailsTheResponseByItsKind(_ name: String, _ text: String, _ kind: HTTPError.Kind) {
        for byteByByte in [false, true] {
            let (responses, failure) = parseResponses(text, byteByByte: byteByByte)
            #expect(responses.isEmpty, "\(name)")
            #expect(failure?.kind == kind, "\(name), byte by byte: \(byteByByte): \(String(describing: failure))")
        }
    }

    @Test func goodChunkedResponsesParse() {
        let text = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 ;ext\r\nhello\r\n1\r\n!\r\n0\r\n\r\n"
            + "\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
        for byteByByte in [false, true] {
            let (responses, failure) = parseResponses(text, byteByByte: byteByByte)
            #expect(failure == nil, "\(String(describing: failure))")
            #expect(responses.map { String(decoding: $0.body, as: UTF8.self) } == ["hello!", "hi"])
        }
    }
}
