import Foundation
import HTTP
import TestSupport
import Testing

/// Issue "TLS on the loop", 3: what the crawler needs to be let near a
/// real site - robots.txt as RFC 9309 reads it, and bodies in gzip or
/// deflate decoded with a cap.
@Suite("robots.txt and content decoding")
struct PoliteCrawlingTests {
    private func robots(_ text: String, agent: String = "swift-libev-crawler") -> RobotsTxt {
        RobotsTxt(parsing: Array(text.utf8), agent: agent)
    }

    @Test func theGroupOfTheCrawlersTokenWinsOverStarAndGroupsMerge() {
        let text = """
        # comments and blank lines are nothing
        User-agent: *
        Disallow: /

        User-agent: Swift-Libev-Crawler/2.0   # the token, any case, before a slash
        user-agent: other-bot
        Disallow: /private
        Crawl-delay: 1.5

        User-agent: swift-libev-crawler
        Allow: /private/open
        """
        let mine = robots(text)
        #expect(mine.allows("/") && mine.allows("/page"))
        #expect(!mine.allows("/private") && !mine.allows("/private/x"))
        #expect(mine.allows("/private/open/x"), "two groups for one token merge (RFC 9309 §2.2.1)")
        #expect(mine.crawlDelay == 1.5)
        let someoneElse = robots(text, agent: "nobody")
        #expect(!someoneElse.allows("/page") && someoneElse.allows("/robots.txt"))
        #expect(robots("User-agent: other\nDisallow: /\n").allows("/x"), "no group for us and no *: all allowed")
        #expect(robots("").allows("/x") && robots("Disallow: /\n").allows("/x"), "rules outside a group count for no one")
    }

    @Test func theLongestMatchWinsAllowOnATieAndWildcardsAndEndsMatch() {
        let rules = robots("""
        User-agent: *
        Disallow: /a
        Allow: /a/b
        Disallow: /a/b/c
        Disallow: /*.pdf$
        Allow: /x
        Disallow: /x
        Disallow: /shop*/cart
        Disallow:
        """)
        #expect(!rules.allows("/a") && !rules.allows("/a/z"))
        #expect(rules.allows("/a/b") && rules.allows("/a/b/z"))
        #expect(!rules.allows("/a/b/c") && !rules.allows("/a/b/cd"))
        #expect(!rules.allows("/doc/file.pdf") && rules.allows("/doc/file.pdf?x=1") && rules.allows("/file.pdfx"))
        #expect(rules.allows("/x"), "an allow and a disallow of one length: the allow")
        #expect(!rules.allows("/shop/cart") && !rules.allows("/shopping/cart/1") && rules.allows("/shop/list"))
        #expect(RobotsTxt.disallowAll.allows("/robots.txt") && !RobotsTxt.disallowAll.allows("/"))
    }

    @Test func aHugeOrHostileRobotsTxtCostsBoundedTime() {
        // 100 MB of rules is read up to the first 512 KiB only.
        var text = [UInt8]("User-agent: *\nDisallow: /early\n".utf8)
        text += [UInt8](repeating: UInt8(ascii: "x"), count: RobotsTxt.parsedBytes)
        text += Array("\nDisallow: /\n".utf8)
        let rules = RobotsTxt(parsing: text, agent: "bot")
        #expect(!rules.allows("/early") && rules.allows("/late"))
        // A pattern of stars against a long path: no exponential backtracking.
        let stars = robots("User-agent: *\nDisallow: /" + String(repeating: "*a", count: 2000) + "b$\n")
        let start = Date()
        #expect(stars.allows("/" + String(repeating: "a", count: 4000)))
        #expect(Date().timeIntervalSince(start) < 5)
        #expect(robots("User-agent: *\nCrawl-delay: soon\nCrawl-delay: -1\n").crawlDelay == nil)
    }

    /// Runs `command` with /bin/sh and returns its standard output, byte for
    /// byte. (posix_spawn through TestSupport, not Foundation's `Process`:
    /// under AddressSanitizer that one leaks a weak-reference side table
    /// made in `run()` now and then, and `make test-asan` fails on the leak.)
    private func shell(_ command: String) throws -> [UInt8] {
        let output = try runProcess("/bin/sh", ["-c", command])
        try #require(output.exitCode == 0, "\(command): \(output)")
        return output.standardOutputBytes
    }

    @Test func gzipDeflateAndRawDeflateAreDecoded() throws {
        let text = Array("<a href=/x>hello</a>".utf8)
        // Made by the real tools: gzip(1), Python's zlib.
        let gzipped = try shell("printf '<a href=/x>hello</a>' | gzip -c")
        #expect(try ContentDecoding.decode(gzipped, contentEncoding: "gzip", limit: 1000) == text)
        #expect(try ContentDecoding.decode(gzipped + gzipped, contentEncoding: "x-gzip", limit: 1000) == text + text,
                "gzip members one after another")
        let zlibbed = try shell("python3 -c \"import sys,zlib; sys.stdout.buffer.write(zlib.compress(b'<a href=/x>hello</a>'))\"")
        #expect(try ContentDecoding.decode(zlibbed, contentEncoding: "deflate", limit: 1000) == text)
        let raw = try shell("python3 -c \"import sys,zlib; c=zlib.compressobj(6,zlib.DEFLATED,-15); sys.stdout.buffer.write(c.compress(b'<a href=/x>hello</a>')+c.flush())\"")
        #expect(try ContentDecoding.decode(raw, contentEncoding: "Deflate", limit: 1000) == text)
        #expect(try ContentDecoding.decode(text, contentEncoding: nil, limit: 1) == text)
        #expect(try ContentDecoding.decode(text, contentEncoding: "identity", limit: 1) == text)
        let twice = try ContentDecoding.decode(try shell("printf '<a href=/x>hello</a>' | gzip -c | gzip -c"),
                                               contentEncoding: "gzip, gzip", limit: 1000)
        #expect(twice == text)
    }

    @Test func aBombACorruptBodyAndAnUnknownCodingFailByName() throws {
        // 64 MiB of zeros in about 64 KiB: over an 8 MiB limit, refused
        // without holding more than the limit.
        let bomb = try shell("head -c 67108864 /dev/zero | gzip -9 -c")
        #expect(bomb.count < 200_000)
        let tooLarge = #expect(throws: ContentDecoding.Failure.self) {
            _ = try ContentDecoding.decode(bomb, contentEncoding: "gzip", limit: 8 << 20)
        }
        #expect(tooLarge?.kind == .tooLarge && tooLarge?.reason.contains("larger than 8388608 bytes") == true)
        let cut = #expect(throws: ContentDecoding.Failure.self) {
            _ = try ContentDecoding.decode(Array(bomb.prefix(1000)), contentEncoding: "gzip", limit: 8 << 20)
        }
        #expect(cut?.kind == .corrupt, "\(String(describing: cut))")
        let garbage = #expect(throws: ContentDecoding.Failure.self) {
            _ = try ContentDecoding.decode(Array("not gzip at all".utf8), contentEncoding: "gzip", limit: 1000)
        }
        #expect(garbage?.kind == .corrupt && garbage?.reason.contains("gzip") == true)
        let brotli = #expect(throws: ContentDecoding.Failure.self) {
            _ = try ContentDecoding.decode([1, 2, 3], contentEncoding: "br", limit: 1000)
        }
        #expect(brotli?.kind == .unsupported && brotli?.reason.contains("\"br\"") == true)
        #expect(throws: ContentDecoding.Failure.self) {
            _ = try ContentDecoding.decode([1], contentEncoding: "gzip,gzip,gzip,gzip,gzip", limit: 1000)
        }
    }
}
