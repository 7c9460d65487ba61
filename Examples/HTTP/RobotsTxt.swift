/// A robots.txt as RFC 9309 reads it, for one crawler: the rules of the
/// group that names its product token (or of the `*` group when none does),
/// and whether a URL's path may be fetched - the longest matching pattern
/// wins, an `allow` over a `disallow` of the same length; `*` matches any
/// bytes and a final `$` the end of the path. `Crawl-delay` (not in the RFC,
/// but what Bing, Yandex and Scrapy's parser read) is kept too.
///
/// Only the first ``parsedBytes`` are read (RFC 9309 §2.5: at least 500 KiB;
/// Google reads as much): a larger file costs no more memory or time.
public struct RobotsTxt: Sendable, Equatable {
    /// How much of a robots.txt is read.
    public static let parsedBytes = 512 * 1024

    /// One `allow` or `disallow` line of the group.
    struct Rule: Sendable, Equatable {
        let allow: Bool
        let pattern: [UInt8]
    }

    private(set) var rules: [Rule] = []
    /// The group's `Crawl-delay`, in seconds, if it gave a valid one.
    public private(set) var crawlDelay: Double?

    /// Every path allowed (no robots.txt, or one that says nothing to this crawler).
    public static let allowAll = RobotsTxt()
    /// Every path disallowed (a robots.txt that cannot be read for now: RFC 9309 §2.3.1.4).
    public static let disallowAll: RobotsTxt = {
        var robots = RobotsTxt()
        robots.rules = [Rule(allow: false, pattern: Array("/".utf8))]
        return robots
    }()

    private init() {}

    /// The rules `text` gives the crawler whose product token is `agent`
    /// (`swift-libev-crawler`: matched without regard to case).
    public init(parsing text: [UInt8], agent: String) {
        let agent = Array(agent.lowercased().utf8)
        var mine: [Rule] = [], anyone: [Rule] = []
        var mineDelay: Double?, anyoneDelay: Double?
        var foundMine = false, foundAnyone = false
        // The group being read: whether it names this crawler, or `*`.
        var groupIsMine = false, groupIsAnyone = false
        var inAgentLines = false
        let end = min(text.count, Self.parsedBytes)
        var start = 0
        while start < end {
            var lineEnd = start
            while lineEnd < end && text[lineEnd] != 0x0a && text[lineEnd] != 0x0d { lineEnd += 1 }
            defer { start = lineEnd + 1 }
            var line = text[start..<lineEnd]
            if let hash = line.firstIndex(of: UInt8(ascii: "#")) { line = line[..<hash] }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { continue }
            let key = String(decoding: Self.trim(line[..<colon]), as: UTF8.self).lowercased()
            let value = Self.trim(line[(colon + 1)...])
            switch key {
            case "user-agent", "useragent", "user agent":
                if !inAgentLines { groupIsMine = false; groupIsAnyone = false }
                inAgentLines = true
                // The product token: the value up to a space or a slash ("Bot/1.0").
                let token = Array(value.prefix { $0 != 0x20 && $0 != 0x09 && $0 != UInt8(ascii: "/") }).map { $0 | ($0 >= 0x41 && $0 <= 0x5a ? 0x20 : 0) }
                if token == agent { groupIsMine = true; foundMine = true }
                if token == [UInt8(ascii: "*")] { groupIsAnyone = true; foundAnyone = true }
            case "allow", "disallow":
                inAgentLines = false
                guard !value.isEmpty else { continue } // "Disallow:" alone disallows nothing
                let rule = Rule(allow: key == "allow", pattern: Array(value))
                if groupIsMine { mine.append(rule) }
                if groupIsAnyone { anyone.append(rule) }
            case "crawl-delay":
                inAgentLines = false
                guard let seconds = Double(String(decoding: value, as: UTF8.self)), seconds.isFinite, seconds >= 0 else { continue }
                if groupIsMine { mineDelay = seconds }
                if groupIsAnyone { anyoneDelay = seconds }
            default:
                inAgentLines = false // sitemap and other records end the user-agent lines
            }
        }
        if foundMine {
            rules = mine
            crawlDelay = mineDelay
        } else if foundAnyone {
            rules = anyone
            crawlDelay = anyoneDelay
        }
    }

    /// Whether the crawler may fetch `target` (a path and query, from `/`).
    /// `/robots.txt` itself always may be.
    public func allows(_ target: String) -> Bool {
        if target == "/robots.txt" { return true }
        var best: Rule?
        let path = Array(target.utf8)
        for rule in rules where Self.matches(rule.pattern, path) {
            if let current = best {
                if rule.pattern.count > current.pattern.count || (rule.pattern.count == current.pattern.count && rule.allow) {
                    best = rule
                }
            } else {
                best = rule
            }
        }
        return best?.allow ?? true
    }

    /// Whether `pattern` matches the start of `path` (all of it with a final
    /// `$`), `*` standing for any bytes: a glob match, backtracking to the
    /// last star only (linear in the sizes times the stars, never exponential).
    static func matches(_ pattern: [UInt8], _ path: [UInt8]) -> Bool {
        var pattern = pattern[...]
        var anchored = false
        if pattern.last == UInt8(ascii: "$") {
            anchored = true
            pattern = pattern.dropLast()
        }
        var p = pattern.startIndex, s = 0
        var star: Int?, starS = 0
        while s < path.count {
            if p < pattern.endIndex && pattern[p] == UInt8(ascii: "*") {
                star = p
                p += 1
                starS = s
            } else if p < pattern.endIndex && pattern[p] == path[s] {
                p += 1
                s += 1
            } else if p == pattern.endIndex && !anchored {
                return true // a prefix match
            } else if let star {
                p = star + 1
                starS += 1
                s = starS
            } else {
                return false
            }
        }
        while p < pattern.endIndex && pattern[p] == UInt8(ascii: "*") { p += 1 }
        return p == pattern.endIndex
    }

    private static func trim(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var bytes = bytes
        while let first = bytes.first, first == 0x20 || first == 0x09 { bytes.removeFirst() }
        while let last = bytes.last, last == 0x20 || last == 0x09 { bytes.removeLast() }
        return bytes
    }
}
