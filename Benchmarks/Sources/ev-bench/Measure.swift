import CBenchmarks
import EventCore
import Glibc

/// One benchmark: a name, the work it stands for, and how to run it once.
struct Benchmark {
    /// The group it belongs to: rows of one group are compared with each other.
    var group: String
    /// Who runs it: "C libev", "EV wrapper", ...
    var subject: String
    /// Operations per run, to report time per operation.
    var operations: Int
    /// Runs the work once and returns the elapsed seconds.
    var run: () -> Double
}

/// Median, min and max of repeated measurements.
struct Summary {
    var median: Double
    var min: Double
    var max: Double

    init(_ samples: [Double]) {
        let sorted = samples.sorted()
        median = sorted.count % 2 == 1
            ? sorted[sorted.count / 2]
            : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        min = sorted.first ?? 0
        max = sorted.last ?? 0
    }
}

/// Runs every benchmark `rounds` times, interleaved (round 1 of each, then
/// round 2 of each, ...), so that a slow phase of the machine hits all alike.
func measure(_ benchmarks: [Benchmark], rounds: Int, progress: (String) -> Void) -> [[Double]] {
    var samples = Array(repeating: [Double](), count: benchmarks.count)
    for round in 1...rounds {
        for (index, benchmark) in benchmarks.enumerated() {
            progress("round \(round)/\(rounds): \(benchmark.group) - \(benchmark.subject)")
            samples[index].append(benchmark.run() / Double(benchmark.operations) * 1e9)
        }
    }
    return samples
}

/// A fixed amount of pure CPU work, timed: its spread across rounds shows
/// how noisy the machine was during the run.
func machineNoiseProbe() -> Double {
    let start = cbench_now()
    var x: UInt64 = 88172645463325252
    for _ in 0..<20_000_000 {
        x ^= x << 13
        x ^= x >> 7
        x ^= x << 17
    }
    let elapsed = cbench_now() - start
    if x == 42 { print("") } // keep the work
    return elapsed
}

/// Formats `value` with `decimals` digits after the point.
func fixed(_ value: Double, _ decimals: Int) -> String {
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let rounded = (value * scale).rounded() / scale
    var text = String(rounded)
    if let dot = text.firstIndex(of: ".") {
        let have = text.distance(from: dot, to: text.endIndex) - 1
        if have < decimals { text += String(repeating: "0", count: decimals - have) }
        if decimals == 0 { text = String(text[..<dot]) }
    } else if decimals > 0 {
        text += "." + String(repeating: "0", count: decimals)
    }
    return text
}

