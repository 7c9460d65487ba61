import CHTTPParser

/// An `http://` URL as the crawler needs it: host, port, and the
/// path-and-query it requests; fragments dropped, dot segments removed.
public struct WebURL: Hashable, Sendable, CustomStringConvertible {
    public let host: String
    public let port: UInt16
    /// The path and query, starting with `/`.
    public let target: String

    /// Why a URL was refused.
    public struct ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        public let text: String
        public let reason: String
        public var description: String { "invalid URL \"\(text)\": \(reason)" }
    }

    /// Parses an absolute `http://host[:port][/path][?query][#fragment]`.
    public init(_ text: String) throws(ParseError) {
        var parsed = http_parser_url()
        http_parser_url_init(&parsed)
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty,
              bytes.withUnsafeBufferPointer({ buffer in
                  buffer.withMemoryRebound(to: CChar.self) { http_parser_parse_url($0.baseAddress, $0.count, 0, &parsed) }
              }) == 0 else {
            throw ParseError(text: text, reason: "not an absolute URL")
        }
        func field(_ index: http_parser_url_fields) -> String? {
            let bit = UInt16(1) << UInt16(index.rawValue)
            guard parsed.field_set & bit != 0 else { return nil }
            var offset: UInt16 = 0
            var length: UInt16 = 0
            CHTTPParser_urlField(&parsed, index, &offset, &length)
            return String(decoding: bytes[Int(offset)..<Int(offset) + Int(length)], as: UTF8.self)
        }
        guard field(UF_SCHEMA)?.lowercased() == "http" else {
            throw ParseError(text: text, reason: "only http:// URLs can be crawled")
        }
        guard let host = field(UF_HOST), !host.isEmpty else { throw ParseError(text: text, reason: "no host") }
        self.host = host.lowercased()
        port = parsed.port == 0 ? 80 : parsed.port
        var target = field(UF_PATH) ?? "/"
        if let query = field(UF_QUERY) { target += "?" + query }
        self.target = Self.removeDotSegments(target)
    }

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

    /// Resolves a link found on this page (RFC 3986, 5.2): absolute,
    /// scheme-relative, absolute-path, relative, query-only; nil for other
    /// schemes (`mailto:`, `https:`, `javascript:`) and empty fragments.
    public func resolve(_ reference: String) -> WebURL? {
        var link = reference.trimmingWhitespace
        if let hash = link.firstIndex(of: "#") { link = String(link[..<hash]) }
        if link.isEmpty { return nil } // "#top": this page again
        let lower = link.lowercased()
        if lower.hasPrefix("http://") { return try? WebURL(link) }
        if lower.hasPrefix("//") { return try? WebURL("http:" + link) }
        if let colon = link.firstIndex(of: ":"), !link[..<colon].contains("/"), !link[..<colon].contains("?") {
            return nil // another scheme
        }
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]
        let merged: String
        if link.hasPrefix("/") {
            merged = link
        } else if link.hasPrefix("?") {
            merged = path + link
        } else {
            let directory = path[...(path.lastIndex(of: "/") ?? path.startIndex)]
            merged = directory + link
        }
        return WebURL(host: host, port: port, target: Self.removeDotSegments(merged))
    }

    /// RFC 3986's remove_dot_segments, on the path (the query kept as is).
    static func removeDotSegments(_ target: String) -> String {
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        var output: [Substring] = []
        let segments = parts[0].split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        for (index, segment) in segments.enumerated() {
            let last = index == segments.count - 1
            switch segment {
            case ".":
                if last { output.append("") }
            case "..":
                if !output.isEmpty { output.removeLast() }
                if last { output.append("") }
            default:
                output.append(segment)
            }
        }
        let path = "/" + output.joined(separator: "/")
        return parts.count > 1 ? path + "?" + parts[1] : path
    }
}

extension String {
    var trimmingWhitespace: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}

/// The `href` attributes of an HTML document, in order, entities
/// `&amp;` `&quot;` `&#39;` `&lt;` `&gt;` decoded. A scanner, not an HTML
/// parser: it finds `href=` inside tags, quoted or not.
public func hrefLinks(in html: [UInt8]) -> [String] {
    var links: [String] = []
    var index = 0
    var inTag = false
    let count = html.count
    while index < count {
        let byte = html[index]
        if byte == UInt8(ascii: "<") {
            inTag = true
        } else if byte == UInt8(ascii: ">") {
            inTag = false
        } else if inTag && (byte | 0x20) == UInt8(ascii: "h") && index + 5 <= count
                    && index > 0 && isAttributeBoundary(html[index - 1])
                    && html[index..<index + 4].map({ $0 | 0x20 }) == Array("href".utf8) {
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
                end = start
                while end < count && html[end] != quote { end += 1 }
            } else {
                start = cursor
                end = start
                while end < count && !isSpace(html[end]) && html[end] != UInt8(ascii: ">") { end += 1 }
            }
            links.append(decodeEntities(String(decoding: html[start..<min(end, count)], as: UTF8.self)))
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

private func decodeEntities(_ text: String) -> String {
    guard text.contains("&") else { return text }
    var result = text
    for (entity, character) in [("&quot;", "\""), ("&#39;", "'"), ("&#x27;", "'"), ("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&")] {
        result = result.replacingAll(entity, with: character)
    }
    return result
}

extension String {
    public func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var result = ""
        var rest = self[...]
        while let range = rest.range(of: target) {
            result += rest[..<range.lowerBound]
            result += replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}

extension Substring {
    func range(of target: String) -> Range<Index>? {
        var start = startIndex
        while start < endIndex {
            if self[start...].hasPrefix(target) { return start..<index(start, offsetBy: target.count) }
            start = index(after: start)
        }
        return nil
    }
}
