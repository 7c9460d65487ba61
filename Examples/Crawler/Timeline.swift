import Foundation

/// Draws the tutorial's figures from real runs, as SVG: one panel per way,
/// one lane per download, on a common time axis. A lane's bar shows how the
/// download waited (blocked in a system call, spinning, or suspended in the
/// loop while the others ran), and a tick marks each chunk's arrival.
enum Timeline {
    static func svg(_ runs: [WayRun], delay: Double?) -> String {
        let left = 150.0, right = 30.0, width = 980.0
        let laneHeight = 14.0, laneGap = 5.0, titleHeight = 20.0, panelGap = 16.0, top = 64.0
        let span = max(runs.map { $0.wallSeconds }.max() ?? 1, 0.1) * 1.02
        let scale = (width - left - right) / span
        let step = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60].first { span / $0 <= 12 } ?? 60
        let lanes = runs.map { max($0.downloads.count, 1) }
        let panelHeights = lanes.map { titleHeight + Double($0) * (laneHeight + laneGap) }
        let height = top + panelHeights.reduce(0, +) + Double(runs.count) * panelGap + 40

        var out = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" font-family="Helvetica, Arial, sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="10" y="20" font-size="15" font-weight="bold">Three poems, seven ways: when each chunk arrived\(delay.map { " (a chunk every \($0) s)" } ?? "")</text>

        """
        let legend: [(String, String)] = [(color(.blocked), "blocked in a system call"), (color(.spinning), "spinning on a non-blocking socket"),
                                          (color(.waiting), "suspended in the event loop"), ("#222", "a chunk arrives")]
        var x = 10.0
        for (fill, label) in legend {
            out += fill == "#222"
                ? "<rect x=\"\(x)\" y=\"32\" width=\"2\" height=\"12\" fill=\"\(fill)\"/>\n"
                : "<rect x=\"\(x)\" y=\"32\" width=\"14\" height=\"12\" fill=\"\(fill)\"/>\n"
            out += "<text x=\"\(x + 18)\" y=\"42\">\(label)</text>\n"
            x += 18 + Double(label.count) * 6.4 + 20
        }

        var y = top
        for (panel, run) in runs.enumerated() {
            out += "<text x=\"10\" y=\"\(y + 13)\" font-weight=\"bold\">\(run.way.rawValue)</text>"
            out += "<text x=\"\(left)\" y=\"\(y + 13)\" fill=\"#444\">\(escape(run.way.summary)): \(fixed(run.wallSeconds, 2)) s, CPU \(fixed(run.cpuSeconds, 3)) s</text>\n"
            var laneY = y + titleHeight
            for (index, download) in run.downloads.enumerated() {
                out += "<text x=\"20\" y=\"\(laneY + 11)\" fill=\"#444\">\(escape(label(index, download)))</text>"
                let start = left + (download.started - run.start) * scale
                let end = left + max(download.finished - run.start, download.started - run.start) * scale
                let failed = !run.intact(index)
                out += "<rect x=\"\(start)\" y=\"\(laneY)\" width=\"\(max(end - start, 1))\" height=\"\(laneHeight)\" fill=\"\(color(run.way.waiting))\"\(failed ? " stroke=\"#d00\" stroke-width=\"2\"" : "")/>\n"
                for chunk in download.chunks {
                    let at = left + (chunk.at - run.start) * scale
                    out += "<rect x=\"\(at - 0.75)\" y=\"\(laneY - 2)\" width=\"1.5\" height=\"\(laneHeight + 4)\" fill=\"#222\"/>"
                }
                out += "\n"
                laneY += laneHeight + laneGap
            }
            y += panelHeights[panel] + panelGap
        }
        // The common time axis.
        out += "<line x1=\"\(left)\" y1=\"\(y)\" x2=\"\(width - right)\" y2=\"\(y)\" stroke=\"#888\"/>\n"
        var tick = 0.0
        while tick <= span {
            let tx = left + tick * scale
            out += "<line x1=\"\(tx)\" y1=\"\(top - 6)\" x2=\"\(tx)\" y2=\"\(y + 4)\" stroke=\"#ddd\"/>"
            out += "<text x=\"\(tx)\" y=\"\(y + 18)\" text-anchor=\"middle\" fill=\"#444\">\(fixed(tick, step < 1 ? 1 : 0)) s</text>\n"
            tick += step
        }
        out += "</svg>\n"
        return out
    }

    static func color(_ waiting: Waiting) -> String {
        switch waiting {
        case .blocked: "#9aa5b1"
        case .spinning: "#e4572e"
        case .waiting: "#8fd5c8"
        }
    }

    static func label(_ index: Int, _ download: Download) -> String {
        "poem \(index + 1) (\(download.poem.count) B)"
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
