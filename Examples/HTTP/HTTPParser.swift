import CHTTPParser
#if canImport(Glibc)
import Glibc
#endif

/// Debian's http_parser (Node.js's parser for a decade) for one connection:
/// requests for a server, responses for a client. It adds the checks
/// http_parser leaves out - header field names are tokens, no control
/// characters or obsolete line folding in values, one Host, HTTP/1.x, a
/// few empty lines at most before a message, no Transfer-Encoding on
/// HTTP/1.0 and no transfer coding but chunked, a chunk size line without
/// trailing whitespace and CRLF after each chunk's data, a status line that
/// begins with `HTTP/` (Debian builds http_parser without its strict mode,
/// which lets `HTTQ/1.1 200 OK` through) - and the limits of ``HTTPLimits``.
public final class HTTPParser {
    public enum Kind { case request, response }

    // Every stored `var` here is @exclusivity(unchecked): the runtime's
    // checks (an access-set insert through a thread-local per access, even
    // for a plain store) were a fifth of a pipelined server's CPU on the
    // three buffers below, and 6 % more on the flags after (issue 14's
    // profile). The parser keeps the rule itself: it is not Sendable (one
    // thread uses it), and the only calls out while an access is open are
    // the sink's, described at `message` below.

    public let kind: Kind
    public let limits: HTTPLimits
    /// The first error; the parser stops there.
    @exclusivity(unchecked) public private(set) var failure: HTTPError?
    /// Whether a message has begun and not ended yet.
    @exclusivity(unchecked) public private(set) var inMessage = false
    /// Whether the current message's head is complete.
    @exclusivity(unchecked) public private(set) var headComplete = false
    /// Whether the parser is paused (see ``HTTPMessageSink/parsed(_:)``).
    @exclusivity(unchecked) public private(set) var isPaused = false
    /// Set for responses to a HEAD request: they carry no body.
    @exclusivity(unchecked) public var expectsNoBody = false

    // unowned(unsafe): the sink owns the parser, so it outlives it; a
    // checked unowned reference would cost an atomic operation per message.
    // A parser at rest in a pool (see ``reuse(for:)``) is called by nobody.
    @exclusivity(unchecked) private unowned(unsafe) var sink: any HTTPMessageSink
    private let parser: UnsafeMutablePointer<http_parser>
    // The runtime's checks on these three were a fifth of a pipelined
    // server's CPU, before the rest were unchecked too. http_parser calls
    // back only inside execute() and finish(), one callback at a time, and
    // every access to these ends before its callback returns - except the
    // sink's, which holds `message` through parsed(_:). A sink must not call
    // execute() or finish() from parsed(_:): debug builds trap if it does.
    @exclusivity(unchecked) private var message = HTTPMessage()
    @exclusivity(unchecked) private var field: [UInt8] = []
    @exclusivity(unchecked) private var value: [UInt8] = []
    #if DEBUG
    @exclusivity(unchecked) private var inSink = false
    #endif
    @exclusivity(unchecked) private var lastWasValue = false
    @exclusivity(unchecked) private var headerCount = 0
    /// What the field whose value is being read is, for the checks that need its value.
    @exclusivity(unchecked) private var fieldKind = FieldKind.other
    /// The current message's Transfer-Encoding values, joined with commas.
    @exclusivity(unchecked) private var transferEncoding: [UInt8] = []
    @exclusivity(unchecked) private var sawTransferEncoding = false
    @exclusivity(unchecked) private var sawExpectContinue = false
    /// Empty lines since the last message ended (or the stream began) and
    /// before the next one - CRLF, a bare LF or a bare CR each count one:
    /// http_parser skips any number of them.
    @exclusivity(unchecked) public private(set) var emptyLines = 0
    /// Whether the last byte between messages was a CR (a LF after it ends the same line).
    @exclusivity(unchecked) private var afterCR = false
    /// Why http_parser is paused, when this parser paused it itself.
    @exclusivity(unchecked) private var pausedAt = PausePoint.none
    /// The chunk framing http_parser does not check.
    @exclusivity(unchecked) private var chunkFraming = ChunkFramingCheck()
    // Where the current buffer is, to tell a value split across reads
    // (one value, two callbacks) from obsolete line folding (also two).
    @exclusivity(unchecked) private var executions = 0
    @exclusivity(unchecked) private var bufferStart: UnsafePointer<CChar>?
    @exclusivity(unchecked) private var bufferEnd: UnsafePointer<CChar>?
    @exclusivity(unchecked) private var valueEndedBuffer = false
    @exclusivity(unchecked) private var valueExecution = 0
    // The head's size: where in the stream the current buffer, and the
    // current message's head, start; see headSize(endingAt:).
    @exclusivity(unchecked) private var streamOffset = 0
    @exclusivity(unchecked) private var headStart = 0
    @exclusivity(unchecked) private var measuringHead = false
    /// Response parsers: how many bytes of the current status line's
    /// `HTTP/` have been seen (5: all of it, or not a response parser).
    @exclusivity(unchecked) private var statusPrefixSeen = 5

    public init(_ kind: Kind, limits: HTTPLimits = HTTPLimits(), sink: any HTTPMessageSink) {
        self.kind = kind
        self.limits = limits
        self.sink = sink
        parser = .allocate(capacity: 1)
        http_parser_init(parser, kind == .request ? HTTP_REQUEST : HTTP_RESPONSE)
        parser.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        statusPrefixSeen = kind == .response ? 0 : 5
    }

    deinit { parser.deallocate() }

    /// Whether the parser is between messages with nothing of the stream
    /// kept: no message begun, no empty line counted, not paused, not failed.
    /// Only such a parser may be handed to another stream.
    var isAtRest: Bool {
        !inMessage && emptyLines == 0 && !afterCR && !isPaused && failure == nil && pausedAt == .none
            && !chunkFraming.isChecking
    }

    /// Starts a new stream for `sink` with a parser at rest (see
    /// ``isAtRest``), keeping its buffers: a server's connections share
    /// their loop's parsers, so a keep-alive connection between requests
    /// holds none. Everything a stream leaves behind is set back here; what
    /// a message leaves is set back when the next one begins.
    func reuse(for sink: any HTTPMessageSink) {
        precondition(isAtRest, "HTTPParser: reuse(for:) of a parser that is not at rest")
        self.sink = sink
        http_parser_init(parser, kind == .request ? HTTP_REQUEST : HTTP_RESPONSE)
        parser.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        expectsNoBody = false
        headComplete = false
        chunkFraming = ChunkFramingCheck()
        executions = 0
        bufferStart = nil
        bufferEnd = nil
        valueEndedBuffer = false
        valueExecution = 0
        streamOffset = 0
        headStart = 0
        measuringHead = false
        statusPrefixSeen = kind == .response ? 0 : 5
    }

    /// Whether a message's head is on its way: its first byte, or an empty
    /// line before it, has arrived, and its blank line has not.
    public var isReadingHead: Bool { inMessage ? !headComplete : emptyLines > 0 }

    /// Where this parser pauses http_parser for checks of its own.
    private enum PausePoint {
        case none
        /// At the head's last LF: to measure the head exactly, and to check a
        /// chunked body's first chunk size line, which begins right after it.
        case headEnd
        /// After each message: so that the line ends before the next one
        /// pass through ``execute(_:)``, which counts them.
        case messageEnd
    }

    /// Parses `bytes`; returns how many it used. Fewer than all when it
    /// failed (see ``failure``) or paused; give the rest again after ``resume()``.
    public func execute(_ bytes: UnsafeRawBufferPointer) -> Int {
        checkNotInSink()
        var used = 0
        while used < bytes.count && failure == nil && !isPaused {
            if chunkFraming.isChecking,
               let problem = chunkFraming.scan(UnsafeRawBufferPointer(rebasing: bytes[used...]), at: streamOffset) {
                fail(framingError(problem))
                break
            }
            if !inMessage {
                // Between messages: count the empty lines (http_parser would skip any number).
                while used < bytes.count && (bytes[used] == 13 || bytes[used] == 10) {
                    if bytes[used] == 13 || !afterCR { emptyLines += 1 }
                    afterCR = bytes[used] == 13
                    used += 1
                    streamOffset += 1
                }
                if emptyLines > limits.maxEmptyLines {
                    fail(HTTPError(kind == .request ? 400 : 502,
                                   "more than \(limits.maxEmptyLines) empty lines before the \(kind == .request ? "request" : "status") line"))
                    break
                }
                if used == bytes.count { break }
            }
            if statusPrefixSeen < 5, !checkStatusPrefix(UnsafeRawBufferPointer(rebasing: bytes[used...])) { break }
            let start = bytes.baseAddress!.assumingMemoryBound(to: CChar.self) + used
            executions += 1
            bufferStart = UnsafePointer(start)
            bufferEnd = UnsafePointer(start + (bytes.count - used))
            let count = http_parser_execute(parser, HTTPParser.settings, start, bytes.count - used)
            let error = CHTTPParser_errno(parser)
            if error == HPE_PAUSED && pausedAt == .headEnd {
                // Paused at the head's last LF (see headersComplete): what
                // follows it is the body.
                pausedAt = .none
                if measuringHead {
                    measuringHead = false
                    if streamOffset + count + 1 - headStart > limits.maxHeaderBytes {
                        fail(Self.headTooLarge(limits))
                        break
                    }
                }
                if CHTTPParser_isChunked(parser) != 0 {
                    chunkFraming.expectSizeLine(at: streamOffset + count + 1)
                    if let problem = chunkFraming.scan(UnsafeRawBufferPointer(rebasing: bytes[used...]), at: streamOffset) {
                        fail(framingError(problem))
                        break
                    }
                }
                http_parser_pause(parser, 0)
                used += count
                streamOffset += count
                continue
            }
            used += count
            streamOffset += count
            if error == HPE_PAUSED && pausedAt == .messageEnd {
                pausedAt = .none
                if isPaused { break } // the sink asked for it
                http_parser_pause(parser, 0)
                if CHTTPParser_upgrade(parser) != 0 { restartAfterUpgrade() }
                continue
            } else if error == HPE_PAUSED {
                break
            } else if error != HPE_OK {
                fail(HTTPError(kind == .request ? 400 : 502, Self.describe(error), kind: Self.kind(of: error)))
                break
            } else if CHTTPParser_upgrade(parser) != 0 {
                restartAfterUpgrade()
            } else if count == 0 {
                break
            }
        }
        if failure == nil && inMessage && !headComplete && headStarted && streamOffset - headStart > limits.maxHeaderBytes {
            fail(Self.headTooLarge(limits))
        }
        return used
    }

    /// Checks the next bytes of a status line against `HTTP/` (as much of it
    /// as `bytes` holds); false, with the failure set, on the first that differs.
    private func checkStatusPrefix(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let prefix: StaticString = "HTTP/"
        var index = 0
        while statusPrefixSeen < 5 && index < bytes.count {
            guard bytes[index] == prefix.utf8Start[statusPrefixSeen] else {
                fail(HTTPError(502, "the status line does not begin with HTTP/ (byte \(describeByte(bytes[index])) at \(statusPrefixSeen))"))
                return false
            }
            statusPrefixSeen += 1
            index += 1
        }
        return true
    }

    /// Upgrade is a request we may ignore (RFC 9110, 7.8): the answer was
    /// given as to any request, and what follows is the next request.
    /// (CONNECT was refused: it closes.)
    private func restartAfterUpgrade() {
        http_parser_init(parser, kind == .request ? HTTP_REQUEST : HTTP_RESPONSE)
        parser.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    }

    /// A chunk framing problem as the error this side answers with.
    private func framingError(_ problem: String) -> HTTPError {
        HTTPError(kind == .request ? 400 : 502, problem, kind: .badFraming)
    }

    /// The peer closed its side: ends a message that ends at the close
    /// (a response without a length) or fails one cut short.
    public func finish() {
        checkNotInSink()
        guard failure == nil else { return }
        let wasInMessage = inMessage
        _ = http_parser_execute(parser, HTTPParser.settings, nil, 0)
        let error = CHTTPParser_errno(parser)
        if error != HPE_OK && error != HPE_PAUSED {
            fail(wasInMessage
                 ? HTTPError(kind == .request ? 400 : 502, "the connection closed in the middle of a message", kind: .truncated)
                 : HTTPError(kind == .request ? 400 : 502, Self.describe(error), kind: Self.kind(of: error)))
        }
    }

    /// Resumes a paused parser.
    public func resume() {
        guard isPaused else { return }
        isPaused = false
        http_parser_pause(parser, 0)
    }

    /// Debug builds: traps if the sink re-enters the parser (see `message`).
    @inline(__always)
    private func checkNotInSink(_ function: StaticString = #function) {
        #if DEBUG
        precondition(!inSink, "HTTPParser: \(function) was called from the sink's parsed(_:)")
        #endif
    }

    private func fail(_ error: HTTPError) {
        if failure == nil { failure = error }
    }

    private static func describe(_ error: http_errno) -> String {
        switch error {
        case HPE_INVALID_EOF_STATE: "the connection closed in the middle of a message"
        default: "malformed message: " + String(cString: http_errno_description(error))
        }
    }

    /// The kind of fault an http_parser error is.
    private static func kind(of error: http_errno) -> HTTPError.Kind {
        switch error {
        case HPE_INVALID_EOF_STATE: .truncated
        case HPE_INVALID_CHUNK_SIZE, HPE_INVALID_CONTENT_LENGTH, HPE_UNEXPECTED_CONTENT_LENGTH,
             HPE_INVALID_TRANSFER_ENCODING: .badFraming
        case HPE_HEADER_OVERFLOW: .headTooLarge
        default: .malformed
        }
    }

    // MARK: callbacks

    /// Calls `body` with the parser a callback is for, without retaining it:
    /// http_parser calls back only from inside ``execute`` and ``finish``, whose `self` is
    /// that parser and alive for the whole call (a retain and a release per
    /// callback, six callbacks a request, were a tenth of a pipelined
    /// server's CPU).
    private static func with(_ parser: UnsafeMutablePointer<http_parser>?, _ body: (HTTPParser) -> Int32) -> Int32 {
        Unmanaged<HTTPParser>.fromOpaque(parser!.pointee.data)._withUnsafeGuaranteedRef(body)
    }

    /// The callbacks, shared by every parser on every thread: written once,
    /// when first used (Swift runs a static's initializer exactly once,
    /// thread-safely), and only read after - by http_parser_execute, through
    /// a pointer, so no Swift access to a global happens per call.
    nonisolated(unsafe) private static let settings: UnsafePointer<http_parser_settings> = {
        let settings = UnsafeMutablePointer<http_parser_settings>.allocate(capacity: 1)
        settings.initialize(to: http_parser_settings())
        settings.pointee.on_message_begin = { parser in with(parser) { $0.messageBegan() } }
        settings.pointee.on_url = { parser, at, length in with(parser) { $0.url(at!, length) } }
        settings.pointee.on_status = { parser, at, length in with(parser) { $0.reason(at!, length) } }
        settings.pointee.on_header_field = { parser, at, length in with(parser) { $0.headerField(at!, length) } }
        settings.pointee.on_header_value = { parser, at, length in with(parser) { $0.headerValue(at!, length) } }
        settings.pointee.on_headers_complete = { parser in with(parser) { $0.headersComplete() } }
        settings.pointee.on_body = { parser, at, length in with(parser) { $0.body(at!, length) } }
        settings.pointee.on_message_complete = { parser in with(parser) { $0.messageComplete() } }
        return UnsafePointer(settings)
    }()

    private func messageBegan() -> Int32 {
        // A fresh message that keeps the last one's target buffer: no allocation per request.
        message.reset()
        inMessage = true
        headComplete = false
        headerCount = 0
        field.removeAll(keepingCapacity: true)
        value.removeAll(keepingCapacity: true)
        lastWasValue = false
        headStarted = false
        measuringHead = false
        emptyLines = 0
        afterCR = false
        fieldKind = .other
        if sawTransferEncoding {
            transferEncoding.removeAll(keepingCapacity: true)
            sawTransferEncoding = false
        }
        sawExpectContinue = false
        return 0
    }

    /// Stops the parser with `error` (-1: on_headers_complete takes 1 and 2 as "no body").
    private func refuse(_ error: HTTPError) -> Int32 {
        fail(error)
        return -1
    }

    private static func headTooLarge(_ limits: HTTPLimits) -> HTTPError {
        HTTPError(431, "the message head is over \(limits.maxHeaderBytes) bytes")
    }

    /// Whether the head has started (its start is known once the target or status begins).
    @exclusivity(unchecked) private var headStarted = false

    /// Whether the head is over the limit already, counting up to `end`.
    private func headTooLarge(endingAt end: UnsafePointer<CChar>) -> Bool {
        headStarted && streamOffset + (end - bufferStart!) - headStart > limits.maxHeaderBytes
    }

    /// Notes where the head began: `at` is the start of the request target
    /// (after the method and one space) or of the response's reason phrase.
    private func noteHeadStart(_ at: UnsafePointer<CChar>, before: Int) {
        guard !headStarted else { return }
        headStarted = true
        headStart = streamOffset + (at - bufferStart!) - before
    }

    private func url(_ at: UnsafePointer<CChar>, _ length: Int) -> Int32 {
        noteHeadStart(at, before: strlen(http_method_str(CHTTPParser_method(parser))) + 1)
        if message.target.count + length > limits.maxURIBytes {
            return refuse(HTTPError(414, "the request target is over \(limits.maxURIBytes) bytes"))
        }
        message.target.append(contentsOf: UnsafeRawBufferPointer(start: at, count: length))
        return 0
    }

    private func reason(_ at: UnsafePointer<CChar>, _ length: Int) -> Int32 {
        noteHeadStart(at, before: 13) // "HTTP/1.1 200 "
        return 0
    }

    private func headerField(_ at: UnsafePointer<CChar>, _ length: Int) -> Int32 {
        if headTooLarge(endingAt: at + length) { return refuse(Self.headTooLarge(limits)) }
        if lastWasValue || headerCount == 0 && field.isEmpty {
            if lastWasValue { endField() }
            headerCount += 1
            if headerCount > limits.maxHeaderCount {
                return refuse(HTTPError(431, "more than \(limits.maxHeaderCount) header fields"))
            }
        }
        lastWasValue = false
        let bytes = UnsafeRawBufferPointer(start: at, count: length)
        for byte in bytes where !isTokenCharacter(byte) {
            return refuse(HTTPError(400, "invalid character \(describeByte(byte)) in a header field name"))
        }
        field.append(contentsOf: bytes)
        return 0
    }

    private func headerValue(_ at: UnsafePointer<CChar>, _ length: Int) -> Int32 {
        if headTooLarge(endingAt: at + length) { return refuse(Self.headTooLarge(limits)) }
        if lastWasValue {
            // A second piece of the same value is a read boundary only when
            // the last piece ended its buffer and this one starts the next.
            if !(valueEndedBuffer && valueExecution == executions - 1 && UnsafePointer(at) == bufferStart) {
                return refuse(HTTPError(400, "obsolete line folding in header \"\(String(decoding: field, as: UTF8.self))\""))
            }
        } else {
            fieldKind = FieldKind(field)
            if fieldKind == .host { message.hostCount += 1 }
        }
        lastWasValue = true
        valueEndedBuffer = UnsafePointer(at + length) == bufferEnd
        valueExecution = executions
        let bytes = UnsafeRawBufferPointer(start: at, count: length)
        for byte in bytes where byte == 0x7f || byte < 0x20 && byte != 0x09 {
            return refuse(HTTPError(400, "control character \(describeByte(byte)) in header \"\(String(decoding: field, as: UTF8.self))\""))
        }
        if kind == .response || fieldKind.valueMatters { value.append(contentsOf: bytes) }
        return 0
    }

    /// Ends a header field: keeps it for responses, forgets it for requests
    /// (but what Transfer-Encoding and Expect say).
    private func endField() {
        switch fieldKind {
        case .transferEncoding:
            if sawTransferEncoding { transferEncoding.append(UInt8(ascii: ",")) }
            sawTransferEncoding = true
            transferEncoding.append(contentsOf: value)
        case .expect:
            if listItems(value) == ["100-continue"] { sawExpectContinue = true }
        case .host, .other:
            break
        }
        fieldKind = .other
        if kind == .response {
            message.headers.append((String(decoding: field, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        }
        field.removeAll(keepingCapacity: true)
        value.removeAll(keepingCapacity: true)
    }

    /// Refuses what RFC 9112 (6.1) asks about Transfer-Encoding that
    /// http_parser lets through; nil when the codings are fine.
    private func checkTransferEncoding() -> HTTPError? {
        let failed = kind == .request ? 400 : 502
        if message.minor == 0 {
            return HTTPError(failed, "Transfer-Encoding in an HTTP/1.0 message", kind: .badFraming)
        }
        let codings = listItems(transferEncoding)
        if codings.filter({ $0 == "chunked" }).count > 1 {
            return HTTPError(failed, "chunked is applied more than once", kind: .badFraming)
        }
        if kind == .request && codings.last != "chunked" {
            return HTTPError(400, "chunked is not the final transfer coding", kind: .badFraming)
        }
        if let other = codings.first(where: { $0 != "chunked" }) {
            return kind == .request
                ? HTTPError(501, "transfer coding \"\(other)\" is not implemented; this server takes chunked only")
                : HTTPError(502, "transfer coding \"\(other)\" is not supported", kind: .unsupported)
        }
        return nil
    }

    private func headersComplete() -> Int32 {
        if lastWasValue { endField() }
        headComplete = true
        if headStarted && streamOffset + (bufferEnd! - bufferStart!) - headStart > limits.maxHeaderBytes {
            // Perhaps over the limit: pause at the head's last byte, where
            // execute can tell exactly how long the head is.
            measuringHead = true
        }
        if measuringHead || CHTTPParser_isChunked(parser) != 0 {
            pausedAt = .headEnd
            http_parser_pause(parser, 1)
        }
        let head = parser.pointee
        message.major = Int(head.http_major)
        message.minor = Int(head.http_minor)
        message.keepAlive = http_should_keep_alive(parser) != 0
        if sawTransferEncoding, let error = checkTransferEncoding() { return refuse(error) }
        switch kind {
        case .request:
            message.method = CHTTPParser_method(parser)
            if message.major != 1 {
                return refuse(HTTPError(505, "HTTP/\(message.major).\(message.minor) is not supported; this server speaks HTTP/1.1"))
            }
            if message.minor >= 1 && message.hostCount == 0 { return refuse(HTTPError(400, "no Host header")) }
            if message.hostCount > 1 { return refuse(HTTPError(400, "\(message.hostCount) Host headers")) }
            if message.method == HTTP_CONNECT { return refuse(HTTPError(405, "CONNECT is not supported")) }
            if CHTTPParser_usesTransferEncoding(parser) == 0 && head.content_length != UInt64.max
                && head.content_length > UInt64(limits.maxBodyBytes) {
                return refuse(HTTPError(413, "a body of \(head.content_length) bytes is over \(limits.maxBodyBytes)"))
            }
            let bodyFollows = CHTTPParser_isChunked(parser) != 0 || head.content_length != UInt64.max && head.content_length > 0
            if sawExpectContinue && message.minor >= 1 && bodyFollows {
                #if DEBUG
                inSink = true
                defer { inSink = false }
                #endif
                sink.continueExpected()
            }
            return 0
        case .response:
            message.status = Int(CHTTPParser_statusCode(parser))
            // 1 tells http_parser that the message has no body.
            return expectsNoBody ? 1 : 0
        }
    }

    private func body(_ at: UnsafePointer<CChar>, _ length: Int) -> Int32 {
        message.bodyBytes += length
        if message.bodyBytes > limits.maxBodyBytes {
            return refuse(HTTPError(kind == .request ? 413 : 502, "the body is over \(limits.maxBodyBytes) bytes", kind: .bodyTooLarge))
        }
        if parser.pointee.content_length == 0 && CHTTPParser_isChunked(parser) != 0 {
            // The end of a chunk's data: CRLF and the next chunk size line follow.
            chunkFraming.expectLineEnd(at: streamOffset + (at + length - bufferStart!))
            let buffer = UnsafeRawBufferPointer(start: bufferStart, count: bufferEnd! - bufferStart!)
            if let problem = chunkFraming.scan(buffer, at: streamOffset) { return refuse(framingError(problem)) }
        }
        if kind == .response { message.body.append(contentsOf: UnsafeRawBufferPointer(start: at, count: length)) }
        return 0
    }

    private func messageComplete() -> Int32 {
        inMessage = false
        if kind == .response { statusPrefixSeen = 0 } // the next status line is checked anew
        // Pause after every message: execute() counts the empty lines before the next one.
        pausedAt = .messageEnd
        http_parser_pause(parser, 1)
        if kind == .response && message.status >= 100 && message.status < 200 {
            return 0 // an interim response: the real one follows
        }
        #if DEBUG
        inSink = true
        defer { inSink = false }
        #endif
        if sink.parsed(&message) { isPaused = true }
        return 0
    }

}

/// The header fields whose values the parser looks at.
private enum FieldKind {
    case host, transferEncoding, expect, other

    /// The kind of the field named `name`, in any case (compared byte by
    /// byte: a lazy sequence retained the name per header).
    @inline(__always)
    init(_ name: [UInt8]) {
        if equalsIgnoringCase(name, "host") {
            self = .host
        } else if name.count == 17 && equalsIgnoringCase(name, "transfer-encoding") {
            self = .transferEncoding
        } else if name.count == 6 && equalsIgnoringCase(name, "expect") {
            self = .expect
        } else {
            self = .other
        }
    }

    /// Whether the value is kept for a request (it is for every response field).
    var valueMatters: Bool { self == .transferEncoding || self == .expect }
}

/// Whether `bytes` are `lowercase` in any case (`lowercase` is ASCII letters and `-`).
@inline(__always)
private func equalsIgnoringCase(_ bytes: [UInt8], _ lowercase: StaticString) -> Bool {
    guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
    let expected = lowercase.utf8Start
    for index in 0..<bytes.count where bytes[index] | 0x20 != expected[index] { return false }
    return true
}

/// The items of a comma-separated field value (RFC 9110, 5.6.1), trimmed of
/// spaces and tabs, lowercased, empty ones dropped.
private func listItems(_ value: [UInt8]) -> [String] {
    value.split(separator: UInt8(ascii: ",")).compactMap { item in
        let trimmed = item.drop { $0 == 0x20 || $0 == 0x09 }.reversed().drop { $0 == 0x20 || $0 == 0x09 }.reversed()
        return trimmed.isEmpty ? nil : String(decoding: trimmed, as: UTF8.self).lowercased()
    }
}

/// What http_parser does not check in a chunked body: the CRLF after each
/// chunk's data (it takes any two bytes) and whitespace after a chunk size
/// that no chunk extension follows (it takes `5 \r\n`). Both let two parsers
/// disagree on where a message ends - the stuff of request smuggling.
///
/// It scans the stream from positions the parser learns from http_parser's
/// callbacks (the head's end, each chunk's end) up to the CR that ends the
/// chunk size line; http_parser checks the rest.
struct ChunkFramingCheck {
    private enum State {
        /// Not checking: in chunk data, the last chunk's trailers, or not chunked.
        case idle
        /// After a chunk's data: its CR, then its LF.
        case afterData(sawCR: Bool)
        /// In the chunk size: its significant hex digits so far (leading zeros
        /// not counted). More than 15 would overflow http_parser's count,
        /// which it reports as an invalid Content-Length.
        case size(digits: Int)
        /// Whitespace after the size: only a chunk extension (`;`) may follow (RFC 9112, 7.1.1 BWS).
        case whitespace
        /// In a chunk extension, up to the line's CR.
        case extensions
    }

    private var state = State.idle
    /// The stream offset of the next byte to look at.
    private var position = 0

    var isChecking: Bool {
        if case .idle = state { false } else { true }
    }

    /// A chunk size line begins at stream offset `offset`.
    mutating func expectSizeLine(at offset: Int) {
        state = .size(digits: 0)
        position = offset
    }

    /// A chunk's data ended at stream offset `offset`: CRLF belongs there.
    mutating func expectLineEnd(at offset: Int) {
        state = .afterData(sawCR: false)
        position = offset
    }

    /// Checks the bytes of `buffer` (which begins at stream offset `offset`)
    /// from the position it has reached; returns what is wrong, if anything.
    mutating func scan(_ buffer: UnsafeRawBufferPointer, at offset: Int) -> String? {
        var index = position - offset
        guard index >= 0 else { return nil }
        while index < buffer.count {
            let byte = buffer[index]
            switch state {
            case .idle:
                return nil
            case .afterData(let sawCR):
                if sawCR {
                    guard byte == 10 else { return "a bare CR after a chunk's data" }
                    state = .size(digits: 0)
                } else {
                    guard byte == 13 else { return "no CRLF after a chunk's data (\(describeByte(byte)) instead)" }
                    state = .afterData(sawCR: true)
                }
            case .size(let digits):
                if byte == 0x20 || byte == 0x09 {
                    state = .whitespace
                } else if byte == UInt8(ascii: ";") {
                    state = .extensions
                } else if !isHexDigit(byte) {
                    state = .idle // the CR, or something http_parser refuses itself
                } else if digits > 0 || byte != UInt8(ascii: "0") {
                    guard digits < 15 else { return "a chunk size of more than 15 hex digits (over 2^60 bytes)" }
                    state = .size(digits: digits + 1)
                }
            case .whitespace:
                if byte == UInt8(ascii: ";") {
                    state = .extensions
                } else if byte != 0x20 && byte != 0x09 {
                    return "whitespace after a chunk size"
                }
            case .extensions:
                if byte == 13 { state = .idle }
            }
            index += 1
            position += 1
        }
        return nil
    }
}

@inline(__always)
private func isHexDigit(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"), UInt8(ascii: "A")...UInt8(ascii: "F"): true
    default: false
    }
}

/// A byte as an error message shows it: `"x"` if printable, `0x0D` otherwise.
func describeByte(_ byte: UInt8) -> String {
    byte >= 0x21 && byte < 0x7f ? "\"\(Character(UnicodeScalar(byte)))\"" : "0x" + String(byte, radix: 16, uppercase: true)
}

/// RFC 9110's tchar: what a header field name may be made of.
@inline(__always)
func isTokenCharacter(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
        true
    case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
         UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
         UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
        true
    default:
        false
    }
}
