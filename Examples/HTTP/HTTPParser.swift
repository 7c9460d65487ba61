import CHTTPParser
#if canImport(Glibc)
import Glibc
#endif

/// Why a message was refused: the status a server answers with, and what was wrong.
public struct HTTPError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The status that fits (400, 405, 413, 414, 431, 505; 502 for a bad response).
    public let status: Int
    /// What was wrong, for the response's body and the logs.
    public let reason: String

    public init(_ status: Int, _ reason: String) {
        self.status = status
        self.reason = reason
    }

    public var description: String { "\(status) \(HTTPStatus.phrase(status)): \(reason)" }
}

/// The limits a parser enforces, each with the status a server answers.
public struct HTTPLimits: Sendable, Equatable {
    /// The request target's length (414 above it).
    public var maxURIBytes = 8 * 1024
    /// The message head: the start line and the header lines with their line
    /// ends, up to and including the blank line's CRLF (431 above it).
    public var maxHeaderBytes = 16 * 1024
    /// Header fields per message (431 above it).
    public var maxHeaderCount = 100
    /// A body (413 above it for requests; a failed download for responses).
    public var maxBodyBytes = 1 << 20

    public init(maxURIBytes: Int = 8 * 1024, maxHeaderBytes: Int = 16 * 1024,
                maxHeaderCount: Int = 100, maxBodyBytes: Int = 1 << 20) {
        self.maxURIBytes = maxURIBytes
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaderCount = maxHeaderCount
        self.maxBodyBytes = maxBodyBytes
    }
}

/// One parsed message: a request's head, or a response's head and body.
public struct HTTPMessage {
    /// The request's method (`HTTP_GET`, ...).
    public var method = HTTP_GET
    /// The request target, as sent.
    public var target: [UInt8] = []
    /// The response's status.
    public var status = 0
    public var major = 1
    public var minor = 1
    /// Whether the connection stays open after this message (`http_should_keep_alive`).
    public var keepAlive = true
    /// The header fields, in order (responses only: a server needs none but Host).
    public var headers: [(name: String, value: String)] = []
    /// The body (responses only; a server discards request bodies).
    public var body: [UInt8] = []
    /// The body's length.
    public var bodyBytes = 0
    /// `Host` fields seen.
    var hostCount = 0

    public init() {}

    /// Back to a fresh message, keeping the target's storage.
    mutating func reset() {
        method = HTTP_GET
        target.removeAll(keepingCapacity: true)
        status = 0
        major = 1
        minor = 1
        keepAlive = true
        if !headers.isEmpty { headers = [] }
        if !body.isEmpty { body = [] }
        bodyBytes = 0
        hostCount = 0
    }

    /// The first header field named `name`, ignoring case.
    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.name.lowercased() == wanted }?.value
    }
}

/// Receives what an ``HTTPParser`` parses.
public protocol HTTPMessageSink: AnyObject {
    /// A whole message. Return `true` to pause the parser before the next
    /// one (the output is over its high-water mark); ``HTTPParser/resume()`` resumes.
    /// It must not call the parser's ``HTTPParser/execute(_:)`` or
    /// ``HTTPParser/finish()`` (debug builds trap).
    func parsed(_ message: inout HTTPMessage) -> Bool
}

/// Debian's http_parser (Node.js's parser for a decade) for one connection:
/// requests for a server, responses for a client. It adds the checks
/// http_parser leaves out - header field names are tokens, no control
/// characters or obsolete line folding in values, one Host, HTTP/1.x - and
/// the limits of ``HTTPLimits``.
public final class HTTPParser {
    public enum Kind { case request, response }

    public let kind: Kind
    public let limits: HTTPLimits
    /// The first error; the parser stops there.
    public private(set) var failure: HTTPError?
    /// Whether a message has begun and not ended yet.
    public private(set) var inMessage = false
    /// Whether the current message's head is complete.
    public private(set) var headComplete = false
    /// Whether the parser is paused (see ``HTTPMessageSink/parsed(_:)``).
    public private(set) var isPaused = false
    /// Set for responses to a HEAD request: they carry no body.
    public var expectsNoBody = false

    // unowned(unsafe): the sink owns the parser, so it outlives it; a
    // checked unowned reference would cost an atomic operation per message.
    private unowned(unsafe) let sink: any HTTPMessageSink
    private let parser: UnsafeMutablePointer<http_parser>
    // @exclusivity(unchecked): the runtime's checks on these three were a
    // fifth of a pipelined server's CPU, so the parser keeps the rule
    // itself. It is not Sendable (one thread uses it); http_parser calls
    // back only inside execute() and finish(), one callback at a time, and
    // every access to these ends before its callback returns - except the
    // sink's, which holds `message` through parsed(_:). A sink must not call
    // execute() or finish() from parsed(_:): debug builds trap if it does.
    @exclusivity(unchecked) private var message = HTTPMessage()
    @exclusivity(unchecked) private var field: [UInt8] = []
    @exclusivity(unchecked) private var value: [UInt8] = []
    #if DEBUG
    private var inSink = false
    #endif
    private var lastWasValue = false
    private var headerCount = 0
    // Where the current buffer is, to tell a value split across reads
    // (one value, two callbacks) from obsolete line folding (also two).
    private var executions = 0
    private var bufferStart: UnsafePointer<CChar>?
    private var bufferEnd: UnsafePointer<CChar>?
    private var valueEndedBuffer = false
    private var valueExecution = 0
    // The head's size: where in the stream the current buffer, and the
    // current message's head, start; see headSize(endingAt:).
    private var streamOffset = 0
    private var headStart = 0
    private var measuringHead = false

    public init(_ kind: Kind, limits: HTTPLimits = HTTPLimits(), sink: any HTTPMessageSink) {
        self.kind = kind
        self.limits = limits
        self.sink = sink
        parser = .allocate(capacity: 1)
        http_parser_init(parser, kind == .request ? HTTP_REQUEST : HTTP_RESPONSE)
        parser.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit { parser.deallocate() }

    /// Parses `bytes`; returns how many it used. Fewer than all when it
    /// failed (see ``failure``) or paused; give the rest again after ``resume()``.
    public func execute(_ bytes: UnsafeRawBufferPointer) -> Int {
        checkNotInSink()
        var used = 0
        while used < bytes.count && failure == nil && !isPaused {
            let start = bytes.baseAddress!.assumingMemoryBound(to: CChar.self) + used
            executions += 1
            bufferStart = UnsafePointer(start)
            bufferEnd = UnsafePointer(start + (bytes.count - used))
            let count = http_parser_execute(parser, HTTPParser.settings, start, bytes.count - used)
            let error = CHTTPParser_errno(parser)
            if error == HPE_PAUSED && measuringHead {
                // Paused at the head's last LF to measure it (see headersComplete).
                measuringHead = false
                if streamOffset + count + 1 - headStart > limits.maxHeaderBytes {
                    fail(Self.headTooLarge(limits))
                    break
                }
                http_parser_pause(parser, 0)
                used += count
                streamOffset += count
                continue
            }
            used += count
            streamOffset += count
            if error == HPE_PAUSED {
                break
            } else if error != HPE_OK {
                fail(HTTPError(kind == .request ? 400 : 502, Self.describe(error)))
                break
            } else if CHTTPParser_upgrade(parser) != 0 {
                // Upgrade is a request we may ignore (RFC 9110, 7.8): the
                // answer was given as to any request, and what follows is
                // the next request. (CONNECT was refused: it closes.)
                http_parser_init(parser, kind == .request ? HTTP_REQUEST : HTTP_RESPONSE)
                parser.pointee.data = Unmanaged.passUnretained(self).toOpaque()
            } else if count == 0 {
                break
            }
        }
        if failure == nil && inMessage && !headComplete && headStarted && streamOffset - headStart > limits.maxHeaderBytes {
            fail(Self.headTooLarge(limits))
        }
        return used
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
            fail(HTTPError(kind == .request ? 400 : 502, wasInMessage ? "the connection closed in the middle of a message" : Self.describe(error)))
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
    private var headStarted = false

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
            return refuse(HTTPError(400, "invalid character \(describe(byte)) in a header field name"))
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
        } else if isHost(field) {
            message.hostCount += 1
        }
        lastWasValue = true
        valueEndedBuffer = UnsafePointer(at + length) == bufferEnd
        valueExecution = executions
        let bytes = UnsafeRawBufferPointer(start: at, count: length)
        for byte in bytes where byte == 0x7f || byte < 0x20 && byte != 0x09 {
            return refuse(HTTPError(400, "control character \(describe(byte)) in header \"\(String(decoding: field, as: UTF8.self))\""))
        }
        if kind == .response { value.append(contentsOf: bytes) }
        return 0
    }

    /// Ends a header field: keeps it for responses, forgets it for requests.
    private func endField() {
        if kind == .response {
            message.headers.append((String(decoding: field, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        }
        field.removeAll(keepingCapacity: true)
        value.removeAll(keepingCapacity: true)
    }

    private func headersComplete() -> Int32 {
        if lastWasValue { endField() }
        headComplete = true
        if headStarted && streamOffset + (bufferEnd! - bufferStart!) - headStart > limits.maxHeaderBytes {
            // Perhaps over the limit: pause at the head's last byte, where
            // execute can tell exactly how long the head is.
            measuringHead = true
            http_parser_pause(parser, 1)
        }
        let head = parser.pointee
        message.major = Int(head.http_major)
        message.minor = Int(head.http_minor)
        message.keepAlive = http_should_keep_alive(parser) != 0
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
            return refuse(HTTPError(kind == .request ? 413 : 502, "the body is over \(limits.maxBodyBytes) bytes"))
        }
        if kind == .response { message.body.append(contentsOf: UnsafeRawBufferPointer(start: at, count: length)) }
        return 0
    }

    private func messageComplete() -> Int32 {
        inMessage = false
        if kind == .response && message.status >= 100 && message.status < 200 {
            return 0 // an interim response: the real one follows
        }
        #if DEBUG
        inSink = true
        defer { inSink = false }
        #endif
        if sink.parsed(&message) {
            isPaused = true
            http_parser_pause(parser, 1)
        }
        return 0
    }

    private func describe(_ byte: UInt8) -> String {
        byte >= 0x21 && byte < 0x7f ? "\"\(Character(UnicodeScalar(byte)))\"" : "0x" + String(byte, radix: 16, uppercase: true)
    }
}

/// Whether a header field name is Host, in any case (no lazy sequence: it
/// retained the name per header).
@inline(__always)
func isHost(_ name: [UInt8]) -> Bool {
    name.count == 4 && name[0] | 0x20 == UInt8(ascii: "h") && name[1] | 0x20 == UInt8(ascii: "o")
        && name[2] | 0x20 == UInt8(ascii: "s") && name[3] | 0x20 == UInt8(ascii: "t")
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

/// Reason phrases.
public enum HTTPStatus {
    public static func phrase(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 301: "Moved Permanently"
        case 302: "Found"
        case 400: "Bad Request"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 413: "Content Too Large"
        case 414: "URI Too Long"
        case 431: "Request Header Fields Too Large"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 505: "HTTP Version Not Supported"
        default: "Status \(status)"
        }
    }
}
