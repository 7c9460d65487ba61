#if canImport(Glibc)
import Glibc
#endif

// The links of an HTML page, as the crawler finds them: a scanner over the
// bytes (not an HTML parser), apart from the URL parsing in WebURL.swift.

/// What the scanner found in a page's markup.
public enum HTMLLinkKind: Sendable, Equatable {
    /// A link to follow: `href` of `<a>`, `<area>` and `<link rel=next|prev>`,
    /// `src` of `<iframe>` and `<frame>`.
    case follow
    /// A link marked `rel=nofollow`: not to be followed.
    case nofollow
    /// `<base href>`: what the links after it resolve against.
    case base
    /// `<meta name=robots content=nofollow>` (or `none`): no link of the
    /// page is to be followed (the bytes are empty).
    case pageNofollow
}

/// The links of an HTML document to follow, in order (see
/// ``forEachLink(in:_:)``), entities decoded: `rel=nofollow` links, `<base>`
/// and the page's robots meta tag left out.
public func hrefLinks(in html: [UInt8]) -> [String] {
    html.withUnsafeBytes { hrefLinks(in: $0) }
}

/// ``hrefLinks(in:)-([UInt8])`` on bytes the caller holds.
public func hrefLinks(in html: UnsafeRawBufferPointer) -> [String] {
    var links: [String] = []
    forEachLink(in: html) { kind, bytes in
        if kind == .follow { links.append(String(decoding: bytes, as: UTF8.self)) }
    }
    return links
}

/// Calls `body` with what a crawler follows in an HTML document, in order,
/// entities decoded, as bytes valid during the call: with
/// ``WebURL/resolveLink(_:)-(UnsafeRawBufferPointer)`` a crawler makes no
/// String of a link it does not keep.
///
/// - `href` of `<a>` and `<area>`, and of `<link>` whose `rel` is `next` or
///   `prev` (a stylesheet or an icon is not a page); `src` of `<iframe>`
///   and `<frame>` (a framed page is a page of the site: mdBook's table of
///   contents is reached only so). A link whose `rel` holds `nofollow` is
///   reported as ``HTMLLinkKind/nofollow``.
/// - `<base href>` as ``HTMLLinkKind/base``; `<meta name=robots>` whose
///   content holds `nofollow` or `none` as ``HTMLLinkKind/pageNofollow``.
/// - The text of `<script>` and `<style>` and the comments are skipped: a
///   link inside them is not one.
///
/// A scanner of tags on the bytes (not an HTML parser): `memchr` skips the
/// text between tags, tag and attribute names are compared in place, a
/// quoted value may hold `>`, and a value is copied only when it holds an
/// entity or a byte that is not ASCII (made valid UTF-8, as
/// `String(decoding:as:)` makes it).
public func forEachLink(in html: UnsafeRawBufferPointer, _ body: (HTMLLinkKind, UnsafeRawBufferPointer) -> Void) {
    guard let base = html.baseAddress else { return }
    let count = html.count
    var decoded: [UInt8] = []
    var index = 0
    while index < count {
        guard let open = memchr(base + index, Int32(UInt8(ascii: "<")), count - index) else { return }
        index = UnsafeRawPointer(open) - base + 1
        if hasPrefix(html, at: index, "!--") {
            // A comment runs to the next "-->".
            index = find(html, "-->", from: index + 3).map { $0 + 3 } ?? count
            continue
        }
        let nameStart = index
        while index < count && isNameByte(html[index]) { index += 1 }
        let name = UnsafeRawBufferPointer(rebasing: html[nameStart..<index])
        guard !name.isEmpty else { continue } // "</x>", "<!DOCTYPE", "< ": not a tag that links
        let tag = LinkTag(name)
        var attributes = TagAttributes()
        index = scanAttributes(html, from: index, into: &attributes, collect: tag != nil)
        if let tag { report(tag, attributes, html, &decoded, body) }
        let rawText: StaticString? = tag != nil ? nil : equalsLowercase(name, "script") ? "script" : equalsLowercase(name, "style") ? "style" : nil
        if let rawText {
            // Raw text up to the end tag "</script" or "</style".
            var cursor = index
            while true {
                guard let close = find(html, "</", from: cursor) else { return }
                let end = min(close + 2 + rawText.utf8CodeUnitCount, count)
                if equalsLowercase(UnsafeRawBufferPointer(rebasing: html[(close + 2)..<end]), rawText) {
                    index = close + 2
                    break
                }
                cursor = close + 2
            }
        }
    }
}

/// The tags whose attributes matter.
private enum LinkTag {
    case anchor, link, base, frame, meta

    init?(_ name: UnsafeRawBufferPointer) {
        if equalsLowercase(name, "a") || equalsLowercase(name, "area") { self = .anchor }
        else if equalsLowercase(name, "link") { self = .link }
        else if equalsLowercase(name, "base") { self = .base }
        else if equalsLowercase(name, "iframe") || equalsLowercase(name, "frame") { self = .frame }
        else if equalsLowercase(name, "meta") { self = .meta }
        else { return nil }
    }
}

/// The values (byte ranges of the page) of the attributes that matter; the
/// first of each name counts, as in HTML.
private struct TagAttributes {
    var href: Range<Int>?
    var src: Range<Int>?
    var rel: Range<Int>?
    var name: Range<Int>?
    var content: Range<Int>?
}

/// Reports what a tag of interest says.
private func report(_ tag: LinkTag, _ attributes: TagAttributes, _ html: UnsafeRawBufferPointer, _ decoded: inout [UInt8],
                    _ body: (HTMLLinkKind, UnsafeRawBufferPointer) -> Void) {
    func value(_ range: Range<Int>?) -> UnsafeRawBufferPointer? {
        range.map { UnsafeRawBufferPointer(rebasing: html[$0]) }
    }
    func relHolds(_ word: StaticString) -> Bool {
        guard let rel = value(attributes.rel) else { return false }
        return containsWord(rel, word)
    }
    let link: UnsafeRawBufferPointer
    let kind: HTMLLinkKind
    switch tag {
    case .anchor:
        guard let href = value(attributes.href) else { return }
        (link, kind) = (href, relHolds("nofollow") ? .nofollow : .follow)
    case .link:
        guard let href = value(attributes.href), relHolds("next") || relHolds("prev") else { return }
        (link, kind) = (href, relHolds("nofollow") ? .nofollow : .follow)
    case .base:
        guard let href = value(attributes.href) else { return }
        (link, kind) = (href, .base)
    case .frame:
        guard let src = value(attributes.src) else { return }
        (link, kind) = (src, .follow)
    case .meta:
        guard let name = value(attributes.name), equalsLowercase(trimmed(name), "robots"),
              let content = value(attributes.content), containsWord(content, "nofollow") || containsWord(content, "none") else { return }
        body(.pageNofollow, UnsafeRawBufferPointer(start: nil, count: 0))
        return
    }
    if !link.contains(where: { $0 == UInt8(ascii: "&") || $0 >= 0x80 }) {
        body(kind, link) // ASCII, no entity: the bytes as they are
    } else {
        decodeEntities(link, into: &decoded)
        // As a String would hold them: invalid UTF-8 made U+FFFD (the
        // Encoding standard's decode of a UTF-8 page).
        var text = String(decoding: decoded, as: UTF8.self)
        text.withUTF8 { body(kind, UnsafeRawBufferPointer($0)) }
    }
}

/// Reads a tag's attributes from `index` (after its name) to its `>`,
/// storing the ranges of those that matter in `attributes` (when `collect`);
/// returns the index after the `>` (or the end).
private func scanAttributes(_ html: UnsafeRawBufferPointer, from start: Int, into attributes: inout TagAttributes, collect: Bool) -> Int {
    let count = html.count
    var index = start
    while index < count {
        let byte = html[index]
        if byte == UInt8(ascii: ">") { return index + 1 }
        if isSpace(byte) || byte == UInt8(ascii: "/") { index += 1; continue }
        let nameStart = index
        while index < count && !isSpace(html[index]) && html[index] != UInt8(ascii: "=") && html[index] != UInt8(ascii: ">")
                && html[index] != UInt8(ascii: "/") { index += 1 }
        let name = UnsafeRawBufferPointer(rebasing: html[nameStart..<index])
        var cursor = index
        while cursor < count && isSpace(html[cursor]) { cursor += 1 }
        guard cursor < count && html[cursor] == UInt8(ascii: "=") else {
            index = max(index, nameStart + 1) // a name without a value (or a stray byte)
            continue
        }
        cursor += 1
        while cursor < count && isSpace(html[cursor]) { cursor += 1 }
        guard cursor < count else { return count } // "name=" at the end: no value
        let value: Range<Int>
        if cursor < count && (html[cursor] == UInt8(ascii: "\"") || html[cursor] == UInt8(ascii: "'")) {
            let quote = html[cursor]
            let first = cursor + 1
            let end = memchr(html.baseAddress! + first, Int32(quote), count - first).map { UnsafeRawPointer($0) - html.baseAddress! } ?? count
            value = first..<end
            index = min(end + 1, count)
        } else {
            var end = cursor
            while end < count && !isSpace(html[end]) && html[end] != UInt8(ascii: ">") { end += 1 }
            value = cursor..<end
            index = end
        }
        if collect {
            if equalsLowercase(name, "href") { attributes.href = attributes.href ?? value }
            else if equalsLowercase(name, "src") { attributes.src = attributes.src ?? value }
            else if equalsLowercase(name, "rel") { attributes.rel = attributes.rel ?? value }
            else if equalsLowercase(name, "name") { attributes.name = attributes.name ?? value }
            else if equalsLowercase(name, "content") { attributes.content = attributes.content ?? value }
        }
    }
    return count
}

private func isNameByte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
    default: false
    }
}

/// Whether `bytes` are `word` (lowercase ASCII) in any case.
private func equalsLowercase(_ bytes: UnsafeRawBufferPointer, _ word: StaticString) -> Bool {
    guard bytes.count == word.utf8CodeUnitCount else { return false }
    for offset in 0..<bytes.count where (bytes[offset] | 0x20) != word.utf8Start[offset] { return false }
    return true
}

/// Whether the space-separated list `bytes` (a `rel`, a robots `content`,
/// which also separates by commas) holds `word`, in any case.
private func containsWord(_ bytes: UnsafeRawBufferPointer, _ word: StaticString) -> Bool {
    var start = 0
    while start < bytes.count {
        while start < bytes.count && (isSpace(bytes[start]) || bytes[start] == UInt8(ascii: ",")) { start += 1 }
        var end = start
        while end < bytes.count && !isSpace(bytes[end]) && bytes[end] != UInt8(ascii: ",") { end += 1 }
        if end > start && equalsLowercase(UnsafeRawBufferPointer(rebasing: bytes[start..<end]), word) { return true }
        start = end
    }
    return false
}

private func trimmed(_ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
    var start = 0, end = bytes.count
    while start < end && isSpace(bytes[start]) { start += 1 }
    while end > start && isSpace(bytes[end - 1]) { end -= 1 }
    return UnsafeRawBufferPointer(rebasing: bytes[start..<end])
}

private func hasPrefix(_ html: UnsafeRawBufferPointer, at index: Int, _ text: StaticString) -> Bool {
    let length = text.utf8CodeUnitCount
    guard index + length <= html.count else { return false }
    return memcmp(html.baseAddress! + index, text.utf8Start, length) == 0
}

/// The index of the first `text` at or after `from`, or nil.
private func find(_ html: UnsafeRawBufferPointer, _ text: StaticString, from: Int) -> Int? {
    var index = from
    while index < html.count {
        guard let first = memchr(html.baseAddress! + index, Int32(text.utf8Start[0]), html.count - index) else { return nil }
        index = UnsafeRawPointer(first) - html.baseAddress!
        if hasPrefix(html, at: index, text) { return index }
        index += 1
    }
    return nil
}

private func isSpace(_ byte: UInt8) -> Bool {
    byte == 0x20 || byte == 0x09 || byte == 0x0a || byte == 0x0d || byte == 0x0c
}

/// The entities an `href` value may hold, and what each stands for.
private let hrefEntities: [(name: [UInt8], byte: UInt8)] = [
    (Array("&quot;".utf8), UInt8(ascii: "\"")), (Array("&#39;".utf8), UInt8(ascii: "'")),
    (Array("&#x27;".utf8), UInt8(ascii: "'")), (Array("&lt;".utf8), UInt8(ascii: "<")),
    (Array("&gt;".utf8), UInt8(ascii: ">")), (Array("&amp;".utf8), UInt8(ascii: "&")),
]

/// `value` with the entities above decoded, left to right, into `bytes`
/// (emptied first; an entity never contains `&` after its first byte, so
/// one pass decodes what replacing each entity in turn would).
private func decodeEntities(_ value: UnsafeRawBufferPointer, into bytes: inout [UInt8]) {
    bytes.removeAll(keepingCapacity: true)
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
}
