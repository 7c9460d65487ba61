#if canImport(Glibc)
import Glibc
#endif

/// What a loop has been doing, measured while its ``LoopMonitor`` is on:
/// libuv's idle time, Node's `monitorEventLoopDelay` and asyncio's debug
/// mode in one place.
public struct LoopStatistics: Sendable, Equatable {
    /// Turns of the loop: each wait in the kernel and what ran after it.
    public var iterations: UInt64 = 0
    /// The time spent waiting in the kernel for readiness, a timer or a
    /// wake-up (libuv's idle time): a loop that is mostly blocked has room.
    public var blocked: Duration = .zero
    /// The time spent running callbacks, timers and task steps: a loop that
    /// is mostly running is saturated, and its timers run late.
    public var running: Duration = .zero
    /// How late the monitor's probe timer ran, each time it ran: the delay
    /// anything ready waits for the loop (Node's `monitorEventLoopDelay`).
    public var delay = LatencyHistogram()
    /// Callbacks and task steps that held the loop longer than the
    /// threshold (``LoopMonitorOptions/slowCallbackThreshold``).
    public var slowCallbacks: UInt64 = 0

    /// The statistics of a loop that has not run yet.
    public init() {}

    /// The share of the measured time the loop was running (0 to 1): its load.
    public var utilization: Double {
        let total = blocked + running
        return total == .zero ? 0 : running / total
    }
}

/// A histogram of durations in fixed buckets, from 2.5 µs to 10 s, with one
/// for anything longer: a loop's delays (``LoopStatistics/delay``), a
/// server's request latencies. Adding a sample allocates nothing.
public struct LatencyHistogram: Sendable, Equatable {
    /// The buckets' upper bounds; the last bucket (past the last bound) has none.
    public static let bounds: [Duration] = [
        .nanoseconds(2500), .microseconds(5), .microseconds(10), .microseconds(25), .microseconds(50),
        .microseconds(100), .microseconds(250), .microseconds(500),
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
    ]

    /// The samples in each bucket: `counts[i]` holds those at most
    /// `bounds[i]` (and over the bound before); the last, those over every bound.
    public private(set) var counts = [UInt64](repeating: 0, count: bounds.count + 1)
    /// The samples taken.
    public private(set) var count: UInt64 = 0
    /// Their sum.
    public private(set) var sum: Duration = .zero
    /// The largest.
    public private(set) var maximum: Duration = .zero

    /// An empty histogram.
    public init() {}

    /// Adds one duration (a negative one counts as zero).
    public mutating func record(_ duration: Duration) {
        let duration = max(duration, .zero)
        var index = 0
        while index < Self.bounds.count && duration > Self.bounds[index] { index += 1 }
        counts[index] += 1
        count += 1
        sum += duration
        maximum = max(maximum, duration)
    }

    /// The samples taken since `earlier`, a snapshot of this histogram:
    /// what a reporter exports for one interval. Its maximum is the bound
    /// of the highest bucket that grew (this histogram's maximum for the
    /// last bucket, or when that is smaller).
    public func since(_ earlier: LatencyHistogram) -> LatencyHistogram {
        var interval = LatencyHistogram()
        for index in counts.indices {
            interval.counts[index] = counts[index] &- min(earlier.counts[index], counts[index])
        }
        interval.count = count &- min(earlier.count, count)
        interval.sum = max(sum - earlier.sum, .zero)
        if let top = interval.counts.lastIndex(where: { $0 > 0 }) {
            interval.maximum = top < Self.bounds.count ? min(Self.bounds[top], maximum) : maximum
        }
        return interval
    }

    /// The mean duration (zero without samples).
    public var mean: Duration { count == 0 ? .zero : sum / Int(count) }

    /// The duration that `fraction` (0 to 1) of the samples are at most, as
    /// the upper bound of its bucket (the maximum for the last bucket, or
    /// when that is smaller): `percentile(0.99)` is p99.
    public func percentile(_ fraction: Double) -> Duration {
        guard count > 0 else { return .zero }
        let wanted = UInt64((min(max(fraction, 0), 1) * Double(count)).rounded(.up))
        var seen: UInt64 = 0
        for (index, bucket) in counts.enumerated() {
            seen += bucket
            if seen >= max(wanted, 1) {
                return index < Self.bounds.count ? min(Self.bounds[index], maximum) : maximum
            }
        }
        return maximum
    }
}

/// A callback or a task step that held the loop longer than the threshold.
public struct SlowCallback: Sendable, CustomStringConvertible {
    /// What ran: the watcher (its kind and what it watches), a timer, or a task step.
    public let source: String
    /// How long it ran.
    public let duration: Duration

    /// asyncio's words: "Executing <what> took 0.123 seconds".
    public var description: String {
        "\(source) held the loop for \(Self.milliseconds(duration)) ms"
    }

    static func milliseconds(_ duration: Duration) -> String {
        let value = LoopTime.seconds(duration) * 1000
        return value >= 100 ? String(Int(value.rounded())) : String(Double(Int((value * 10).rounded())) / 10)
    }
}

/// What a loop's monitor measures and whom it tells.
public struct LoopMonitorOptions: Sendable {
    /// A callback or task step that runs longer is reported (asyncio's
    /// `slow_callback_duration`, 100 ms by default).
    public var slowCallbackThreshold: Duration = .milliseconds(100)
    /// How often the probe timer runs to measure the loop's delay (Node's
    /// `resolution`, 10 ms by default); nil: no probe, no delay histogram.
    public var probeInterval: Duration? = .milliseconds(10)
    /// Called on the loop's thread with each slow callback, after it returned
    /// (nothing by default; the count is in ``LoopStatistics/slowCallbacks``).
    public var onSlowCallback: (@Sendable (SlowCallback) -> Void)?

    /// The defaults: 100 ms, a probe every 10 ms, no reporting.
    public init(slowCallbackThreshold: Duration = .milliseconds(100), probeInterval: Duration? = .milliseconds(10),
                onSlowCallback: (@Sendable (SlowCallback) -> Void)? = nil) {
        self.slowCallbackThreshold = slowCallbackThreshold
        self.probeInterval = probeInterval
        self.onSlowCallback = onSlowCallback
    }
}

/// A loop's view of itself: how much it waits and runs, how late its
/// timers are, and which callback held it - off until ``start(_:)``, at
/// the cost of a branch per callback while off, and of two clock reads
/// per callback and turn while on.
///
/// Each loop has one (``EventLoop/monitor``), used on the loop's thread:
///
/// ```swift
/// loop.monitor.start(LoopMonitorOptions(onSlowCallback: { print($0) }))
/// // ... later, on the loop's thread:
/// let statistics = loop.monitor.statistics
/// print(statistics.utilization, statistics.delay.percentile(0.99))
/// ```
public final class LoopMonitor {
    /// Whether it measures (between ``start(_:)`` and ``stop()``).
    public private(set) var isOn = false
    /// The options it was started with.
    public private(set) var options = LoopMonitorOptions()
    private var measured = LoopStatistics()
    /// The loop's life: its thread check.
    private let lifecycle: LoopLifecycle
    /// Starts the probe: a timer that ticks every interval and does not keep
    /// the loop running (nil: the loop is gone).
    private let startProbe: (Duration, @escaping () -> Void) -> (any Cancellable)?
    private var probe: (any Cancellable)?
    /// When the loop last woke (nanoseconds, monotonic), or 0.
    private var wokeAt: UInt64 = 0
    /// When the loop last began to wait, or 0.
    private var blockedAt: UInt64 = 0
    /// The depth of measured callbacks running (a callback that runs the
    /// loop's work itself is measured once, as the outermost).
    private var depth = 0

    /// A monitor for the loop of `lifecycle`, which starts its probe with
    /// `startProbe` (a repeating timer that keeps no loop running).
    package init(_ lifecycle: LoopLifecycle, startProbe: @escaping (Duration, @escaping () -> Void) -> (any Cancellable)?) {
        self.lifecycle = lifecycle
        self.startProbe = startProbe
    }

    deinit { probe?.cancel() }

    /// Starts measuring with `options`, from zero.
    ///
    /// - Precondition: called on the loop's thread.
    public func start(_ options: LoopMonitorOptions = LoopMonitorOptions()) {
        lifecycle.checkThread("LoopMonitor.start(_:)")
        stop()
        self.options = options
        measured = LoopStatistics()
        wokeAt = lifecycle.isRunning ? Self.now() : 0 // started inside a callback: its turn is running
        blockedAt = 0
        isOn = true
        if let interval = options.probeInterval, interval > .zero { probeEvery(interval) }
    }

    /// Stops measuring; the statistics stay as they were.
    ///
    /// - Precondition: called on the loop's thread.
    public func stop() {
        lifecycle.checkThread("LoopMonitor.stop()")
        isOn = false
        probe?.cancel()
        probe = nil
    }

    /// What was measured since ``start(_:)``, up to now (a turn in
    /// progress - read from a callback - counted as running).
    ///
    /// - Precondition: called on the loop's thread.
    public var statistics: LoopStatistics {
        lifecycle.checkThread("LoopMonitor.statistics")
        var snapshot = measured
        if isOn && wokeAt != 0 && blockedAt == 0 {
            snapshot.running += .nanoseconds(Int64(Self.now() &- wokeAt))
        }
        return snapshot
    }

    /// Each tick of the probe was due `interval` after the one before (or
    /// the start): how much later it ran is the loop's delay (Node's way).
    private func probeEvery(_ interval: Duration) {
        let nanoseconds = Int64(LoopTime.seconds(interval) * 1e9)
        var last = Self.now()
        probe = startProbe(interval) { [weak self] in
            guard let self, isOn else { return }
            let now = Self.now()
            measured.delay.record(.nanoseconds(Int64(bitPattern: now &- last) - nanoseconds))
            last = now
        }
    }

    // MARK: the loops' hooks

    /// The loop's outermost run begins: running from now.
    package func runStarted() {
        guard isOn else { return }
        wokeAt = Self.now()
        blockedAt = 0
    }

    /// The loop's outermost run returned: neither running nor blocked until the next.
    package func runEnded() {
        guard isOn else { return }
        if wokeAt != 0 { measured.running += .nanoseconds(Int64(Self.now() &- wokeAt)) }
        wokeAt = 0
        blockedAt = 0
    }

    /// The loop is about to wait in the kernel.
    @inline(__always)
    package func willBlock() {
        guard isOn else { return }
        let now = Self.now()
        if wokeAt != 0 { measured.running += .nanoseconds(Int64(now &- wokeAt)) }
        blockedAt = now
    }

    /// The loop's wait in the kernel is over: a turn begins.
    @inline(__always)
    package func didWake() {
        guard isOn else { return }
        let now = Self.now()
        if blockedAt != 0 { measured.blocked += .nanoseconds(Int64(now &- blockedAt)) }
        blockedAt = 0
        wokeAt = now
        measured.iterations += 1
    }

    /// Runs `body` measured by `monitor` when there is one and it is on,
    /// unmeasured otherwise: what every loop does with each callback, job
    /// and task step (a loop whose monitor was never made pays one nil test).
    @inline(__always)
    package static func measure<T>(_ monitor: LoopMonitor?, _ source: @autoclosure () -> String,
                                   _ body: () throws -> T) rethrows -> T {
        if let monitor, monitor.isOn { return try monitor.measure(source(), body) }
        return try body()
    }

    /// Runs `body`, a callback or a task step, and reports it if it held
    /// the loop longer than the threshold, named by `source`.
    @inline(__always)
    package func measure<T>(_ source: @autoclosure () -> String, _ body: () throws -> T) rethrows -> T {
        let started = beginMeasuring()
        guard started != 0 else { return try body() }
        defer { endMeasuring(started, source()) }
        return try body()
    }

    /// The start of a measured callback for ``endMeasuring(_:_:)``, or 0
    /// when the monitor is off or a measured callback is running already
    /// (for a caller that cannot wrap the callback in a closure).
    package func beginMeasuring() -> UInt64 {
        guard isOn && depth == 0 else { return 0 }
        depth += 1
        return Self.now()
    }

    /// The end of the callback ``beginMeasuring()`` began (when it returned non-zero).
    package func endMeasuring(_ started: UInt64, _ source: @autoclosure () -> String) {
        depth -= 1
        let took = Duration.nanoseconds(Int64(Self.now() &- started))
        if took > options.slowCallbackThreshold {
            measured.slowCallbacks += 1
            options.onSlowCallback?(SlowCallback(source: source(), duration: took))
        }
    }

    @inline(__always)
    static func now() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
    }
}

/// What a loop's metrics reporter reads besides its monitor: its executor's
/// queue and the watchers that keep it running (loop thread only).
package protocol LoopGauges: AnyObject {
    /// Watchers and timers that keep the loop running.
    var heldWatcherCount: Int { get }
    /// Work waiting in the executor's queue now.
    var queueDepth: Int { get }
    /// The most work one turn took from the queue since the last call.
    func takeQueuePeak() -> Int
}

extension EventLoop where Executor == LoopExecutorCore<Self> {
    /// Work waiting in the executor's queue now (loop thread).
    package var queueDepth: Int { executor.queueDepth }

    /// The most work one turn took from the executor's queue since the last call (loop thread).
    package func takeQueuePeak() -> Int { executor.takeQueuePeak() }
}
