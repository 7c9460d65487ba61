import EventCore
import Foundation
import SlowPoetry

/// One way's run: its downloads, wall and CPU time, and the floor it should reach.
struct WayRun {
    let way: Way
    let downloads: [Download]
    let wallSeconds: Double
    let cpuSeconds: Double
    let floorSeconds: Double
    /// When the way started, on the monotonic clock: the timeline's zero.
    let start: Double

    var checks: [PoemCheck] { downloads.map { PoemCheck.of($0.poem) } }

    /// Whether every poem arrived whole and no download failed.
    var allIntact: Bool {
        zip(downloads, checks).allSatisfy { download, check in
            download.error == nil && { if case .cutShort = check { return false } else { return true } }()
        }
    }

    /// Whether a built-in poem could be checked, and was intact.
    func intact(_ index: Int) -> Bool {
        guard downloads[index].error == nil else { return false }
        switch checks[index] {
        case .intact, .unknown: return true
        case .cutShort: return false
        }
    }
}

/// Prints every way's lines the same way.
enum Report {
    /// The classic get-poetry client's lines: one per task, then the total.
    static func classic(_ run: WayRun) {
        for (index, download) in run.downloads.enumerated() {
            let number = index + 1
            if let error = download.error {
                print("Task \(number): failed after \(download.poem.count) bytes from \(download.address): \(error)")
            } else if case .cutShort(_, let received, let expected) = run.checks[index] {
                print("Task \(number): got \(received) bytes of poetry from \(download.address), cut short (the poem has \(expected))")
            } else {
                print("Task \(number): got \(download.poem.count) bytes of poetry from \(download.address)")
            }
        }
        let ok = run.downloads.indices.filter { run.intact($0) }.count
        print("Got \(ok) poems in \(timedelta(run.wallSeconds))")
    }

    /// The comparison table of `--way all`.
    static func table(_ runs: [WayRun], delay: Double?) {
        if let delay { print("Three slow poetry servers (3003, 615, 653 bytes in chunks of 200, 50, 50), a chunk every \(delay) s.\n") }
        let header = ["way", "how", "wall s", "CPU s", "floor s", "wall / floor", "poems intact"]
        var rows: [[String]] = []
        for run in runs {
            let intact = run.downloads.indices.filter { run.intact($0) }.count
            rows.append([run.way.rawValue, run.way.summary, fixed(run.wallSeconds, 2), fixed(run.cpuSeconds, 3),
                         fixed(run.floorSeconds, 2), fixed(run.wallSeconds / max(run.floorSeconds, 1e-9), 3),
                         "\(intact)/\(run.downloads.count)\(run.allIntact ? "" : " !")"])
        }
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max()! }
        func line(_ cells: [String]) -> String {
            "| " + cells.enumerated().map { index, cell in
                index <= 1 ? cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
                           : String(repeating: " ", count: widths[index] - cell.count) + cell
            }.joined(separator: " | ") + " |"
        }
        print(line(header))
        print("|" + widths.enumerated().map { index, width in index <= 1 ? String(repeating: "-", count: width + 2) : String(repeating: "-", count: width + 1) + ":" }.joined(separator: "|") + "|")
        for row in rows { print(line(row)) }
        for run in runs {
            for (index, download) in run.downloads.enumerated() where !run.intact(index) {
                print("\(run.way.rawValue): task \(index + 1) (\(download.address)): "
                      + (download.error.map { "failed after \(download.poem.count) bytes: \($0)" } ?? "cut short after \(download.poem.count) bytes"))
            }
        }
    }

    /// The same as JSON, for scripts.
    static func json(_ runs: [WayRun]) -> String {
        let ways: [[String: Any]] = runs.map { run in
            [
                "way": run.way.rawValue,
                "wallSeconds": run.wallSeconds,
                "cpuSeconds": run.cpuSeconds,
                "floorSeconds": run.floorSeconds,
                "poems": run.downloads.enumerated().map { index, download in
                    var poem: [String: Any] = ["address": download.address.description, "bytes": download.poem.count, "intact": run.intact(index)]
                    if let error = download.error { poem["error"] = error.description }
                    return poem
                },
            ]
        }
        let data = try! JSONSerialization.data(withJSONObject: ["ways": ways], options: [.sortedKeys, .prettyPrinted])
        return String(decoding: data, as: UTF8.self)
    }

    /// `H:MM:SS.ffffff`, as Python prints a timedelta (the classic client's total).
    static func timedelta(_ seconds: Double) -> String {
        let whole = Int(seconds)
        let micro = Int(((seconds - Double(whole)) * 1e6).rounded())
        return String(format: "%d:%02d:%02d.%06d", whole / 3600, whole / 60 % 60, whole % 60, micro)
    }
}

func fixed(_ value: Double, _ decimals: Int) -> String {
    String(format: "%.\(decimals)f", value)
}
