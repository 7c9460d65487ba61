/// What the fuzzer (Fuzz/HTTPFuzzer.swift) runs on each input, and the tests
/// replay on its corpus (Fuzz/corpus/TARGET, crashers included). Four targets:
/// - `request`: arbitrary bytes through the server's request path, driven
///   as an engine drives it - reads cut at sizes the first byte picks, small
///   limits or the defaults, a peer reading slowly or fast, ticks, the peer's end;
/// - `response`: the same through the crawler's response parser;
/// - `url`: a link resolved against a page, checked to be sendable as is and
///   to parse back to itself;
/// - `links`: an HTML document through the link extractor, every link resolved.
public enum HTTPFuzzDriver {
    /// What an input goes through.
    public enum Target: String, CaseIterable, Sendable {
        case request, response, url, links
    }

    /// Runs `input` through `target`; traps on a broken invariant.
    public static func run(_ target: Target, _ input: UnsafeRawBufferPointer) {
        switch target {
        case .request, .response:
            guard input.count > 0 else { return }
            http(input, response: target == .response)
        case .url:
            url(input)
        case .links:
            links(input)
        }
    }

    private static func http(_ input: UnsafeRawBufferPointer, response isResponse: Bool) {
        let control = input[0]
        let bytes = UnsafeRawBufferPointer(rebasing: input[1...])
        var limits = HTTPServerLimits()
        if control & 0x80 != 0 {
            // Small limits, so that random input reaches every one of them.
            limits.parser = HTTPLimits(maxURIBytes: 16, maxHeaderBytes: 64, maxHeaderCount: 3, maxBodyBytes: 8)
            limits.outputHighWater = 256
        }
        let chunk = Int(control & 0x0f) + 1
        if isResponse {
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
            for link in hrefLinks(in: message.body) { check(base.resolveLink(link), of: link) }
            if let location = message.header("Location") { check(base.resolveLink(location), of: location) }
            return false
        }
    }

    /// Bases the `url` target resolves against, picked by the first byte.
    private static let bases = [WebURL(host: "h", port: 80, target: "/a/b"), WebURL(host: "h", port: 8080, target: "/"),
                                WebURL(host: "::1", port: 80, target: "/dir/page?q=1"), WebURL(host: "h", port: 80, target: "/a/b/")]

    private static func url(_ input: UnsafeRawBufferPointer) {
        guard let first = input.first else { return }
        let base = bases[Int(first) % bases.count]
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: input[1...]), as: UTF8.self)
        check(base.resolveLink(text), of: text)
        if let absolute = try? WebURL(text) { check(.url(absolute), of: text) }
    }

    /// Every link found, resolved as the crawler resolves it (on its bytes),
    /// is what resolving its String gives, and keeps the resolver's promises.
    private static func links(_ input: UnsafeRawBufferPointer) {
        let base = WebURL(host: "h", port: 80, target: "/a/b")
        var strings = hrefLinks(in: input)[...]
        forEachLink(in: input) { kind, bytes in
            guard kind == .follow else { return }
            let link = strings.popFirst()
            precondition(link.map { Array($0.utf8) == Array(bytes) } == true, "forEachLink and hrefLinks disagree")
            let resolution = base.resolveLink(bytes)
            precondition(resolution == base.resolveLink(link!), "resolving \(link!.debugDescription) on bytes differs")
            check(resolution, of: link!)
        }
        precondition(strings.isEmpty, "hrefLinks found more than forEachLink")
    }

    /// The resolver's promises: a URL's target is visible ASCII, starts with
    /// `/`, fits the limit; its authority is visible ASCII; and it is a fixed
    /// point - parsing its text gives it back, as does resolving its target
    /// (unless the target starts with `//`, which a reference reads as an authority).
    private static func check(_ resolution: WebURL.Resolution, of text: String) {
        guard case .url(let url) = resolution else { return }
        let target = Array(url.target.utf8)
        precondition(target.first == UInt8(ascii: "/"), "target does not start with /: \(url.target) from \(text.debugDescription)")
        precondition(target.count <= WebURL.maxTargetBytes, "target over the limit from \(text.debugDescription)")
        precondition(target.allSatisfy { $0 > 0x20 && $0 < 0x7f }, "raw byte in target \(url.target.debugDescription) from \(text.debugDescription)")
        precondition(!url.host.isEmpty && url.authority.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f },
                     "bad authority \(url.authority.debugDescription) from \(text.debugDescription)")
        let reparsed = try? WebURL(url.description)
        precondition(reparsed == url, "\(url) parses back as \(String(describing: reparsed)), from \(text.debugDescription)")
        precondition(url.target.hasPrefix("//") || url.resolve(url.target) == url,
                     "\(url) resolves its own target elsewhere, from \(text.debugDescription)")
        precondition(url.fileName.utf8.count <= 255 && !url.fileName.contains("/"), "bad file name for \(url)")
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
    }
}
