import CHTTPParser
#if canImport(Glibc)
import Glibc
#endif

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
    //
    // Every stored `var` is @exclusivity(unchecked), as the parser's are:
    // the connection is used on one thread, and the one access open across
    // a call out is withPendingOutput's (see `output`).

    // A strong `let`: read through `self` it is used at +0. (An
    // unowned(unsafe) reference was copied - retained and released - around
    // each call on it; a checked unowned one costs an atomic per use.)
    let context: HTTPServerContext
    /// The parser, taken from the context's when the first bytes of a
    /// request arrive and given back when its answers are sent: a
    /// connection between requests holds no parser and no output buffer
    /// (a few hundred bytes each, at C10k).
    @exclusivity(unchecked) private var parserIfMade: HTTPParser?
    private var parser: HTTPParser {
        if let parserIfMade { return parserIfMade }
        let parser = context.takeParser(for: self)
        parserIfMade = parser
        if output.capacity == 0 { output = context.takeOutput() }
        return parser
    }
    /// Unsent output; ``pendingOutput`` is what is left of it.
    // @exclusivity(unchecked): the runtime's checks were a tenth of a
    // pipelined server's CPU. The connection is not Sendable (one thread);
    // the only access that spans a call out is withPendingOutput's, whose
    // body must not call the connection (debug builds trap if it does).
    @exclusivity(unchecked) var output: [UInt8] = []
    #if DEBUG
    @exclusivity(unchecked) private var lendingOutput = false
    #endif
    @exclusivity(unchecked) private var outputStart = 0
    /// Received but not parsed yet (the parser paused).
    @exclusivity(unchecked) private var input: [UInt8] = []
    /// The last time the peer sent or took something.
    @exclusivity(unchecked) public private(set) var lastProgress: Double
    /// When the current request's first byte arrived (an empty line before
    /// its request line included), until its head is complete.
    @exclusivity(unchecked) private var headStartedAt: Double?
    /// The `now` of the latest receive, and of the one that brought the
    /// first byte of the request being parsed.
    @exclusivity(unchecked) private var receivedAt: Double = 0
    @exclusivity(unchecked) private var requestStartedAt: Double = 0
    /// When the earliest request of the answers not yet sent in full began,
    /// and how many they are (see ``HTTPServerContext/answersSent``).
    @exclusivity(unchecked) private var unsentSince: Double = 0
    @exclusivity(unchecked) private var unsentAnswers = 0
    @exclusivity(unchecked) private var peerClosed = false
    /// The peer asked to close (`Connection: close`, or HTTP/1.0 without
    /// keep-alive): it sends nothing after that request.
    @exclusivity(unchecked) private var peerAskedToClose = false
    /// No more requests will be read: close once the output is sent.
    @exclusivity(unchecked) public private(set) var closing = false
    /// Close now, without a word (idle, or a peer that stopped reading).
    @exclusivity(unchecked) public private(set) var abandoned = false

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

    /// Whether the connection ends as its peer asked: the peer said it
    /// would close (`Connection: close`, HTTP/1.0), everything it sent is
    /// answered and sent. Then no input of the peer's can turn the close
    /// into a reset, and - if none is waiting - the engine may close at once
    /// instead of lingering for the peer's FIN, as nginx does.
    public var endsCleanly: Bool { isDone && !abandoned && peerAskedToClose && input.isEmpty }

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
        receivedAt = now
        if parser.isPaused {
            input.append(contentsOf: bytes)
            return
        }
        if !parser.inMessage && !parser.isReadingHead { requestStartedAt = now }
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
            if unsentAnswers > 0 {
                context.answersSent?(unsentSince, unsentAnswers)
                unsentAnswers = 0
            }
            // Keep a small buffer for the next answer; let a big one go.
            if output.capacity <= HTTPServerContext.keptOutputCapacity { output.removeAll(keepingCapacity: true) } else { output = [] }
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
        if !hasOutput { rest() }
    }

    /// Between requests, with everything answered and sent: the parser and
    /// the output buffer go back to the context for the next request of any
    /// of its connections.
    private func rest() {
        guard !closing, input.isEmpty, let parser = parserIfMade, parser.isAtRest else { return }
        parserIfMade = nil
        context.giveBack(parser)
        context.giveBack(output: &output)
        outputStart = 0
    }

    /// Applies the timeouts; call it about once a second.
    public func tick(now: Double) {
        checkNotLending()
        guard !abandoned else { return }
        if let started = headStartedAt, !closing, now - started > context.limits.headerTimeout.inSeconds {
            fail(HTTPError(408, "the request head did not arrive within \(formatSeconds(context.limits.headerTimeout.inSeconds)) s"))
        } else if now - lastProgress > context.limits.idleTimeout.inSeconds {
            abandoned = true
        }
    }

    /// Seconds until ``tick(now:)`` has something to do, for engines that
    /// wait with a timeout instead of ticking.
    public func secondsUntilTimeout(now: Double) -> Double {
        var deadline = lastProgress + context.limits.idleTimeout.inSeconds
        if let started = headStartedAt, !closing { deadline = min(deadline, started + context.limits.headerTimeout.inSeconds) }
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
        queuedAnswer()
    }

    /// Counts an answer put in the output, for ``HTTPServerContext/answersSent``;
    /// the next request, if any, began in the latest bytes received.
    private func queuedAnswer() {
        if unsentAnswers == 0 { unsentSince = requestStartedAt }
        unsentAnswers += 1
        requestStartedAt = receivedAt
    }

    public func continueExpected() {
        output.append(contentsOf: Self.continueAnswer)
        context.stats.answered(100)
    }

    public func parsed(_ message: inout HTTPMessage) -> Bool {
        respond(to: &message)
        queuedAnswer()
        if !message.keepAlive {
            closing = true
            peerAskedToClose = true
            return true
        }
        return output.count - outputStart > context.limits.outputHighWater
    }
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
