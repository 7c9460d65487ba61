#if canImport(Glibc)
import Glibc
#endif

/// The server's site: `/plaintext`, and a generated web of `pages` pages for
/// a crawler to walk - `/` links to `/page/0`, and every `/page/K` links
/// to a few others deterministically (absolute and relative links, links
/// back to `/`, an off-site link and a fragment), cycles included. Every
/// page is reachable from `/` through the chain K -> K + 1.
public struct HTTPSite: Sendable {
    /// Pages besides `/`.
    public let pages: Int
    /// `/`'s HTML.
    public let indexHTML: [UInt8]
    private let pageHTML: [[UInt8]]
    /// Every 200 answer's bytes after its Date line, made once and shared
    /// by every connection on every thread (they are never written to).
    public let prepared: PreparedAnswers

    /// The rest of each 200 answer after the Date line: Content-Type,
    /// Content-Length, the blank line and the body - all in one array,
    /// appended from there in one go (an array per answer cost a retain and
    /// a release per request). `Sendable` as it is: immutable arrays.
    public final class PreparedAnswers: Sendable {
        private let bytes: [UInt8]
        /// Where each answer ends in `bytes`: 0 is /plaintext, 1 is /, K + 2 is /page/K.
        private let ends: [Int]

        init(index: [UInt8], pages: [[UInt8]]) {
            func prepare(_ contentType: String, _ body: [UInt8]) -> [UInt8] {
                Array("Content-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body
            }
            let answers = [prepare("text/plain", HTTPSite.plaintext), prepare("text/html; charset=utf-8", index)]
                + pages.map { prepare("text/html; charset=utf-8", $0) }
            bytes = Array(answers.joined())
            var end = 0
            ends = answers.map { answer in
                end += answer.count
                return end
            }
        }

        /// Whether `route` has a prepared answer (every route but `.notFound`).
        public func has(_ route: Route) -> Bool { route != .notFound }

        /// Appends the prepared rest of the 200 answer for `route` to `output`;
        /// false (nothing appended) for a route without one.
        @inline(__always)
        public func append(_ route: Route, to output: inout [UInt8]) -> Bool {
            let number: Int
            switch route {
            case .plaintext: number = 0
            case .index: number = 1
            case .page(let page): number = page + 2
            case .notFound: return false
            }
            let start = number == 0 ? 0 : ends[number - 1]
            bytes.withUnsafeBufferPointer { output.append(contentsOf: UnsafeBufferPointer(rebasing: $0[start..<ends[number]])) }
            return true
        }
    }

    /// What a target names.
    public enum Route: Equatable {
        case plaintext, index, page(Int), notFound
    }

    /// `/plaintext`'s body.
    public static let plaintext = Array("Hello, World!".utf8)

    public init(pages: Int) {
        precondition(pages >= 1, "a site has at least one page")
        self.pages = pages
        indexHTML = Array(Self.document(title: "swift-libev's site", links: ["/page/0", "/plaintext", "https://example.com/elsewhere"]).utf8)
        pageHTML = (0..<pages).map { page in Array(Self.document(title: "Page \(page)", links: Self.links(page, of: pages)).utf8) }
        prepared = PreparedAnswers(index: indexHTML, pages: pageHTML)
    }

    /// The links on page `page`, as written in its HTML.
    public static func links(_ page: Int, of pages: Int) -> [String] {
        [
            "/page/\((page + 1) % pages)",           // the chain through every page
            "/page/\((page * 7 + 3) % pages)",       // jumps, with cycles
            "\((page * page + 5) % pages)",          // relative to /page/K
            "../page/\((page + pages - 1) % pages)", // relative, and back
            "/",                                      // home
            "#top",                                   // this page again
        ]
    }

    /// The page for `target` (its query ignored).
    public func route(_ target: [UInt8]) -> Route { Self.route(target, pages: pages) }

    /// The page for `target` in a site of `pages` pages.
    public static func route(_ target: [UInt8], pages: Int) -> Route {
        target.withUnsafeBufferPointer { bytes in
            var end = bytes.count
            for index in 0..<bytes.count where bytes[index] == UInt8(ascii: "?") || bytes[index] == UInt8(ascii: "#") {
                end = index
                break
            }
            let path = UnsafeBufferPointer(rebasing: bytes[..<end])
            if equals(path, "/plaintext") { return .plaintext }
            if equals(path, "/") { return .index }
            guard path.count > 6, equals(UnsafeBufferPointer(rebasing: path[..<6]), "/page/") else { return .notFound }
            let digits = path[6...]
            guard digits.count <= 9, digits.allSatisfy({ $0 >= 48 && $0 <= 57 }),
                  digits.count == 1 || digits.first != 48 else { return .notFound }
            let number = digits.reduce(0) { $0 * 10 + Int($1 - 48) }
            return number < pages ? .page(number) : .notFound
        }
    }

    private static func equals(_ bytes: UnsafeBufferPointer<UInt8>, _ literal: StaticString) -> Bool {
        bytes.count == literal.utf8CodeUnitCount
            && (bytes.count == 0 || memcmp(bytes.baseAddress!, literal.utf8Start, bytes.count) == 0)
    }

    /// Page `page`'s HTML.
    public func html(page: Int) -> [UInt8] { pageHTML[page] }

    private static func document(title: String, links: [String]) -> String {
        var html = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>\(title)</title></head>\n<body id=\"top\"><h1>\(title)</h1>\n<ul>\n"
        for link in links { html += "<li><a href=\"\(link)\">\(link)</a></li>\n" }
        html += "</ul>\n</body></html>\n"
        return html
    }
}
