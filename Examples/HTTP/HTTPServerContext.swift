import CHTTPParser
#if canImport(Glibc)
import Glibc
#endif

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
    /// Called when a connection's output has drained, with how many answers
    /// were sent in full and when the first byte of the earliest of their
    /// requests was received (the `now` of that ``HTTPServerConnection/receive(_:now:)``):
    /// a request's latency, from its first byte read to its answer's last
    /// byte handed to the kernel (nginx's `$request_time`), is the time of
    /// the call less that. An answer queued behind an unsent one of another
    /// segment's request counts from the earlier request's first byte (an
    /// upper bound; exact for a request at a time and for a pipelined
    /// batch read at once). It must not call the connection. Nil (the
    /// default): nothing is measured.
    // @exclusivity(unchecked): set once before the connections run, then
    // only read (on the context's one thread), as `stats` is.
    @exclusivity(unchecked) public var answersSent: ((_ since: Double, _ count: Int) -> Void)?
    private var dateSecond = -1
    /// The status line, the Server line and the Date line of a 200 answer,
    /// in one buffer whose date is rewritten in place once a second.
    private let okHead: UnsafeMutableBufferPointer<UInt8>
    private static let okPrefix = HTTPServerConnection.okLine + HTTPServerConnection.serverLine
    /// `Date: ` + an IMF-fixdate (always 29 characters) + CRLF.
    private static let dateLineLength = 37
    /// Parsers and output buffers of the connections between requests: a
    /// connection takes them when a request's first byte arrives and gives
    /// them back when its answers are sent, so a keep-alive connection at
    /// rest holds neither, and a steady load allocates nothing for them.
    private var spareParsers: [HTTPParser] = []
    private var spareOutputs: [[UInt8]] = []
    /// How many of each are kept at most; above that, they are freed.
    static let sparesKept = 256
    /// The largest output buffer kept for another answer; a bigger one is freed.
    static let keptOutputCapacity = 4096

    /// The parsers at rest in the pool (see ``sparesKept``).
    public var parsersAtRest: Int { spareParsers.count }
    /// The output buffers at rest in the pool.
    public var outputBuffersAtRest: Int { spareOutputs.count }

    public init(site: HTTPSite, limits: HTTPServerLimits) {
        self.site = site
        prepared = site.prepared
        self.limits = limits
        stats = HTTPServerStats(pages: site.pages)
        okHead = .allocate(capacity: Self.okPrefix.count + Self.dateLineLength)
        okHead.initialize(repeating: 0)
        _ = okHead.initialize(from: Self.okPrefix)
        spareParsers.reserveCapacity(Self.sparesKept)
        spareOutputs.reserveCapacity(Self.sparesKept)
    }

    /// A parser for `sink`'s new request stream: one at rest, or a new one.
    func takeParser(for sink: any HTTPMessageSink) -> HTTPParser {
        guard let parser = spareParsers.popLast() else {
            return HTTPParser(.request, limits: limits.parser, sink: sink)
        }
        parser.reuse(for: sink)
        return parser
    }

    /// Takes back a parser at rest.
    func giveBack(_ parser: HTTPParser) {
        if spareParsers.count < Self.sparesKept { spareParsers.append(parser) }
    }

    /// An empty output buffer, with the capacity of one used before if one is at rest.
    func takeOutput() -> [UInt8] {
        spareOutputs.popLast() ?? []
    }

    /// Takes back an emptied output buffer (one that grew big is freed).
    func giveBack(output: inout [UInt8]) {
        var buffer: [UInt8] = []
        swap(&buffer, &output)
        buffer.removeAll(keepingCapacity: true)
        if buffer.capacity > 0 && buffer.capacity <= Self.keptOutputCapacity && spareOutputs.count < Self.sparesKept {
            spareOutputs.append(buffer)
        }
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
