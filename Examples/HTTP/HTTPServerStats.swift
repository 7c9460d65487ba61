import CHTTPParser
#if canImport(Glibc)
import Glibc
#endif

/// What a server counted: the tests read it (`--stats FILE`).
public struct HTTPServerStats: Sendable, Equatable {
    /// Requests answered, by status (counted in an array: no hashing per request).
    public var responses: [Int: Int] {
        var result: [Int: Int] = [:]
        for (index, count) in byStatus.enumerated() where count > 0 { result[index + 100] = count }
        return result
    }
    private var byStatus = [Int](repeating: 0, count: 500)
    /// GETs and HEADs of the site: index 0 is `/`, K + 1 is `/page/K`.
    public var pageFetches: [Int]
    /// Connections accepted.
    public var accepted = 0
    /// Connections open now, and the most at once.
    public var open = 0
    public var peakOpen = 0

    public init(pages: Int) { pageFetches = Array(repeating: 0, count: pages + 1) }

    /// Adds another loop's counts (peaks add up: the loops ran side by side).
    public mutating func add(_ other: HTTPServerStats) {
        for index in byStatus.indices { byStatus[index] += other.byStatus[index] }
        for (index, count) in other.pageFetches.enumerated() where index < pageFetches.count { pageFetches[index] += count }
        accepted += other.accepted
        open += other.open
        peakOpen += other.peakOpen
    }

    public mutating func opened() {
        accepted += 1
        open += 1
        peakOpen = max(peakOpen, open)
    }

    public mutating func closed() { open -= 1 }

    /// Counts an answer with `status` (100...599).
    public mutating func answered(_ status: Int) { byStatus[status - 100] += 1 }

    /// As JSON: `{"accepted":..,"peakOpen":..,"responses":{"200":..},"pageFetches":[..]}`.
    public var json: String {
        let statuses = responses.keys.sorted().map { "\"\($0)\":\(responses[$0]!)" }.joined(separator: ",")
        return "{\"accepted\":\(accepted),\"open\":\(open),\"peakOpen\":\(peakOpen),\"responses\":{\(statuses)},\"pageFetches\":[\(pageFetches.map(String.init).joined(separator: ","))]}"
    }
}
