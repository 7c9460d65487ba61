#if canImport(Glibc)
import Glibc
#endif

/// An `http://` URL as the crawler needs it: host, port, and the
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
        public var description: String { "invalid URL \"\(text)\": \(reason)" }
    }

    /// Parses an absolute `http://host[:port][/path][?query][#fragment]`.
    public init(_ text: String) throws(ParseError) {
        var input = URLBytes.preprocess(Array(text.utf8))
        if let hash = input.firstIndex(of: UInt8(ascii: "#")) { input.removeSubrange(hash...) }
        guard let schemeEnd = URLBytes.schemeLength(input) else {
            throw ParseError(text: text, reason: "not an absolute URL")
        }
        guard URLBytes.isHTTP(input[..<schemeEnd]) else {
            throw ParseError(text: text, reason: "only http:// URLs can be crawled")
        }
        switch URLBytes.parseAfterScheme(input[(schemeEnd + 1)...], base: nil) {
        case .url(let url): self = url
        case .skipped(let reason): throw ParseError(text: text, reason: reason.description)
        case .ignored: throw ParseError(text: text, reason: "not an absolute URL")
        }
    }

    /// A URL made of parts already normalised (the tests', the site's).
    public init(host: String, port: UInt16, target: String) {
        self.host = host
        self.port = port
        self.target = target
    }

    public var description: String { "http://\(authority)\(target)" }

    /// `host` or `host:port` (the Host header).
    public var authority: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return port == 80 ? name : "\(name):\(port)"
    }

    /// What a link (or a `Location`) resolves to.
    public enum Resolution: Equatable, Sendable {
        /// An http URL to consider.
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
        var link = Array(reference.utf8)
        link = URLBytes.preprocess(link)
        if let hash = link.firstIndex(of: UInt8(ascii: "#")) { link.removeSubrange(hash...) }
        if link.isEmpty { return .ignored } // "#top": this page again
        if let schemeEnd = URLBytes.schemeLength(link) {
            guard URLBytes.isHTTP(link[..<schemeEnd]) else { return .ignored } // another scheme
            return URLBytes.parseAfterScheme(link[(schemeEnd + 1)...], base: self)
        }
        return URLBytes.parseRelative(link[...], base: self)
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

/// The byte-level steps of ``WebURL``'s parsing.
enum URLBytes {
    static let slash = UInt8(ascii: "/"), backslash = UInt8(ascii: "\\"), question = UInt8(ascii: "?")

    /// Strips leading and trailing C0 controls and spaces, and drops every
    /// tab, CR and LF (WHATWG URL's first steps).
    static func preprocess(_ bytes: [UInt8]) -> [UInt8] {
        guard let first = bytes.firstIndex(where: { $0 > 0x20 }), let last = bytes.lastIndex(where: { $0 > 0x20 }) else { return [] }
        var result = bytes[first...last]
        if result.contains(where: { $0 == 0x09 || $0 == 0x0a || $0 == 0x0d }) {
            result = result.filter { $0 != 0x09 && $0 != 0x0a && $0 != 0x0d }[...]
        }
        return Array(result)
    }

    /// The length of a leading `scheme` before `:`, if the bytes begin with one.
    static func schemeLength(_ bytes: [UInt8]) -> Int? {
        guard let first = bytes.first, isLetter(first) else { return nil }
        for index in bytes.indices.dropFirst() {
            let byte = bytes[index]
            if byte == UInt8(ascii: ":") { return index }
            guard isLetter(byte) || isDigit(byte) || byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-")
                    || byte == UInt8(ascii: ".") else { return nil }
        }
        return nil
    }

    static func isHTTP(_ scheme: ArraySlice<UInt8>) -> Bool {
        scheme.count == 4 && scheme.map { $0 | 0x20 } == Array("http".utf8)
    }

    /// What follows `http:`: `//authority...`, or - with a base - a
    /// reference relative to it (WHATWG: `http:x` on an http page is relative).
    static func parseAfterScheme(_ rest: ArraySlice<UInt8>, base: WebURL?) -> WebURL.Resolution {
        let slashes = rest.prefix { $0 == slash || $0 == backslash }.count
        if slashes >= 2 || base == nil {
            return parseAuthority(rest.dropFirst(slashes))
        }
        return parseRelative(rest, base: base!)
    }

    /// A reference without a scheme, against `base`.
    static func parseRelative(_ link: ArraySlice<UInt8>, base: WebURL) -> WebURL.Resolution {
        let slashes = link.prefix { $0 == slash || $0 == backslash }.count
        if slashes >= 2 { return parseAuthority(link.dropFirst(slashes)) } // "//host/path"
        let target: [UInt8]
        if slashes == 1 {
            target = pathAndQuery(link)
        } else {
            let basePath = Array(base.target.utf8.prefix { $0 != question })
            if link.first == question {
                target = basePath + encodeQuery(link.dropFirst())
            } else {
                let directory = basePath[...(basePath.lastIndex(of: slash) ?? 0)]
                target = pathAndQuery(directory + link)
            }
        }
        guard target.count <= WebURL.maxTargetBytes else { return .skipped(.tooLong) }
        return .url(WebURL(host: base.host, port: base.port, target: String(decoding: target, as: UTF8.self)))
    }

    /// `authority [path] [?query]`, after `http://`.
    static func parseAuthority(_ bytes: ArraySlice<UInt8>) -> WebURL.Resolution {
        let end = bytes.firstIndex { $0 == slash || $0 == backslash || $0 == question } ?? bytes.endIndex
        var authority = bytes[..<end]
        if let at = authority.lastIndex(of: UInt8(ascii: "@")) { authority = authority[(at + 1)...] } // user info: dropped
        var hostBytes: ArraySlice<UInt8>
        var portBytes: ArraySlice<UInt8>?
        if authority.first == UInt8(ascii: "[") {
            guard let close = authority.firstIndex(of: UInt8(ascii: "]")) else { return .skipped(.invalidHost) }
            hostBytes = authority[(authority.startIndex + 1)..<close]
            let after = authority[(close + 1)...]
            if !after.isEmpty {
                guard after.first == UInt8(ascii: ":") else { return .skipped(.invalidHost) }
                portBytes = after.dropFirst()
            }
            guard !hostBytes.isEmpty, hostBytes.allSatisfy({ isHexDigit($0) || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ".") }),
                  hostBytes.contains(UInt8(ascii: ":")) else { return .skipped(.invalidHost) }
        } else {
            if let colon = authority.firstIndex(of: UInt8(ascii: ":")) {
                hostBytes = authority[..<colon]
                portBytes = authority[(colon + 1)...]
            } else {
                hostBytes = authority
            }
            guard let decoded = percentDecode(hostBytes), !decoded.isEmpty,
                  decoded.allSatisfy(isHostCharacter) else { return .skipped(.invalidHost) }
            hostBytes = decoded[...]
        }
        var port: UInt16 = 80
        if let portBytes, !portBytes.isEmpty {
            guard portBytes.count <= 5, portBytes.allSatisfy(isDigit),
                  let number = Int(String(decoding: portBytes, as: UTF8.self)), number <= 65535 else { return .skipped(.invalidPort) }
            port = UInt16(number)
        }
        let host = String(decoding: hostBytes.map { isUppercase($0) ? $0 | 0x20 : $0 }, as: UTF8.self)
        let target = end == bytes.endIndex ? [slash] : bytes[end] == question ? [slash] + encodeQuery(bytes[(end + 1)...]) : pathAndQuery(bytes[end...])
        guard target.count <= WebURL.maxTargetBytes else { return .skipped(.tooLong) }
        return .url(WebURL(host: host, port: port, target: String(decoding: target, as: UTF8.self)))
    }

    /// A path beginning with `/` (or `\`), then an optional query: dot
    /// segments removed, both percent-encoded.
    static func pathAndQuery(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        let queryStart = bytes.firstIndex(of: question)
        let path = bytes[..<(queryStart ?? bytes.endIndex)]
        var result = normalizedPath(path)
        if let queryStart { result += encodeQuery(bytes[(queryStart + 1)...]) }
        return result
    }

    /// `?` and the query, percent-encoded (WHATWG's special-query set).
    static func encodeQuery(_ query: ArraySlice<UInt8>) -> [UInt8] {
        var result: [UInt8] = [question]
        result.reserveCapacity(query.count + 1)
        for byte in query { append(byte, to: &result, encoding: needsEncodingInQuery) }
        return result
    }

    /// The path's segments, `.` and `..` (also as `%2e`) removed (RFC 3986's
    /// remove_dot_segments, WHATWG's path state), each percent-encoded.
    static func normalizedPath(_ path: ArraySlice<UInt8>) -> [UInt8] {
        var output: [ArraySlice<UInt8>] = []
        // Every segment follows a slash: drop the first (empty) piece.
        let segments = path.split(omittingEmptySubsequences: false) { $0 == slash || $0 == backslash }.dropFirst()
        for (index, segment) in segments.enumerated() {
            let last = index == segments.count - 1
            if isDot(segment, 1) {
                if last { output.append([]) }
            } else if isDot(segment, 2) {
                if !output.isEmpty { output.removeLast() }
                if last { output.append([]) }
            } else {
                output.append(segment)
            }
        }
        var result: [UInt8] = []
        result.reserveCapacity(path.count + 1)
        if output.isEmpty { return [slash] }
        for segment in output {
            result.append(slash)
            for byte in segment { append(byte, to: &result, encoding: needsEncodingInPath) }
        }
        return result
    }

    /// Whether `segment` is `.` (count 1) or `..` (count 2), each dot perhaps `%2e`.
    static func isDot(_ segment: ArraySlice<UInt8>, _ count: Int) -> Bool {
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

    static func append(_ byte: UInt8, to result: inout [UInt8], encoding: (UInt8) -> Bool) {
        if encoding(byte) {
            result.append(UInt8(ascii: "%"))
            result.append(hexDigits[Int(byte >> 4)])
            result.append(hexDigits[Int(byte & 0x0f)])
        } else {
            result.append(byte)
        }
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
    static func percentDecode(_ bytes: ArraySlice<UInt8>) -> [UInt8]? {
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

/// The `href` attributes of an HTML document, in order, entities
/// `&amp;` `&quot;` `&#39;` `&#x27;` `&lt;` `&gt;` decoded. A scanner, not an
/// HTML parser: it finds `href=` inside tags, quoted or not.
///
/// It works on the bytes: `memchr` skips the text between tags, the
/// attribute name is compared in place, and a `String` is made only for a
/// link found (the crawler's profile had its time in String indexing here).
public func hrefLinks(in html: [UInt8]) -> [String] {
    html.withUnsafeBytes { hrefLinks(in: $0) }
}

/// ``hrefLinks(in:)-([UInt8])`` on bytes the caller holds.
public func hrefLinks(in html: UnsafeRawBufferPointer) -> [String] {
    var links: [String] = []
    guard let base = html.baseAddress else { return links }
    let count = html.count
    var index = 0
    var inTag = false
    while index < count {
        if !inTag {
            // Text: nothing but a '<' matters.
            guard let open = memchr(base + index, Int32(UInt8(ascii: "<")), count - index) else { break }
            index = UnsafeRawPointer(open) - base + 1
            inTag = true
            continue
        }
        let byte = html[index]
        if byte == UInt8(ascii: ">") {
            inTag = false
        } else if (byte | 0x20) == UInt8(ascii: "h") && index + 5 <= count && index > 0
                    && isAttributeBoundary(html[index - 1])
                    && (html[index + 1] | 0x20) == UInt8(ascii: "r") && (html[index + 2] | 0x20) == UInt8(ascii: "e")
                    && (html[index + 3] | 0x20) == UInt8(ascii: "f") {
            var cursor = index + 4
            while cursor < count && isSpace(html[cursor]) { cursor += 1 }
            guard cursor < count && html[cursor] == UInt8(ascii: "=") else { index += 4; continue }
            cursor += 1
            while cursor < count && isSpace(html[cursor]) { cursor += 1 }
            guard cursor < count else { break }
            let quote = html[cursor]
            let start: Int
            var end: Int
            if quote == UInt8(ascii: "\"") || quote == UInt8(ascii: "'") {
                start = cursor + 1
                end = memchr(base + start, Int32(quote), count - start).map { UnsafeRawPointer($0) - base } ?? count
            } else {
                start = cursor
                end = start
                while end < count && !isSpace(html[end]) && html[end] != UInt8(ascii: ">") { end += 1 }
            }
            links.append(decodingEntities(UnsafeRawBufferPointer(rebasing: html[start..<end])))
            index = end
            continue
        }
        index += 1
    }
    return links
}

private func isSpace(_ byte: UInt8) -> Bool {
    byte == 0x20 || byte == 0x09 || byte == 0x0a || byte == 0x0d || byte == 0x0c
}

private func isAttributeBoundary(_ byte: UInt8) -> Bool {
    isSpace(byte) || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "'") || byte == UInt8(ascii: "/")
}

/// The entities an `href` value may hold, and what each stands for.
private let hrefEntities: [(name: [UInt8], byte: UInt8)] = [
    (Array("&quot;".utf8), UInt8(ascii: "\"")), (Array("&#39;".utf8), UInt8(ascii: "'")),
    (Array("&#x27;".utf8), UInt8(ascii: "'")), (Array("&lt;".utf8), UInt8(ascii: "<")),
    (Array("&gt;".utf8), UInt8(ascii: ">")), (Array("&amp;".utf8), UInt8(ascii: "&")),
]

/// `value` as a String with the entities above decoded, left to right (an
/// entity never contains `&` after its first byte, so one pass decodes what
/// replacing each entity in turn would).
private func decodingEntities(_ value: UnsafeRawBufferPointer) -> String {
    guard let base = value.baseAddress, memchr(base, Int32(UInt8(ascii: "&")), value.count) != nil else {
        return String(decoding: value, as: UTF8.self)
    }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(value.count)
    var index = 0
    next: while index < value.count {
        if value[index] == UInt8(ascii: "&") {
            for entity in hrefEntities where index + entity.name.count <= value.count {
                if entity.name.indices.allSatisfy({ value[index + $0] == entity.name[$0] }) {
                    bytes.append(entity.byte)
                    index += entity.name.count
                    continue next
                }
            }
        }
        bytes.append(value[index])
        index += 1
    }
    return String(decoding: bytes, as: UTF8.self)
}
