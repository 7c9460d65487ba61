import CHTTPParser
#if canImport(Glibc)
import Glibc
#endif

/// The server's limits and timeouts (`server http`'s options), each with the
/// status it earns.
public struct HTTPServerLimits: Sendable, Equatable {
    /// Request target, head, header count and body limits (414, 431, 431, 413).
    public var parser = HTTPLimits()
    /// Seconds from a request's first byte to the end of its head (408 after
    /// it). Any byte starts it - an empty line before the request line too -
    /// and nothing that arrives later pushes it back.
    public var headerTimeout = 10.0
    /// Seconds a connection may sit with nothing to do (or make no progress)
    /// before it is closed without a word.
    public var idleTimeout = 60.0
    /// Connections open at once; accepting pauses while at the limit.
    public var maxConnections = 16_384
    /// Bytes of unsent output per connection above which the server stops
    /// reading and parsing that connection's requests until the peer reads.
    public var outputHighWater = 64 * 1024
    /// Seconds a closing connection waits for its peer's FIN after the
    /// server's (a lingering close: closing with unread input would reset
    /// the connection and destroy the answer in flight).
    public var lingerTimeout = 2.0

    public init() {}
}

/// What the connections of one loop (or thread) share: the site, the
/// limits, the counts and the Date header. Used on that loop's thread only.
public final class HTTPServerContext {
    public let site: HTTPSite
    /// `site`'s, kept here: reaching it through the `site` struct cost a
    /// retain and a release per answer (a `let` of a class is read at +0).
    private let prepared: HTTPSite.PreparedAnswers
    public let limits: HTTPServerLimits
    // @exclusivity(unchecked): every access is a read or an in-place update
    // that calls out to nothing, on the context's one thread, so none can
    // overlap another; the runtime's check cost more than the update.
    @exclusivity(unchecked) public var stats: HTTPServerStats
    private var dateSecond = -1
    /// The status line, the Server line and the Date line of a 200 answer,
    /// in one buffer whose date is rewritten in place once a second.
    private let okHead: UnsafeMutableBufferPointer<UInt8>
    private static let okPrefix = HTTPServerConnection.okLine + HTTPServerConnection.serverLine
    /// `Date: ` + an IMF-fixdate (always 29 characters) + CRLF.
    private static let dateLineLength = 37

    public init(site: HTTPSite, limits: HTTPServerLimits) {
        self.site = site
        prepared = site.prepared
        self.limits = limits
        stats = HTTPServerStats(pages: site.pages)
        okHead = .allocate(capacity: Self.okPrefix.count + Self.dateLineLength)
        okHead.initialize(repeating: 0)
        _ = okHead.initialize(from: Self.okPrefix)
    }

    deinit { okHead.deallocate() }

    /// Whether `route` has a prepared 200 answer.
    @inline(__always)
    func hasPreparedAnswer(for route: HTTPSite.Route) -> Bool { prepared.has(route) }

    /// Appends the prepared rest of the 200 answer for `route` (see ``HTTPSite/PreparedAnswers``).
    @inline(__always)
    func appendPreparedAnswer(for route: HTTPSite.Route, to output: inout [UInt8]) -> Bool {
        prepared.append(route, to: &output)
    }

    /// A 200 answer's status, Server and Date lines, valid until the next call.
    func okHeadLines() -> UnsafeBufferPointer<UInt8> {
        updateDate()
        return UnsafeBufferPointer(okHead)
    }

    /// The current `Date: <IMF-fixdate>\r\n` line, valid until the next call.
    func dateLine() -> UnsafeBufferPointer<UInt8> {
        updateDate()
        return UnsafeBufferPointer(rebasing: okHead[Self.okPrefix.count...])
    }

    /// Formats the date once a second.
    private func updateDate() {
        var now = time(nil)
        guard now != dateSecond else { return }
        dateSecond = now
        var parts = tm()
        gmtime_r(&now, &parts)
        var text = [CChar](repeating: 0, count: 64)
        let length = strftime(&text, text.count, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &parts)
        precondition(length == Self.dateLineLength, "an IMF-fixdate of an unexpected length")
        for index in 0..<length { okHead[Self.okPrefix.count + index] = UInt8(bitPattern: text[index]) }
    }
}

/// What a server counted: the tests read it (`--stats FILE`).
public struct HTTPServerStats: Sendable, Equatable {
    /// Requests answered, by status (counted in an array: no hashing per request).
    public var responses: [Int: Int] {
        var result: [Int: Int] = [:]
        for (index, count) in byStatus.enumerated() where count > 0 { result[index + 100] = count }
        return result
    }
    private var byStatus = [Int](repeating: 0, count: 500)
    /// GETs and HEADs of the site: index 0 is `/`, K + 1 is `/page/K`.
    public var pageFetches: [Int]
    /// Connections accepted.
    public var accepted = 0
    /// Connections open now, and the most at once.
    public var open = 0
    public var peakOpen = 0

    public init(pages: Int) { pageFetches = Array(repeating: 0, count: pages + 1) }

    /// Adds another loop's counts (peaks add up: the loops ran side by side).
    public mutating func add(_ other: HTTPServerStats) {
        for index in byStatus.indices { byStatus[index] += other.byStatus[index] }
        for (index, count) in other.pageFetches.enumerated() where index < pageFetches.count { pageFetches[index] += count }
        accepted += other.accepted
        open += other.open
        peakOpen += other.peakOpen
    }

    public mutating func opened() {
        accepted += 1
        open += 1
        peakOpen = max(peakOpen, open)
    }

    public mutating func closed() { open -= 1 }

    /// Counts an answer with `status` (100...599).
    public mutating func answered(_ status: Int) { byStatus[status - 100] += 1 }

    /// As JSON: `{"accepted":..,"peakOpen":..,"responses":{"200":..},"pageFetches":[..]}`.
    public var json: String {
        let statuses = responses.keys.sorted().map { "\"\($0)\":\(responses[$0]!)" }.joined(separator: ",")
        return "{\"accepted\":\(accepted),\"open\":\(open),\"peakOpen\":\(peakOpen),\"responses\":{\(statuses)},\"pageFetches\":[\(pageFetches.map(String.init).joined(separator: ","))]}"
    }
}

/// One HTTP/1.1 connection of a server, without I/O: bytes in, bytes out.
/// Every engine (libev, epoll, async, threads) drives the same code.
///
/// Requests are answered in order (pipelining); when the unsent output
/// passes the high-water mark the parser pauses and the engine stops
/// reading, so a peer that does not read cannot make the server buffer
/// without bound. A bad request gets its status and the connection closes
/// after the answers before it.
///
/// The class is open so that an engine's connection can be one object with
/// it (an idle connection is a few hundred bytes at C10k); its members are
/// not open, so calls to them stay direct.
open class HTTPServerConnection: HTTPMessageSink {
    // The order of the stored properties is the layout: words first, the
    // optional double, then the flags packed in its padding.

    // A strong `let`: read through `self` it is used at +0. (An
    // unowned(unsafe) reference was copied - retained and released - around
    // each call on it; a checked unowned one costs an atomic per use.)
    private let context: HTTPServerContext
    /// The parser, made when the first bytes arrive: an idle connection
    /// costs the server no parser (a few hundred bytes each, at C10k).
    private var parserIfMade: HTTPParser?
    private var parser: HTTPParser {
        if let parserIfMade { return parserIfMade }
        let parser = HTTPParser(.request, limits: context.limits.parser, sink: self)
        parserIfMade = parser
        return parser
    }
    /// Unsent output; ``pendingOutput`` is what is left of it.
    // @exclusivity(unchecked): the runtime's checks were a tenth of a
    // pipelined server's CPU. The connection is not Sendable (one thread);
    // the only access that spans a call out is withPendingOutput's, whose
    // body must not call the connection (debug builds trap if it does).
    @exclusivity(unchecked) private var output: [UInt8] = []
    #if DEBUG
    private var lendingOutput = false
    #endif
    private var outputStart = 0
    /// Received but not parsed yet (the parser paused).
    private var input: [UInt8] = []
    /// The last time the peer sent or took something.
    public private(set) var lastProgress: Double
    /// When the current request's first byte arrived (an empty line before
    /// its request line included), until its head is complete.
    private var headStartedAt: Double?
    private var peerClosed = false
    /// No more requests will be read: close once the output is sent.
    public private(set) var closing = false
    /// Close now, without a word (idle, or a peer that stopped reading).
    public private(set) var abandoned = false

    public init(context: HTTPServerContext, now: Double) {
        self.context = context
        lastProgress = now
    }

    /// Whether the engine should read: not closing, and not paused by unsent output.
    public var wantsInput: Bool { !closing && parserIfMade?.isPaused != true }
    /// Whether there is output to send.
    public var hasOutput: Bool { outputStart < output.count }
    /// Whether nothing is in progress: no request begun, none waiting to be parsed.
    public var isIdle: Bool { parserIfMade?.inMessage != true && input.isEmpty }
    /// Whether the connection is over: closing and everything sent.
    public var isDone: Bool { abandoned || closing && !hasOutput }

    /// Calls `body` with the unsent output; report what was sent with
    /// ``didSend(_:now:)`` after it returns. `body` must not call the
    /// connection (debug builds trap).
    public func withPendingOutput<T>(_ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        #if DEBUG
        lendingOutput = true
        defer { lendingOutput = false }
        #endif
        return try output.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[outputStart...])) }
    }

    /// Debug builds: traps if called from withPendingOutput's body (see `output`).
    @inline(__always)
    private func checkNotLending(_ function: StaticString = #function) {
        #if DEBUG
        precondition(!lendingOutput, "HTTPServerConnection: \(function) was called from withPendingOutput's body")
        #endif
    }

    /// Takes received bytes.
    public func receive(_ bytes: UnsafeRawBufferPointer, now: Double) {
        checkNotLending()
        lastProgress = now
        guard !closing else { return }
        if parser.isPaused {
            input.append(contentsOf: bytes)
            return
        }
        let used = parser.execute(bytes)
        if used < bytes.count && parser.failure == nil {
            input.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[used...]))
        }
        settle(now)
    }

    /// The peer closed its side: the requests received are answered, then the connection closes.
    public func receiveEnd(now: Double) {
        checkNotLending()
        peerClosed = true
        settle(now)
    }

    /// Records that `count` bytes of the output were sent; resumes parsing
    /// when the output has drained below half the high-water mark.
    public func didSend(_ count: Int, now: Double) {
        checkNotLending()
        outputStart += count
        if count > 0 { lastProgress = now }
        if outputStart == output.count {
            // Keep a small buffer for the next answer; let a big one go.
            if output.capacity <= 4096 { output.removeAll(keepingCapacity: true) } else { output = [] }
            outputStart = 0
        }
        if parserIfMade?.isPaused == true && !closing && output.count - outputStart <= context.limits.outputHighWater / 2 {
            parser.resume()
            if !input.isEmpty {
                let pending = input
                input = []
                let used = pending.withUnsafeBytes { parser.execute($0) }
                if used < pending.count && parser.failure == nil { input = Array(pending[used...]) }
            }
            settle(now)
        }
    }

    /// Applies the timeouts; call it about once a second.
    public func tick(now: Double) {
        checkNotLending()
        guard !abandoned else { return }
        if let started = headStartedAt, !closing, now - started > context.limits.headerTimeout {
            fail(HTTPError(408, "the request head did not arrive within \(formatSeconds(context.limits.headerTimeout)) s"))
        } else if now - lastProgress > context.limits.idleTimeout {
            abandoned = true
        }
    }

    /// Seconds until ``tick(now:)`` has something to do, for engines that
    /// wait with a timeout instead of ticking.
    public func secondsUntilTimeout(now: Double) -> Double {
        var deadline = lastProgress + context.limits.idleTimeout
        if let started = headStartedAt, !closing { deadline = min(deadline, started + context.limits.headerTimeout) }
        return max(0.001, deadline - now + 0.001)
    }

    /// After parsing: answers a failure, tracks the header timeout, ends at the peer's close.
    private func settle(_ now: Double) {
        if let failure = parserIfMade?.failure {
            fail(failure)
            return
        }
        if let parser = parserIfMade, parser.isReadingHead {
            // From the first byte of the request, whatever it is: empty lines
            // sent one a second must not hold the connection for ever.
            if headStartedAt == nil { headStartedAt = now }
        } else {
            headStartedAt = nil
        }
        if peerClosed && input.isEmpty && parserIfMade?.isPaused != true {
            // Everything the peer sent is answered; a request cut short gets nothing.
            closing = true
            headStartedAt = nil
        }
    }

    /// Answers with `error`'s status and closes.
    private func fail(_ error: HTTPError) {
        guard !closing else { return }
        closing = true
        headStartedAt = nil
        input = []
        let body = Array("\(error.status) \(HTTPStatus.phrase(error.status)): \(error.reason)\n".utf8)
        writeHead(error.status, contentType: "text/plain; charset=utf-8", length: body.count, keepAlive: false,
                  extra: error.status == 405 ? "Allow: GET, HEAD\r\n" : nil)
        output.append(contentsOf: body)
        context.stats.answered(error.status)
    }

    public func continueExpected() {
        output.append(contentsOf: Self.continueAnswer)
        context.stats.answered(100)
    }

    public func parsed(_ message: inout HTTPMessage) -> Bool {
        respond(to: &message)
        if !message.keepAlive {
            closing = true
            return true
        }
        return output.count - outputStart > context.limits.outputHighWater
    }

    // inout: passing the parser's message by value copied it (a retain and
    // a release of each of its arrays per request).
    private func respond(to message: inout HTTPMessage) {
        let isHead = message.method == HTTP_HEAD
        guard message.method == HTTP_GET || isHead else {
            let name = String(cString: http_method_str(message.method))
            return answer(405, "text/plain; charset=utf-8", Array("405 Method Not Allowed: \(name); this server answers GET and HEAD\n".utf8),
                          message, isHead: false, extra: "Allow: GET, HEAD\r\n")
        }
        let route = message.target.first == UInt8(ascii: "/")
            ? HTTPSite.route(message.target, pages: context.site.pages)
            : HTTPSite.route(originForm(message.target), pages: context.site.pages)
        switch route {
        case .page(let index): context.stats.pageFetches[index + 1] += 1
        case .index: context.stats.pageFetches[0] += 1
        case .plaintext, .notFound: break
        }
        // The common case - a kept-alive HTTP/1.1 GET of the site - from
        // answers prepared once, appended in one go.
        if !isHead && message.keepAlive && message.minor >= 1 && context.hasPreparedAnswer(for: route) {
            context.stats.answered(200)
            output.append(contentsOf: context.okHeadLines())
            _ = context.appendPreparedAnswer(for: route, to: &output)
            return
        }
        switch route {
        case .plaintext:
            answer(200, "text/plain", HTTPSite.plaintext, message, isHead: isHead)
        case .page(let index):
            answer(200, "text/html; charset=utf-8", context.site.html(page: index), message, isHead: isHead)
        case .index:
            answer(200, "text/html; charset=utf-8", context.site.indexHTML, message, isHead: isHead)
        case .notFound:
            answer(404, "text/plain; charset=utf-8", Array("404 Not Found: \(String(decoding: message.target, as: UTF8.self))\n".utf8),
                   message, isHead: isHead)
        }
    }

    private func answer(_ status: Int, _ contentType: String, _ body: [UInt8], _ message: HTTPMessage, isHead: Bool, extra: String? = nil) {
        // HTTP/1.0 keeps the connection only when asked to, and must be told it is kept.
        writeHead(status, contentType: contentType, length: body.count, keepAlive: message.keepAlive,
                  extra: extra, http10: message.minor == 0)
        if !isHead { output.append(contentsOf: body) }
        context.stats.answered(status)
    }

    private func writeHead(_ status: Int, contentType: String, length: Int, keepAlive: Bool, extra: String?, http10: Bool = false) {
        if status == 200 {
            output.append(contentsOf: HTTPServerConnection.okLine)
        } else {
            output.append(contentsOf: "HTTP/1.1 \(status) \(HTTPStatus.phrase(status))\r\n".utf8)
        }
        output.append(contentsOf: HTTPServerConnection.serverLine)
        output.append(contentsOf: context.dateLine())
        output.append(contentsOf: "Content-Type: ".utf8)
        output.append(contentsOf: contentType.utf8)
        output.append(contentsOf: "\r\nContent-Length: ".utf8)
        appendDecimal(length)
        output.append(contentsOf: [13, 10])
        if let extra { output.append(contentsOf: extra.utf8) }
        if !keepAlive {
            output.append(contentsOf: "Connection: close\r\n".utf8)
        } else if http10 {
            output.append(contentsOf: "Connection: keep-alive\r\n".utf8)
        }
        output.append(contentsOf: [13, 10])
    }

    private func appendDecimal(_ value: Int) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { buffer in
            var rest = value
            var start = buffer.count
            repeat {
                start -= 1
                buffer[start] = UInt8(48 + rest % 10)
                rest /= 10
            } while rest > 0
            output.append(contentsOf: buffer[start...])
        }
    }

    static let okLine = Array("HTTP/1.1 200 OK\r\n".utf8)
    static let continueAnswer = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)
    static let serverLine = Array("Server: swift-libev\r\n".utf8)
}

/// A request target in origin form: an absolute-form target
/// (`http://host/path?query`, RFC 9112 3.2.2, as sent to proxies) is served as
/// its path and query, `/` when it has no path; other targets are as they are.
func originForm(_ target: [UInt8]) -> [UInt8] {
    // scheme "://" authority [path-abempty] ["?" query]
    guard let colon = target.firstIndex(of: UInt8(ascii: ":")), colon > 0,
          target[..<colon].allSatisfy(isSchemeCharacter),
          target.count >= colon + 3, target[colon + 1] == UInt8(ascii: "/"), target[colon + 2] == UInt8(ascii: "/") else {
        return target
    }
    let rest = target[(colon + 3)...]
    guard let pathStart = rest.firstIndex(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") }) else {
        return [UInt8(ascii: "/")]
    }
    return target[pathStart] == UInt8(ascii: "?") ? [UInt8(ascii: "/")] + target[pathStart...] : Array(target[pathStart...])
}

private func isSchemeCharacter(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
         UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."): true
    default: false
    }
}

/// Seconds as people write them in messages: `10`, `2.5`.
public func formatSeconds(_ seconds: Double) -> String {
    seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)
}
