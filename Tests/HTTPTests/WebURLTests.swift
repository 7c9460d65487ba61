import HTTP
import Testing

@Suite("URLs and links for the crawler")
struct WebURLTests {
    @Test func absoluteURLsParse() throws {
        let url = try WebURL("http://Example.com:8080/a/b/../c?x=1#frag")
        #expect(url.host == "example.com" && url.port == 8080 && url.target == "/a/c?x=1")
        #expect(url.description == "http://example.com:8080/a/c?x=1")
        #expect(try WebURL("http://127.0.0.1").target == "/")
        #expect(try WebURL("http://127.0.0.1").port == 80)
    }

    @Test(arguments: ["https://example.com/", "ftp://x/", "example.com", "", "http://"])
    func otherURLsAreRefusedWithAReason(_ text: String) {
        #expect(throws: WebURL.ParseError.self) { try WebURL(text) }
    }

    @Test func linksResolveAsRFC3986Says() throws {
        let base = try WebURL("http://h:81/page/5?q=1")
        #expect(base.resolve("/page/6")?.target == "/page/6")
        #expect(base.resolve("30")?.target == "/page/30")
        #expect(base.resolve("../page/4")?.target == "/page/4")
        #expect(base.resolve("../../../x")?.target == "/x")
        #expect(base.resolve("./")?.target == "/page/")
        #expect(base.resolve("?r=2")?.target == "/page/5?r=2")
        #expect(base.resolve("http://h:81/y#z")?.target == "/y")
        #expect(base.resolve("//other/y")?.host == "other")
        #expect(base.resolve("#top") == nil)
        #expect(base.resolve("mailto:a@b") == nil)
        #expect(base.resolve("https://h:81/") == nil)
        #expect(base.resolve("  /spaced  ")?.target == "/spaced")
    }

    @Test func hrefsAreFoundInTags() {
        let html = Array("""
        <a href="/one">1</a> <A HREF='two'>2</A> <a class=x href=three>3</a>
        <link rel="x" href = "/four?a=1&amp;b=2"> href="not-in-a-tag" <a data-href="no">x</a>
        """.utf8)
        #expect(hrefLinks(in: html) == ["/one", "two", "three", "/four?a=1&b=2"])
    }

    @Test func everyPageOfTheSiteIsReachableFromTheIndex() throws {
        let site = HTTPSite(pages: 1000)
        var seen: Set<String> = ["/"]
        var queue = ["/"]
        while let target = queue.popLast() {
            let base = WebURL(host: "h", port: 80, target: target)
            let html: [UInt8] = switch site.route(Array(target.utf8)) {
            case .index: site.indexHTML
            case .page(let page): site.html(page: page)
            default: []
            }
            for link in hrefLinks(in: html) {
                guard let url = base.resolve(link), url.host == "h", seen.insert(url.target).inserted else { continue }
                queue.append(url.target)
            }
        }
        #expect(seen.count == 1002, "/, /plaintext and 1000 pages")
        #expect((0..<1000).allSatisfy { seen.contains("/page/\($0)") })
    }

    @Test func routesAreExact() {
        let site = HTTPSite(pages: 10)
        #expect(site.route(Array("/page/9".utf8)) == .page(9))
        #expect(site.route(Array("/page/10".utf8)) == .notFound)
        #expect(site.route(Array("/page/09".utf8)) == .notFound)
        #expect(site.route(Array("/page/".utf8)) == .notFound)
        #expect(site.route(Array("/plaintext?x".utf8)) == .plaintext)
        #expect(site.route(Array("/page/99999999999999999999".utf8)) == .notFound)
    }
}
