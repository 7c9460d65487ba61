// Compiled with the package trait EventLoopServices only (Trait.swift says so otherwise).
#if EventLoopServices
import EventCore
import Logging
import Metrics

/// Each loop's ``/EventCore/LoopMonitor`` reported to swift-metrics - to
/// whatever backend the app bootstrapped (Prometheus, StatsD, OpenTelemetry)
/// - every `interval`, from the loop's own thread, so that the loops pay
/// nothing per callback for it beyond the monitor's clock reads.
///
/// The metrics, each with the dimension `loop` (the loop's index in its group):
///
/// | label | kind | what |
/// |---|---|---|
/// | `loop_iterations_total` | counter | turns of the loop |
/// | `loop_blocked_seconds_total` | floating-point counter | time waiting in the kernel (libuv's idle time) |
/// | `loop_running_seconds_total` | floating-point counter | time running callbacks and task steps |
/// | `loop_utilization` | gauge | running / (running + blocked) over the last interval |
/// | `loop_delay_seconds` | gauge, with `quantile` 0.5, 0.99 and `max` | the probe timer's lateness over the last interval |
/// | `loop_slow_callbacks_total` | counter | callbacks and task steps over the threshold |
/// | `loop_queue_depth` | gauge | work waiting in the loop's executor when the report ran |
/// | `loop_queue_depth_max` | gauge | the most work one turn took from the executor's queue over the last interval |
/// | `loop_active_watchers` | gauge | watchers and timers keeping the loop running |
///
/// ```swift
/// let loops = try EventLoopGroup<Loop> { try Loop() }
/// try LoopMetrics.report(loops, options: .logging(to: logger))
/// ```
public enum LoopMetrics {
    /// Starts the monitor of each of `group`'s loops with `options` and
    /// reports it every `interval` until the group shuts down gracefully.
    ///
    /// - Parameters:
    ///   - group: the loops.
    ///   - interval: how often each loop reports (one second by default).
    ///   - options: each loop's monitor's options (a slow callback's threshold, the probe's interval).
    ///   - prefix: put before each label (`"app_"` gives `app_loop_iterations_total`).
    ///   - factory: the metrics backend; the one bootstrapped by default.
    /// - Throws: ``/EventCore/EventLoopError`` if a loop takes no more work (it is shut down).
    public static func report<L: EventLoop>(_ group: EventLoopGroup<L>, interval: Duration = .seconds(1),
                                            options: LoopMonitorOptions = LoopMonitorOptions(), prefix: String = "",
                                            factory: (any MetricsFactory)? = nil) throws(EventLoopError) {
        for (index, executor) in group.executors.enumerated() {
            try executor.execute { loop in
                let reporter = LoopMetricsReporter(loop.monitor, gauges: loop as? any LoopGauges, loop: "\(index)",
                                                   prefix: prefix, factory: factory)
                loop.monitor.start(options)
                let ticker = LoopTicker(on: loop, every: interval) { reporter.report() }
                let bound = LoopBound(ticker, loop: loop.executor)
                group.onGracefulShutdown { loop in
                    if loop.executor === bound.loop { bound.value.stop() }
                }
            }
        }
    }
}

/// One loop's reporter (loop thread only: made there, its ticker runs there).
package final class LoopMetricsReporter {
    private let monitor: LoopMonitor
    private let iterations: Counter
    private let blocked: FloatingPointCounter
    private let running: FloatingPointCounter
    private let utilization: Gauge
    private let delay: QuantileGauges
    private let slowCallbacks: Counter
    private let gauges: (any LoopGauges)?
    private let queueDepth: Gauge
    private let queuePeak: Gauge
    private let activeWatchers: Gauge
    private var last = LoopStatistics()

    package init(_ monitor: LoopMonitor, gauges: (any LoopGauges)?, loop: String, prefix: String, factory: (any MetricsFactory)?) {
        self.monitor = monitor
        self.gauges = gauges
        let dimensions = [("loop", loop)]
        func gauge(_ label: String) -> Gauge {
            factory.map { Gauge(label: prefix + label, dimensions: dimensions, factory: $0) }
                ?? Gauge(label: prefix + label, dimensions: dimensions)
        }
        queueDepth = gauge("loop_queue_depth")
        queuePeak = gauge("loop_queue_depth_max")
        activeWatchers = gauge("loop_active_watchers")
        utilization = gauge("loop_utilization")
        if let factory {
            iterations = Counter(label: prefix + "loop_iterations_total", dimensions: dimensions, factory: factory)
            blocked = FloatingPointCounter(label: prefix + "loop_blocked_seconds_total", dimensions: dimensions, factory: factory)
            running = FloatingPointCounter(label: prefix + "loop_running_seconds_total", dimensions: dimensions, factory: factory)
            slowCallbacks = Counter(label: prefix + "loop_slow_callbacks_total", dimensions: dimensions, factory: factory)
        } else {
            iterations = Counter(label: prefix + "loop_iterations_total", dimensions: dimensions)
            blocked = FloatingPointCounter(label: prefix + "loop_blocked_seconds_total", dimensions: dimensions)
            running = FloatingPointCounter(label: prefix + "loop_running_seconds_total", dimensions: dimensions)
            slowCallbacks = Counter(label: prefix + "loop_slow_callbacks_total", dimensions: dimensions)
        }
        delay = QuantileGauges(label: prefix + "loop_delay_seconds", dimensions: dimensions, factory: factory)
    }

    /// Reports what changed since the last report.
    package func report() {
        let now = monitor.statistics
        iterations.increment(by: Int64(clamping: now.iterations &- min(last.iterations, now.iterations)))
        let blockedSeconds = LoopTime.seconds(now.blocked - last.blocked)
        let runningSeconds = LoopTime.seconds(now.running - last.running)
        blocked.increment(by: max(blockedSeconds, 0))
        running.increment(by: max(runningSeconds, 0))
        let total = blockedSeconds + runningSeconds
        utilization.record(total > 0 ? runningSeconds / total : 0)
        delay.record(now.delay.since(last.delay))
        slowCallbacks.increment(by: Int64(clamping: now.slowCallbacks &- min(last.slowCallbacks, now.slowCallbacks)))
        if let gauges {
            queueDepth.record(gauges.queueDepth)
            queuePeak.record(gauges.takeQueuePeak())
            activeWatchers.record(gauges.heldWatcherCount)
        }
        last = now
    }
}

/// A ``/EventCore/LatencyHistogram``'s interval as three gauges of one
/// label, a summary's quantiles: `quantile` 0.5, 0.99 and `max` - the loops'
/// delay here, the example server's request latencies.
package struct QuantileGauges {
    private let median: Gauge
    private let p99: Gauge
    private let maximum: Gauge

    /// The gauges `label{dimensions..., quantile=...}`, made by `factory` (the bootstrapped one by default).
    package init(label: String, dimensions: [(String, String)], factory: (any MetricsFactory)? = nil) {
        func gauge(_ quantile: String) -> Gauge {
            let dimensions = dimensions + [("quantile", quantile)]
            return factory.map { Gauge(label: label, dimensions: dimensions, factory: $0) }
                ?? Gauge(label: label, dimensions: dimensions)
        }
        median = gauge("0.5")
        p99 = gauge("0.99")
        maximum = gauge("max")
    }

    /// Records `interval`'s quantiles (its samples since the last report).
    package func record(_ interval: LatencyHistogram) {
        median.record(LoopTime.seconds(interval.percentile(0.5)))
        p99.record(LoopTime.seconds(interval.percentile(0.99)))
        maximum.record(LoopTime.seconds(interval.maximum))
    }
}

extension LoopMonitorOptions {
    /// Options that log each slow callback to `logger` at `level`
    /// (`.warning` by default), as asyncio's debug mode logs "Executing
    /// <callback> took 0.123 seconds".
    public static func logging(to logger: Logger, level: Logger.Level = .warning,
                               slowCallbackThreshold: Duration = .milliseconds(100),
                               probeInterval: Duration? = .milliseconds(10)) -> LoopMonitorOptions {
        LoopMonitorOptions(slowCallbackThreshold: slowCallbackThreshold, probeInterval: probeInterval) { slow in
            logger.log(level: level, "slow callback: \(slow)",
                       metadata: ["source": "\(slow.source)", "milliseconds": "\(LoopTime.seconds(slow.duration) * 1000)"])
        }
    }
}
#endif
