import EventCore
import Foundation
import Web

extension CrawlReport {
    /// The summary `crawler web` prints at the end.
    var summary: String {
        var lines = ["crawled \(pages) pages, \(bytes) bytes, in \(fixed(wallSeconds, 3)) s (\(Int(pagesPerSecond.rounded())) pages/s); \(redirects) redirects, \(connections) connections, \(retries) retries"]
        if errors.isEmpty {
            lines.append("no errors")
        } else {
            lines.append("\(errorCount) errors: " + errors.keys.sorted().map { "\($0) \(errors[$0]!)" }.joined(separator: ", "))
            for failure in failures.prefix(20) { lines.append("  \(failure.url): \(failure.reason)") }
            if failures.count > 20 { lines.append("  ... and \(failures.count - 20) more") }
        }
        if let crawlPages {
            lines.append("the shared crawl: \(crawlPages) pages by every process; \(frontierCommands ?? 0) Redis commands from this one")
        }
        if let frontierError {
            lines.append("the crawl did not finish: \(frontierError)")
        }
        if !skipped.isEmpty {
            lines.append("\(skipped.values.reduce(0, +)) links skipped: " + skipped.keys.sorted().map { "\($0) \(skipped[$0]!)" }.joined(separator: ", "))
        }
        return lines.joined(separator: "\n")
    }

    /// The same as JSON (`--json`), for scripts and tests.
    var json: String {
        var report: [String: Any] = [
            "pages": pages, "bytes": bytes, "redirects": redirects, "connections": connections, "retries": retries,
            "wallSeconds": (wallSeconds * 1000).rounded() / 1000,
            "errors": errors,
            "skipped": skipped,
            "failures": failures.map { ["url": $0.url, "reason": $0.reason] },
        ]
        if let crawlPages { report["crawlPages"] = crawlPages }
        if let frontierCommands { report["frontierCommands"] = frontierCommands }
        if let frontierError { report["frontierError"] = frontierError }
        if let loop {
            func seconds(_ duration: Duration) -> Double { (LoopTime.seconds(duration) * 1e6).rounded() / 1e6 }
            report["loop"] = [
                "iterations": loop.iterations, "blockedSeconds": seconds(loop.blocked), "runningSeconds": seconds(loop.running),
                "utilization": (loop.utilization * 1000).rounded() / 1000, "slowCallbacks": loop.slowCallbacks,
                "delaySeconds": ["p50": seconds(loop.delay.percentile(0.5)), "p99": seconds(loop.delay.percentile(0.99)),
                                 "max": seconds(loop.delay.maximum), "samples": loop.delay.count],
            ] as [String: Any]
        }
        let data = try! JSONSerialization.data(withJSONObject: report, options: [.sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }
}
