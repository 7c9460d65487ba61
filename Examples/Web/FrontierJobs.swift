import HTTP

// How the shared frontier keeps a job in Redis.
extension RedisFrontier {
    /// A job as Redis keeps it: the URL, then the redirect chain that led
    /// to it, then `depth=N` and `from=URL` (the referrer) when it has
    /// them, separated by spaces (no URL has one). The first word is the URL
    /// the seen-set holds.
    static func encode(_ job: CrawlJob) -> String {
        var words = ([job.url] + job.chain).map(\.description)
        if job.depth > 0 { words.append("depth=\(job.depth)") }
        if let referrer = job.referrer { words.append("from=\(referrer)") }
        return words.joined(separator: " ")
    }

    /// The job `text` holds, or why it holds none: each URL must be an
    /// http:// or https:// URL the crawler may send, as a link must (scheme,
    /// host, port, length); a depth a number up to a million.
    static func decode(_ text: String) -> Result<CrawlJob, WebURL.ParseError> {
        let parts = text.split(separator: " ")
        guard let first = parts.first else { return .failure(WebURL.ParseError(text: text, reason: "empty")) }
        do throws(WebURL.ParseError) {
            var job = CrawlJob(url: try WebURL(String(first)))
            for part in parts.dropFirst() {
                if part.hasPrefix("depth=") {
                    guard let depth = Int(part.dropFirst(6)), (0...1_000_000).contains(depth) else {
                        throw WebURL.ParseError(text: String(part.prefix(100)), reason: "not a depth")
                    }
                    job.depth = depth
                } else if part.hasPrefix("from=") {
                    job.referrer = try WebURL(String(part.dropFirst(5)))
                } else {
                    job.chain.append(try WebURL(String(part)))
                }
            }
            return .success(job)
        } catch {
            return .failure(error)
        }
    }
}
