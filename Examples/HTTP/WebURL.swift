#if canImport(Glibc)
import Glibc
#endif

/// An `http://` or `https://` URL as the crawler needs it: scheme, host, port, and the
/// path-and-query it requests - normalised as a browser normalises it, so
/// that nothing a page or a header says reaches the wire raw.
///
/// Parsing and resolving follow the WHATWG URL standard's steps for a
/// special scheme, on bytes: leading and trailing C0 controls and spaces are
/// stripped, tabs, CRs and LFs inside are dropped, `\` counts as `/`, dot
/// segments (`.`, `..`, `%2e`) are removed, the fragment is dropped, and
/// what a path or a query may not hold raw (controls, space, `"`, `<`, `>`,
/// non-ASCII, ...) is percent-encoded. So a ``target`` is only visible ASCII
/// (`!` to `~`) and at most ``maxTargetBytes`` long: it can go into a request
/// line as it is. Hosts are ASCII names or IP literals (no IDNA); user
/// information is dropped, never sent.
public struct WebURL: Hashable, Sendable, CustomStringConvertible {
    /// Whether the scheme is `https` (TLS, port 443 by default) rather than `http`.
    public let isSecure: Bool
    /// The host, lowercase; an IPv6 literal without its brackets.
    public let host: String
    public let port: UInt16
    /// The path and query, starting with `/`; visible ASCII only.
    public let target: String

    /// The longest ``target`` the crawler sends: the server's own request
    /// target limit (8 KiB, as nginx's and the package's servers').
    public static let maxTargetBytes = 8 * 1024

    /// Why a URL was refused.
    public struct ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        public let text: String
        public let reason: String
        public init(text: String, reason: String) {
            self.text = text
            self.reason = reason
        }
        public var description: String { "invalid URL \"\(text)\": \(reason)" }
    }

    /// Parses an absolute `http[s]://host[:port][/path][?query][#fragment]`.
    public init(_ text: String) throws(ParseError) {
        var copy = text
        let resolution = copy.withUTF8 { URLBytes.resolve(UnsafeRawBufferPointer($0), base: nil) }
        switch resolution {
        case .url(let url): self = url
        case .skipped(let reason): throw ParseError(text: text, reason: reason.description)
        case .ignored(let why):
            throw ParseError(text: text, reason: why == .otherScheme ? "only http:// and https:// URLs can be crawled" : "not an absolute URL")
        }
    }

    /// A URL made of parts already normalised (the tests', the site's).
    public init(host: String, port: UInt16, target: String, secure: Bool = false) {
        self.isSecure = secure
        self.host = host
        self.port = port
        self.target = target
    }

    public var description: String { "\(isSecure ? "https" : "http")://\(authority)\(target)" }

    /// `host` or `host:port` (the Host header): the port is left out when
    /// it is the scheme's own (80, or 443 for https).
    public var authority: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return port == (isSecure ? 443 : 80) ? name : "\(name):\(port)"
    }

    /// The site a URL belongs to: scheme, host and port (an origin, as
    /// browsers and robots.txt count them).
    public var origin: WebURL { WebURL(host: host, port: port, target: "/", secure: isSecure) }

    /// What a link (or a `Location`) resolves to.
    public enum Resolution: Equatable, Sendable {
        /// An http or https URL to consider.
        case url(WebURL)
        /// Nothing to fetch, and nothing wrong: this page again (`#top`,
        /// empty), or another scheme (`mailto:`, `https:`, `javascript:`).
        case ignored
        /// A link that cannot be made into a URL the crawler may send.
        case skipped(SkipReason)
    }

    /// Why a link was skipped; the crawl reports them by reason.
    public enum SkipReason: Equatable, Sendable, CustomStringConvertible {
        /// Its path and query are over ``maxTargetBytes`` once normalised.
        case tooLong
        /// No host, or one that is not an ASCII name or IP literal.
        case invalidHost
        /// A port that is not a number up to 65535.
        case invalidPort

        public var description: String {
            switch self {
            case .tooLong: "too long"
            case .invalidHost: "invalid host"
            case .invalidPort: "invalid port"
            }
        }
    }

    /// Resolves a link found on this page (WHATWG URL, with this URL as the
    /// base): absolute, scheme-relative, absolute-path, relative, query-only.
    public func resolveLink(_ reference: String) -> Resolution {
        var copy = reference
        return copy.withUTF8 { resolveLink(UnsafeRawBufferPointer($0)) }
    }

    /// ``resolveLink(_:)-(String)`` on the link's UTF-8 bytes, as
    /// ``forEachLink(in:_:)`` finds them: the resolved URL's target is the
    /// only String made (the crawler's profile had half its CPU in making
    /// arrays and strings of each link on the way).
    public func resolveLink(_ reference: UnsafeRawBufferPointer) -> Resolution {
        switch URLBytes.resolve(reference, base: self) {
        case .url(let url): .url(url)
        case .skipped(let reason): .skipped(reason)
        case .ignored: .ignored
        }
    }

    /// The name a page is saved under (`crawler web --out`): its ``target``
    /// with `%` written `%25` and `/` written `%2F` - `/` is `%2F`,
    /// `/index.html` is `%2Findex.html`, `/a/b?c` is `%2Fa%2Fb?c` - so that no
    /// two URLs of a site share a name, and no name holds a `/` or a NUL.
    /// A name over 255 bytes (the file system's limit) is its first 200
    /// bytes, `%%`, and the 16 hex digits of the target's 64-bit FNV-1a hash
    /// (`%%` appears in no other name).
    public var fileName: String {
        var name: [UInt8] = []
        name.reserveCapacity(target.utf8.count + 8)
        for byte in target.utf8 {
            switch byte {
            case UInt8(ascii: "%"): name += Array("%25".utf8)
            case URLBytes.slash: name += Array("%2F".utf8)
            default: name.append(byte)
            }
        }
        guard name.count > 255 else { return String(decoding: name, as: UTF8.self) }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in target.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        let digits = String(hash, radix: 16)
        return String(decoding: name[..<200], as: UTF8.self) + "%%" + String(repeating: "0", count: 16 - digits.count) + digits
    }

    /// ``resolveLink(_:)``'s URL, or nil for a link with none.
    public func resolve(_ reference: String) -> WebURL? {
        if case .url(let url) = resolveLink(reference) { return url }
        return nil
    }
}

/// The byte-level steps of ``WebURL``'s parsing, on the bytes as they are:
/// no copy of a link is made; its target is written once, then made a String.
enum URLBytes {
    static let slash = UInt8(ascii: "/"), backslash = UInt8(ascii: "\\"), question = UInt8(ascii: "?")

    /// What a resolution gave: a ``WebURL/Resolution``, with why a link was ignored.
    enum Result {
        case url(WebURL)
        case skipped(WebURL.SkipReason)
        case ignored(Ignored)
    }

    enum Ignored { case empty, otherScheme, relativeWithoutBase }

    /// Parses `text` (absolute when `base` is nil; resolved against `base` otherwise).
    static func resolve(_ text: UnsafeRawBufferPointer, base: WebURL?) -> Result {
        // WHATWG's first steps: leading and trailing C0 controls and spaces
        // stripped, every tab, CR and LF dropped (rare: only then a copy).
        var first = 0, end = text.count
        while first < end && text[first] <= 0x20 { first += 1 }
        while end > first && text[end - 1] <= 0x20 { end -= 1 }
        let trimmed = UnsafeRawBufferPointer(rebasing: text[first..<end])
        if trimmed.contains(where: { $0 == 0x09 || $0 == 0x0a || $0 == 0x0d }) {
            let kept = trimmed.filter { $0 != 0x09 && $0 != 0x0a && $0 != 0x0d }
            return kept.withUnsafeBytes { resolveClean($0, base: base) }
        }
        return resolveClean(trimmed, base: base)
    }

    /// ``resolve(_:base:)`` after the first steps.
    private static func resolveClean(_ text: UnsafeRawBufferPointer, base: WebURL?) -> Result {
        var link = text
        if let start = link.baseAddress, let hash = memchr(start, Int32(UInt8(ascii: "#")), link.count) {
            link = UnsafeRawBufferPointer(rebasing: link[..<(UnsafeRawPointer(hash) - start)])
        }
        if link.isEmpty { return .ignored(.empty) } // "#top": this page again
        if let schemeEnd = schemeLength(link) {
            guard let secure = httpScheme(UnsafeRawBufferPointer(rebasing: link[..<schemeEnd])) else { return .ignored(.otherScheme) }
            return parseAfterScheme(UnsafeRawBufferPointer(rebasing: link[(schemeEnd + 1)...]), secure: secure, base: base)
        }
        guard let base else { return .ignored(.relativeWithoutBase) }
        return parseRelative(link, base: base)
    }

    /// The length of a leading `scheme` before `:`, if the bytes begin with one.
    static func schemeLength(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard let first = bytes.first, isLetter(first) else { return nil }
        for index in 1..<bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: ":") { return index }
            guard isLetter(byte) || isDigit(byte) || byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-")
                    || byte == UInt8(ascii: ".") else { return nil }
        }
        return nil
    }

    /// For `http` false, for `https` true (in any case), for another scheme nil.
    static func httpScheme(_ scheme: UnsafeRawBufferPointer) -> Bool? {
        guard scheme.count == 4 || (scheme.count == 5 && scheme[4] | 0x20 == UInt8(ascii: "s")) else { return nil }
        guard scheme[0] | 0x20 == UInt8(ascii: "h") && scheme[1] | 0x20 == UInt8(ascii: "t")
            && scheme[2] | 0x20 == UInt8(ascii: "t") && scheme[3] | 0x20 == UInt8(ascii: "p") else { return nil }
        return scheme.count == 5
    }

    /// How many `/` or `\` the bytes begin with.
    static func leadingSlashes(_ bytes: UnsafeRawBufferPointer) -> Int {
        var count = 0
        while count < bytes.count && isSlash(bytes[count]) { count += 1 }
        return count
    }

    static func isSlash(_ byte: UInt8) -> Bool { byte == slash || byte == backslash }

    /// What follows `http:` (or `https:`): `//authority...`, or - with a
    /// base of the same scheme - a reference relative to it (WHATWG: `http:x`
    /// on an http page is relative).
    static func parseAfterScheme(_ rest: UnsafeRawBufferPointer, secure: Bool, base: WebURL?) -> Result {
        let slashes = leadingSlashes(rest)
        guard slashes < 2, let base, base.isSecure == secure else {
            return parseAuthority(UnsafeRawBufferPointer(rebasing: rest[slashes...]), secure: secure)
        }
        return parseRelative(rest, base: base)
    }

    /// A reference without a scheme, against `base`.
    static func parseRelative(_ link: UnsafeRawBufferPointer, base: WebURL) -> Result {
        let slashes = leadingSlashes(link)
        if slashes >= 2 { return parseAuthority(UnsafeRawBufferPointer(rebasing: link[slashes...]), secure: base.isSecure) } // "//host/path"
        let target: String?
        if slashes == 1 {
            target = makeTarget(capacity: link.count * 3 + 1) { $0.appendPathAndQuery(link) }
        } else {
            var baseTarget = base.target
            target = baseTarget.withUTF8 { utf8 in
                let whole = UnsafeRawBufferPointer(utf8)
                let basePath = UnsafeRawBufferPointer(rebasing: whole[..<(whole.firstIndex(of: question) ?? whole.count)])
                if link.first == question {
                    return makeTarget(capacity: basePath.count + link.count * 3) { writer in
                        writer.append(basePath)
                        writer.appendQuery(UnsafeRawBufferPointer(rebasing: link[1...]))
                    }
                }
                // The base's directory (up to its last slash) and the link: one path.
                let directory = UnsafeRawBufferPointer(rebasing: basePath[..<((basePath.lastIndex(of: slash) ?? 0) + 1)])
                return withUnsafeTemporaryAllocation(byteCount: directory.count + link.count, alignment: 1) { joined in
                    UnsafeMutableRawBufferPointer(rebasing: joined[..<directory.count]).copyMemory(from: directory)
                    UnsafeMutableRawBufferPointer(rebasing: joined[directory.count...]).copyMemory(from: link)
                    let path = UnsafeRawBufferPointer(joined)
                    return makeTarget(capacity: path.count * 3 + 1) { $0.appendPathAndQuery(path) }
                }
            }
        }
        guard let target else { return .skipped(.tooLong) }
        return .url(WebURL(host: base.host, port: base.port, target: target, secure: base.isSecure))
    }

    /// `authority [path] [?query]`, after `http://` (or `https://`: `secure`).
    static func parseAuthority(_ bytes: UnsafeRawBufferPointer, secure: Bool) -> Result {
        let end = bytes.firstIndex { $0 == slash || $0 == backslash || $0 == question } ?? bytes.endIndex
        var authority = bytes[..<end]
        if let at = authority.lastIndex(of: UInt8(ascii: "@")) { authority = authority[(at + 1)...] } // user info: dropped
        let hostBytes: [UInt8]
        var portBytes: Slice<UnsafeRawBufferPointer>?
        if authority.first == UInt8(ascii: "[") {
            guard let close = authority.firstIndex(of: UInt8(ascii: "]")) else { return .skipped(.invalidHost) }
            let literal = authority[(authority.startIndex + 1)..<close]
            let after = authority[(close + 1)...]
            if !after.isEmpty {
                guard after.first == UInt8(ascii: ":") else { return .skipped(.invalidHost) }
                portBytes = after.dropFirst()
            }
            guard !literal.isEmpty, literal.allSatisfy({ isHexDigit($0) || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ".") }),
                  literal.contains(UInt8(ascii: ":")) else { return .skipped(.invalidHost) }
            hostBytes = Array(literal)
        } else {
            var name = authority
            if let colon = authority.firstIndex(of: UInt8(ascii: ":")) {
                name = authority[..<colon]
                portBytes = authority[(colon + 1)...]
            }
            guard let decoded = percentDecode(name), !decoded.isEmpty,
                  decoded.allSatisfy(isHostCharacter) else { return .skipped(.invalidHost) }
            hostBytes = decoded
        }
        var port: UInt16 = secure ? 443 : 80
        if let portBytes, !portBytes.isEmpty {
            guard portBytes.count <= 5, portBytes.allSatisfy(isDigit),
                  let number = Int(String(decoding: portBytes, as: UTF8.self)), number <= 65535 else { return .skipped(.invalidPort) }
            port = UInt16(number)
        }
        let host = String(decoding: hostBytes.map { isUppercase($0) ? $0 | 0x20 : $0 }, as: UTF8.self)
        let rest = UnsafeRawBufferPointer(rebasing: bytes[end...])
        let target = makeTarget(capacity: rest.count * 3 + 1) { writer in
            if rest.isEmpty {
                writer.append(slash)
            } else if rest[0] == question {
                writer.append(slash)
                writer.appendQuery(UnsafeRawBufferPointer(rebasing: rest[1...]))
            } else {
                writer.appendPathAndQuery(rest)
            }
        }
        guard let target else { return .skipped(.tooLong) }
        return .url(WebURL(host: host, port: port, target: target, secure: secure))
    }

    /// A target written by `write` into at most `capacity` bytes (on the
    /// stack when small), as a String; nil when over ``WebURL/maxTargetBytes``.
    static func makeTarget(capacity: Int, _ write: (inout TargetWriter) -> Void) -> String? {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: max(capacity, 1)) { buffer in
            var writer = TargetWriter(buffer: buffer)
            write(&writer)
            guard writer.count <= WebURL.maxTargetBytes else { return nil }
            return String(decoding: UnsafeBufferPointer(rebasing: buffer[..<writer.count]), as: UTF8.self)
        }
    }

    /// Writes a target: bytes, a normalised path, an encoded query. The
    /// caller sizes the buffer (three bytes per byte encoded, and a slash).
    struct TargetWriter {
        let buffer: UnsafeMutableBufferPointer<UInt8>
        private(set) var count = 0

        init(buffer: UnsafeMutableBufferPointer<UInt8>) { self.buffer = buffer }

        mutating func append(_ byte: UInt8) {
            precondition(count < buffer.count, "TargetWriter: over its capacity")
            buffer[count] = byte
            count += 1
        }

        mutating func append(_ bytes: UnsafeRawBufferPointer) {
            guard let source = bytes.baseAddress else { return }
            precondition(count + bytes.count <= buffer.count, "TargetWriter: over its capacity")
            UnsafeMutableRawPointer(buffer.baseAddress! + count).copyMemory(from: source, byteCount: bytes.count)
            count += bytes.count
        }

        mutating func append(_ byte: UInt8, encoding: (UInt8) -> Bool) {
            if encoding(byte) {
                append(UInt8(ascii: "%"))
                append(hexDigits[Int(byte >> 4)])
                append(hexDigits[Int(byte & 0x0f)])
            } else {
                append(byte)
            }
        }

        /// A path beginning with `/` (or `\`), then an optional query: dot
        /// segments removed, both percent-encoded.
        mutating func appendPathAndQuery(_ bytes: UnsafeRawBufferPointer) {
            let queryStart = bytes.firstIndex(of: question)
            appendNormalizedPath(UnsafeRawBufferPointer(rebasing: bytes[..<(queryStart ?? bytes.endIndex)]))
            if let queryStart { appendQuery(UnsafeRawBufferPointer(rebasing: bytes[(queryStart + 1)...])) }
        }

        /// `?` and the query, percent-encoded (WHATWG's special-query set).
        mutating func appendQuery(_ query: UnsafeRawBufferPointer) {
            append(question)
            for byte in query { append(byte, encoding: needsEncodingInQuery) }
        }

        /// The path's segments, `.` and `..` (also as `%2e`) removed (RFC
        /// 3986's remove_dot_segments, WHATWG's path state), each
        /// percent-encoded, in one pass: a `..` takes back what was written
        /// since the last slash (a written segment holds none).
        mutating func appendNormalizedPath(_ path: UnsafeRawBufferPointer) {
            let pathStart = count
            // Every segment follows a slash: the first (empty) piece is skipped.
            var index = 1
            while index <= path.count {
                var end = index
                while end < path.count && !isSlash(path[end]) { end += 1 }
                let segment = UnsafeRawBufferPointer(rebasing: path[index..<end])
                let last = end == path.count
                if isDot(segment, 1) {
                    if last { append(slash) }
                } else if isDot(segment, 2) {
                    // Back to the slash that began the last segment written, and before it.
                    while count > pathStart && buffer[count - 1] != slash { count -= 1 }
                    if count > pathStart { count -= 1 }
                    if last { append(slash) }
                } else {
                    append(slash)
                    for byte in segment { append(byte, encoding: needsEncodingInPath) }
                }
                index = end + 1
            }
            if count == pathStart { append(slash) }
        }
    }

    /// Whether `segment` is `.` (count 1) or `..` (count 2), each dot perhaps `%2e`.
    static func isDot(_ segment: UnsafeRawBufferPointer, _ count: Int) -> Bool {
        var dots = 0
        var index = segment.startIndex
        while index < segment.endIndex {
            if segment[index] == UInt8(ascii: ".") {
                index += 1
            } else if segment[index] == UInt8(ascii: "%"), index + 2 < segment.endIndex,
                      segment[index + 1] == UInt8(ascii: "2"), segment[index + 2] | 0x20 == UInt8(ascii: "e") {
                index += 3
            } else {
                return false
            }
            dots += 1
        }
        return dots == count
    }

    static let hexDigits = Array("0123456789ABCDEF".utf8)

    /// WHATWG's path percent-encode set: C0 controls, space, `"`, `#`, `<`,
    /// `>`, `?`, backquote, `{`, `}`, DEL and non-ASCII.
    static func needsEncodingInPath(_ byte: UInt8) -> Bool {
        switch byte {
        case 0...0x20, 0x7f...0xff, UInt8(ascii: "\""), UInt8(ascii: "#"), UInt8(ascii: "<"), UInt8(ascii: ">"),
             UInt8(ascii: "?"), UInt8(ascii: "`"), UInt8(ascii: "{"), UInt8(ascii: "}"): true
        default: false
        }
    }

    /// WHATWG's special-query percent-encode set: C0 controls, space, `"`,
    /// `#`, `'`, `<`, `>`, DEL and non-ASCII.
    static func needsEncodingInQuery(_ byte: UInt8) -> Bool {
        switch byte {
        case 0...0x20, 0x7f...0xff, UInt8(ascii: "\""), UInt8(ascii: "#"), UInt8(ascii: "'"), UInt8(ascii: "<"), UInt8(ascii: ">"): true
        default: false
        }
    }

    /// The host's bytes with `%XX` decoded; nil if an escape is broken.
    static func percentDecode(_ bytes: Slice<UnsafeRawBufferPointer>) -> [UInt8]? {
        guard bytes.contains(UInt8(ascii: "%")) else { return Array(bytes) }
        var result: [UInt8] = []
        var index = bytes.startIndex
        while index < bytes.endIndex {
            if bytes[index] == UInt8(ascii: "%") {
                guard index + 2 < bytes.endIndex, let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2]) else { return nil }
                result.append(high << 4 | low)
                index += 3
            } else {
                result.append(bytes[index])
                index += 1
            }
        }
        return result
    }

    /// What an ASCII host name may hold: letters, digits, `-`, `.`, `_` and
    /// `~` (WHATWG forbids the rest, or needs IDNA for non-ASCII, which the crawler lacks).
    static func isHostCharacter(_ byte: UInt8) -> Bool {
        isLetter(byte) || isDigit(byte) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_")
            || byte == UInt8(ascii: "~")
    }

    static func isLetter(_ byte: UInt8) -> Bool { (byte | 0x20) >= UInt8(ascii: "a") && (byte | 0x20) <= UInt8(ascii: "z") }
    static func isUppercase(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") }
    static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
    static func isHexDigit(_ byte: UInt8) -> Bool { hexValue(byte) != nil }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
