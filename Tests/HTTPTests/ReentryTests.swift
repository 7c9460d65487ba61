import HTTP
import Testing

#if DEBUG
/// The parser's message buffers and the connection's output are exempt from
/// the runtime's exclusivity checks (`@exclusivity(unchecked)`, for speed);
/// the types keep the rule themselves, and debug builds trap on a re-entry
/// that would break it.
@Suite("Re-entering the parser or the connection traps in debug builds")
struct ReentryTests {
    final class ReenteringSink: HTTPMessageSink {
        var parser: HTTPParser?
        func parsed(_ message: inout HTTPMessage) -> Bool {
            Array("GET /".utf8).withUnsafeBytes { _ = parser?.execute($0) }
            return false
        }
    }

    @Test func aSinkThatCallsItsParserFromParsedTraps() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let sink = ReenteringSink()
            let parser = HTTPParser(.request, sink: sink)
            sink.parser = parser
            Array("GET / HTTP/1.1\r\nHost: a\r\n\r\n".utf8).withUnsafeBytes { _ = parser.execute($0) }
        }.map { result in
            let text = String(decoding: result.standardErrorContent, as: UTF8.self)
            #expect(text.contains("execute(_:) was called from the sink's parsed(_:)"), "\(text)")
        }
    }

    @Test func callingTheConnectionFromWithPendingOutputTraps() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let context = HTTPServerContext(site: HTTPSite(pages: 1), limits: HTTPServerLimits())
            let connection = HTTPServerConnection(context: context, now: 0)
            Array("GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n".utf8).withUnsafeBytes { connection.receive($0, now: 0) }
            connection.withPendingOutput { connection.didSend($0.count, now: 0) }
        }.map { result in
            let text = String(decoding: result.standardErrorContent, as: UTF8.self)
            #expect(text.contains("didSend(_:now:) was called from withPendingOutput's body"), "\(text)")
        }
    }
}
#endif
