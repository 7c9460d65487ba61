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

    @Test(arguments: ["httpss://example.com/", "ftp://x/", "example.com", "", "http://"])
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
        #expect(base.resolve("https://h:81/")?.isSecure == true)
        #expect(base.resolve("ftp://h:81/") == nil)
        #expect(base.resolve("  /spaced  ")?.target == "/spaced")
    }

    /// Whether `target` can go into a request line as it is.
    func isSendable(_ target: String) -> Bool {
        target.hasPrefix("/") && target.utf8.count <= WebURL.maxTargetBytes && target.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f }
    }

    @Test func nothingALinkSaysReachesTheRequestLineRaw() throws {
        let base = try WebURL("http://h/dir/page")
        // Issue "Hardening", 2: a request split by CR/LF in an href.
        let injected = base.resolve("/x HTTP/1.1\r\nX-Injected: yes\r\nFoo: bar")
        #expect(injected?.target == "/x%20HTTP/1.1X-Injected:%20yesFoo:%20bar")
        #expect(base.resolve("/a b\tc\u{0}d")?.target == "/a%20bc%00d")
        #expect(base.resolve("\u{0} \t/lead-and-trail\n \u{1}")?.target == "/lead-and-trail")
        #expect(base.resolve("/q?x=a b&y=\"<'>\"")?.target == "/q?x=a%20b&y=%22%3C%27%3E%22")
        #expect(base.resolve("/caf\u{e9}/\u{1F600}")?.target == "/caf%C3%A9/%F0%9F%98%80")
        #expect(base.resolve("/{x}`y`")?.target == "/%7Bx%7D%60y%60")
        #expect(base.resolve("\\a\\b")?.target == "/a/b", "backslashes are slashes in http URLs")
        #expect(base.resolve("/a/%2e/b/%2E%2e/c")?.target == "/a/c")
        #expect(base.resolve("http:sibling")?.target == "/dir/sibling")
        #expect(base.resolve("HTTP://H/Up")?.description == "http://h/Up")
        #expect(base.resolve("http://user:secret@h/x")?.description == "http://h/x", "user info is never sent")
        for link in ["/x HTTP/1.1\r\nX-Injected: yes", "/\u{0}\u{7f}\u{80}", "?\r\n", "a b", "../\t../x y"] {
            let url = try #require(base.resolve(link))
            #expect(isSendable(url.target), "\(link) -> \(url.target)")
            let authority = Array(url.authority.utf8)
            #expect(authority.allSatisfy { $0 > 0x20 && $0 < 0x7f })
        }
    }

    @Test func linksThatCannotBeSentAreSkippedByReason() throws {
        let base = try WebURL("http://h/")
        let long = "/" + String(repeating: "a", count: 200_000)
        #expect(base.resolveLink(long) == .skipped(.tooLong))
        #expect(base.resolveLink("/" + String(repeating: "a", count: WebURL.maxTargetBytes - 1)) != .skipped(.tooLong))
        #expect(base.resolveLink("/" + String(repeating: "a", count: WebURL.maxTargetBytes)) == .skipped(.tooLong))
        // Encoding counts: 3,000 spaces are 9,000 bytes on the wire.
        #expect(base.resolveLink("/" + String(repeating: " x", count: 3000)) == .skipped(.tooLong))
        #expect(base.resolveLink("http://ho st/") == .skipped(.invalidHost))
        #expect(base.resolveLink("http://h\u{0}x/") == .skipped(.invalidHost))
        #expect(base.resolveLink("http://b\u{fc}cher.example/") == .skipped(.invalidHost))
        #expect(base.resolveLink("http://:80/x") == .skipped(.invalidHost))
        #expect(base.resolveLink("http:///x") == .url(WebURL(host: "x", port: 80, target: "/")), "WHATWG skips extra slashes")
        #expect(base.resolveLink("http://h:99999/") == .skipped(.invalidPort))
        #expect(base.resolveLink("http://h:8x/") == .skipped(.invalidPort))
        #expect(base.resolveLink("http://[::1]:8080/x") == .url(WebURL(host: "::1", port: 8080, target: "/x")))
        #expect(base.resolveLink("mailto:a@b") == .ignored)
        #expect(base.resolveLink("javascript:alert(1)") == .ignored)
        #expect(base.resolveLink("#top") == .ignored)
        #expect(base.resolveLink(" \t\n") == .ignored)
    }

    @Test func aStartURLIsNormalisedToo() throws {
        #expect(try WebURL(" http://H/a b?c d#e ").description == "http://h/a%20b?c%20d")
        #expect(throws: WebURL.ParseError.self) { try WebURL("http://h:70000/") }
        #expect(throws: WebURL.ParseError.self) { try WebURL("http://h/" + String(repeating: "x", count: 9000)) }
    }

    @Test func savedNamesAreUniqueWholeAndShort() {
        // Issue "Hardening", 11: "/" and "/index.html" collided, a NUL cut a
        // name, a name over 255 bytes failed.
        let targets = ["/", "/index.html", "//", "/%2F", "/a/b?c=d", "/a%2Fb", "/%00x", "/a?b/c",
                       "/" + String(repeating: "x", count: 300), "/" + String(repeating: "x", count: 299) + "y",
                       "/" + String(repeating: "%41", count: 100)]
        let names = targets.map { WebURL(host: "h", port: 80, target: $0).fileName }
        #expect(Set(names).count == targets.count, "\(names)")
        #expect(names[0] == "%2F" && names[1] == "%2Findex.html" && names[4] == "%2Fa%2Fb?c=d")
        for name in names {
            #expect(name.utf8.count <= 255 && !name.utf8.contains(0) && !name.contains("/"), "\(name)")
        }
        #expect(names[8].contains("%%") && names[8].utf8.count == 218)
        // The same URL always gets the same name (the hash is not the process's).
        #expect(WebURL(host: "h", port: 80, target: targets[8]).fileName == names[8])
    }

    @Test func hrefsAreFoundInTags() {
        let html = Array("""
        <a href="/one">1</a> <A HREF='two'>2</A> <a class=x href=three>3</a>
        <link rel="next" href = "/four?a=1&amp;b=2"> href="not-in-a-tag" <a data-href="no">x</a>
        <area shape=rect href="/five"><link rel=stylesheet href="/style.css"><LINK REL="Prev" href=/six>
        """.utf8)
        #expect(hrefLinks(in: html) == ["/one", "two", "three", "/four?a=1&b=2", "/five", "/six"])
    }

    /// Issue "TLS on the loop", 3: what a polite crawler follows - `a`,
    /// `area`, `link rel=next|prev` and frames; not a stylesheet's or an
    /// icon's `link`, not `rel=nofollow`, nothing inside scripts, styles or
    /// comments; `<base href>` and the robots meta tag reported.
    @Test func nofollowBaseScriptsStylesAndCommentsAreHonoured() {
        func scan(_ html: String) -> [String] {
            var found: [String] = []
            Array(html.utf8).withUnsafeBytes { page in
                forEachLink(in: page) { kind, bytes in found.append("\(kind):\(String(decoding: bytes, as: UTF8.self))") }
            }
            return found
        }
        #expect(scan(#"<a rel="nofollow" href="/no"><a href=/yes rel='external NoFollow'><a href=/ok rel=author>"#)
                == ["nofollow:/no", "nofollow:/yes", "follow:/ok"])
        #expect(scan(#"<head><base href="https://h/dir/"><meta name="Robots" content="noindex, nofollow"></head><a href=x>"#)
                == ["base:https://h/dir/", "pageNofollow:", "follow:x"])
        #expect(scan(#"<meta name=robots content=none><meta name=description content=nofollow>"#) == ["pageNofollow:"])
        #expect(scan(#"<script>var s = '<a href="/in-script">';</script><a href=/after>"#) == ["follow:/after"])
        #expect(scan(#"<STYLE>a[href="/in-style"]{}</style ><!-- <a href="/in-comment"> --><a href=/after>"#) == ["follow:/after"])
        #expect(scan(#"<script src=/x.js><a href=/never-closed>"#) == [], "an unclosed script runs to the end")
        #expect(scan(#"<!-- never closed <a href=/no>"#) == [])
        #expect(scan(#"<a title="x>y" href="/quoted-gt">"#) == ["follow:/quoted-gt"], "a quoted value may hold >")
    }

    @Test func httpsURLsKeepTheirSchemeAndDefaultPort() throws {
        let page = try WebURL("HTTPS://Example.org/a/b")
        #expect(page.isSecure && page.port == 443 && page.description == "https://example.org/a/b")
        #expect(page.resolve("c")?.description == "https://example.org/a/c")
        #expect(page.resolve("//other:8443/x")?.description == "https://other:8443/x")
        #expect(page.resolve("http://example.org/")?.isSecure == false)
        #expect(page.resolve("http:rel")?.description == "http://rel/", "another scheme's relative form is absolute")
        #expect(try WebURL("http://h:443/").authority == "h:443")
        #expect(page.origin == (try WebURL("https://example.org:443/zzz")).origin)
        #expect(page.origin != (try WebURL("http://example.org/a/b")).origin)
    }

    /// Issue "Green every time", 5: a page framed by another is a page of
    /// the site (mdBook's table of contents is reached only through an
    /// iframe; wget's spider found it and the crawler did not). The `src`
    /// of `<iframe>` and `<frame>` is a link; of other tags (images,
    /// scripts) it is not, nor is a frame's `href`.
    @Test func framedPagesAreLinks() {
        let html = Array("""
        <iframe class="toc" src="toc.html"></iframe><FRAME SRC='/menu'><frameset src="/no"><img src="/pic.png">
        <script src="/app.js"></script><iframe\tsrc=bare data-src="/no"><framex src="/no"><iframe/src="/slash">
        <a href="/page">x</a><iframe src="/both" href="/href"></iframe><iframe
        """.utf8)
        #expect(hrefLinks(in: html) == ["toc.html", "/menu", "bare", "/slash", "/page", "/both"])
    }

    /// The scanner works on bytes: an entity followed by a combining mark is
    /// still an entity (HTML's tokenizer reads code points; the String-based
    /// scanner compared Characters, and `;` + U+0301 is one Character), and
    /// the edge cases hold: a `>` inside a quoted value does not end the tag
    /// (HTML's tokenizer; the old scanner ended it), an unterminated quote
    /// runs to the end, `href` must be a whole attribute name, and a name
    /// without `=` is skipped.
    @Test func linksAreFoundAndDecodedOnTheBytes() {
        #expect(hrefLinks(in: Array("<a href=\"a&amp;\u{301}b&quot;\u{301}\">".utf8)) == ["a&\u{301}b\"\u{301}"])
        #expect(hrefLinks(in: Array("<a title=\"x>y\" href=\"/kept\"><b HREF='/not-a-link-tag'>".utf8)) == ["/kept"])
        #expect(hrefLinks(in: Array("<a href=\"/open".utf8)) == ["/open"])
        #expect(hrefLinks(in: Array("<a xhref=\"/no\" href /x HrEf\t=\t/yes>".utf8)) == ["/yes"])
        #expect(hrefLinks(in: Array("<a href=".utf8)) == [])
        #expect(hrefLinks(in: Array("no tags at all, href=\"/x\"".utf8)) == [])
        #expect(hrefLinks(in: Array("<a href=&amp;&lt;&gt;&#39;&#x27;&unknown;>".utf8)) == ["&<>''&unknown;"])
        #expect(hrefLinks(in: []) == [])
    }

    @Test func linksResolveOnTheirBytesAsAStringWouldResolve() throws {
        // Issue 14: the crawler resolves each href on the page's bytes
        // (forEachLink + resolveLink(bytes)) instead of a String per link.
        let base = try WebURL("http://h:81/a/b/page?q=1")
        let html = Array(("<a href=\"../x/./y\"><a href='?r=&amp;2'><a href=//o/p><a href=\"c//d/../e\">"
                          + "<a href=\"/..\"><a href=\"%2e%2E/.%2e/z\"><a href=\"mailto:m\"><a href=\"#f\">"
                          + "<a href=\"http:rel\"><a href=\"\t/t\nab\r\">").utf8) + [UInt8](#"<a href="/caf"#.utf8) + [0xE9]
            + Array("\"><a href=\"/\u{e9}\">".utf8)
        var fromBytes: [String] = []
        html.withUnsafeBytes { page in
            forEachLink(in: page) { kind, link in if kind == .follow { fromBytes.append(base.resolveLink(link).shown) } }
        }
        let fromStrings = hrefLinks(in: html).map { base.resolveLink($0).shown }
        #expect(fromBytes == fromStrings)
        #expect(fromBytes == ["h:81/a/x/y", "h:81/a/b/page?r=&2", "o:80/p", "h:81/a/b/c//e", "h:81/", "h:81/z", "ignored",
                              "ignored", "h:81/a/b/rel", "h:81/tab",
                              // A byte that is not UTF-8 is U+FFFD, as String(decoding:) makes it.
                              "h:81/caf%EF%BF%BD", "h:81/%C3%A9"])
        // Dot segments at the ends, in one pass.
        #expect(base.resolve("..")?.target == "/a/")
        #expect(base.resolve("../../../..")?.target == "/")
        #expect(base.resolve("x/..")?.target == "/a/b/")
        #expect(base.resolve("x//..")?.target == "/a/b/x/")
        #expect(base.resolve("/a/b/.")?.target == "/a/b/")
        #expect(base.resolve("/.")?.target == "/")
        #expect(base.resolve("/a/b/..?k")?.target == "/a/?k")
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

extension WebURL.Resolution {
    /// `host:port/target`, or what it is when it is not a URL.
    var shown: String {
        switch self {
        case .url(let url): "\(url.host):\(url.port)\(url.target)"
        case .ignored: "ignored"
        case .skipped(let reason): "skipped \(reason)"
        }
    }
}
