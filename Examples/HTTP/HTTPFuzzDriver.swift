/// What the fuzzer (Fuzz/HTTPRequestFuzzer.swift) runs on each input, and
/// the tests replay on its corpus (Fuzz/corpus, crashers included): arbitrary
/// bytes through the server's request path, driven as an engine drives it -
/// reads cut at sizes the first byte picks, small limits or the defaults, a
/// peer reading slowly or fast, ticks, the peer's end - or through the
/// crawler's response parser, links and URLs.
public enum HTTPFuzzDriver {
    /// Runs `input`; traps on a broken invariant.
    public static func run(_ input: UnsafeRawBufferPointer) {
        guard input.count > 0 else { return }
        let control = input[0]
        let bytes = UnsafeRawBufferPointer(rebasing: input[1...])
        var limits = HTTPServerLimits()
        if control & 0x80 != 0 {
            // Small limits, so that random input reaches every one of them.
            limits.parser = HTTPLimits(maxURIBytes: 16, maxHeaderBytes: 64, maxHeaderCount: 3, maxBodyBytes: 8)
            limits.outputHighWater = 256
        }
        let chunk = Int(control & 0x0f) + 1
        if control & 0x40 != 0 {
            return response(bytes, chunk: chunk, limits: limits.parser)
        }
        let context = HTTPServerContext(site: HTTPSite(pages: 7), limits: limits)
        let connection = HTTPServerConnection(context: context, now: 0)
        var offset = 0
        var now = 0.0
        while offset < bytes.count && !connection.isDone {
            if connection.wantsInput {
                let end = min(offset + chunk, bytes.count)
                connection.receive(UnsafeRawBufferPointer(rebasing: bytes[offset..<end]), now: now)
                offset = end
            }
            if connection.hasOutput {
                // A peer that reads slowly takes 7 bytes a round.
                let pending = connection.withPendingOutput { $0.count }
                connection.didSend(control & 0x20 != 0 ? min(pending, 7) : pending, now: now)
            }
            now += 0.5
            connection.tick(now: now)
        }
        connection.receiveEnd(now: now)
        var rounds = 0
        while connection.hasOutput && rounds < 1_000_000 {
            connection.didSend(connection.withPendingOutput { $0.count }, now: now)
            rounds += 1
        }
        connection.tick(now: now + 100)
        precondition(!connection.hasOutput, "output left after the peer took everything")
        precondition(connection.isDone, "a connection whose peer has gone and timed out is not done")
    }

    private final class Sink: HTTPMessageSink {
        func parsed(_ message: inout HTTPMessage) -> Bool {
            let base = WebURL(host: "h", port: 80, target: "/a/b")
            for link in hrefLinks(in: message.body) { _ = base.resolve(link) }
            _ = message.header("Location").flatMap { base.resolve($0) }
            return false
        }
    }

    private static func response(_ bytes: UnsafeRawBufferPointer, chunk: Int, limits: HTTPLimits) {
        let sink = Sink()
        let parser = HTTPParser(.response, limits: limits, sink: sink)
        var offset = 0
        while offset < bytes.count && parser.failure == nil {
            let end = min(offset + chunk, bytes.count)
            let used = parser.execute(UnsafeRawBufferPointer(rebasing: bytes[offset..<end]))
            precondition(used <= end - offset, "the parser used more than it was given")
            offset = end
        }
        parser.finish()
        _ = try? WebURL(String(decoding: bytes, as: UTF8.self))
    }
}
