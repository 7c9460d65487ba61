import HTTP

// How the shared frontier keeps a job in Redis.
extension RedisFrontier {
    /// A job as Redis keeps it: the URL, then the redirect chain that led
    /// to it, separated by spaces (no URL has one). The first word is the
    /// URL the seen-set holds.
    static func encode(_ job: CrawlJob) -> String {
        job.chain.isEmpty ? job.url.description : ([job.url] + job.chain).map(\.description).joined(separator: " ")
    }

    /// The job `text` holds, or why it holds none: each word must be an
    /// http:// URL the crawler may send, as a link must (scheme, host,
    /// port, length).
    static func decode(_ text: String) -> Result<CrawlJob, WebURL.ParseError> {
        let parts = text.split(separator: " ")
        guard let first = parts.first else { return .failure(WebURL.ParseError(text: text, reason: "empty")) }
        do throws(WebURL.ParseError) {
            var job = CrawlJob(url: try WebURL(String(first)))
            for part in parts.dropFirst() { job.chain.append(try WebURL(String(part))) }
            return .success(job)
        } catch {
            return .failure(error)
        }
    }
}
