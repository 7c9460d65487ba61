#if canImport(Glibc)
import Glibc
#endif

// The links of an HTML page, as the crawler finds them: a scanner over the
// bytes (not an HTML parser), apart from the URL parsing in WebURL.swift.

/// The links of an HTML document, in order: the `href` attribute of any
/// tag, and the `src` of `<iframe>` and `<frame>` (a framed page is a page
/// of the site: mdBook's table of contents is reached only so), entities
/// `&amp;` `&quot;` `&#39;` `&#x27;` `&lt;` `&gt;` decoded. A scanner, not an
/// HTML parser: it finds the attribute inside tags, quoted or not.
public func hrefLinks(in html: [UInt8]) -> [String] {
    html.withUnsafeBytes { hrefLinks(in: $0) }
}

/// ``hrefLinks(in:)-([UInt8])`` on bytes the caller holds.
public func hrefLinks(in html: UnsafeRawBufferPointer) -> [String] {
    var links: [String] = []
    forEachHref(in: html) { links.append(String(decoding: $0, as: UTF8.self)) }
    return links
}

/// Calls `body` with each link of an HTML document (see
/// ``hrefLinks(in:)-([UInt8])``), in order, its entities decoded, as bytes
/// valid during the call: with ``WebURL/resolveLink(_:)-(UnsafeRawBufferPointer)``
/// a crawler makes no String of a link it does not keep.
///
/// It works on the bytes: `memchr` skips the text between tags, the tag and
/// attribute names are compared in place, and a value is copied only when
/// it holds an entity or a byte that is not ASCII (made valid UTF-8, as
/// `String(decoding:as:)` makes it).
public func forEachHref(in html: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Void) {
    guard let base = html.baseAddress else { return }
    let count = html.count
    var decoded: [UInt8] = []
    var index = 0
    var inTag = false
    /// Whether the tag is an `<iframe>` or a `<frame>`, whose `src` is a link.
    var framesAPage = false
    while index < count {
        if !inTag {
            // Text: nothing but a '<' matters.
            guard let open = memchr(base + index, Int32(UInt8(ascii: "<")), count - index) else { break }
            index = UnsafeRawPointer(open) - base + 1
            inTag = true
            framesAPage = startsTag(html, at: index, named: "iframe") || startsTag(html, at: index, named: "frame")
            continue
        }
        let byte = html[index]
        if byte == UInt8(ascii: ">") {
            inTag = false
        } else if index > 0 && isAttributeBoundary(html[index - 1]),
                  let nameLength = linkAttribute(html, at: index, framesAPage: framesAPage) {
            var cursor = index + nameLength
            while cursor < count && isSpace(html[cursor]) { cursor += 1 }
            guard cursor < count && html[cursor] == UInt8(ascii: "=") else { index += nameLength; continue }
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
            let value = UnsafeRawBufferPointer(rebasing: html[start..<end])
            if !value.contains(where: { $0 == UInt8(ascii: "&") || $0 >= 0x80 }) {
                body(value) // ASCII, no entity: the bytes as they are
            } else {
                decodeEntities(value, into: &decoded)
                // As a String would hold them: invalid UTF-8 made U+FFFD (the
                // Encoding standard's decode of a UTF-8 page).
                var text = String(decoding: decoded, as: UTF8.self)
                text.withUTF8 { body(UnsafeRawBufferPointer($0)) }
            }
            index = end
            continue
        }
        index += 1
    }
}

/// The length of the link attribute name at `index` - `href`, or `src` in
/// a tag that frames a page - or nil.
@inline(__always)
private func linkAttribute(_ html: UnsafeRawBufferPointer, at index: Int, framesAPage: Bool) -> Int? {
    let first = html[index] | 0x20
    if first == UInt8(ascii: "h") && index + 5 <= html.count
        && (html[index + 1] | 0x20) == UInt8(ascii: "r") && (html[index + 2] | 0x20) == UInt8(ascii: "e")
        && (html[index + 3] | 0x20) == UInt8(ascii: "f") {
        return 4
    }
    if framesAPage && first == UInt8(ascii: "s") && index + 4 <= html.count
        && (html[index + 1] | 0x20) == UInt8(ascii: "r") && (html[index + 2] | 0x20) == UInt8(ascii: "c") {
        return 3
    }
    return nil
}

/// Whether the tag whose name begins at `index` is `name` (lowercase
/// ASCII), in any case: the name is followed by a space, `/` or `>`.
private func startsTag(_ html: UnsafeRawBufferPointer, at index: Int, named name: StaticString) -> Bool {
    let length = name.utf8CodeUnitCount
    guard index + length < html.count else { return false }
    for offset in 0..<length where (html[index + offset] | 0x20) != name.utf8Start[offset] { return false }
    let after = html[index + length]
    return isSpace(after) || after == UInt8(ascii: "/") || after == UInt8(ascii: ">")
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
