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
                let reporter = LoopMetricsReporter(loop.monitor, loop: "\(index)", prefix: prefix, factory: factory)
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
    private let delayMedian: Gauge
    private let delayP99: Gauge
    private let delayMaximum: Gauge
    private let slowCallbacks: Counter
    private var last = LoopStatistics()

    package init(_ monitor: LoopMonitor, loop: String, prefix: String, factory: (any MetricsFactory)?) {
        self.monitor = monitor
        let dimensions = [("loop", loop)]
        func delay(_ quantile: String) -> Gauge {
            let dimensions = dimensions + [("quantile", quantile)]
            return factory.map { Gauge(label: prefix + "loop_delay_seconds", dimensions: dimensions, factory: $0) }
                ?? Gauge(label: prefix + "loop_delay_seconds", dimensions: dimensions)
        }
        if let factory {
            iterations = Counter(label: prefix + "loop_iterations_total", dimensions: dimensions, factory: factory)
            blocked = FloatingPointCounter(label: prefix + "loop_blocked_seconds_total", dimensions: dimensions, factory: factory)
            running = FloatingPointCounter(label: prefix + "loop_running_seconds_total", dimensions: dimensions, factory: factory)
            utilization = Gauge(label: prefix + "loop_utilization", dimensions: dimensions, factory: factory)
            slowCallbacks = Counter(label: prefix + "loop_slow_callbacks_total", dimensions: dimensions, factory: factory)
        } else {
            iterations = Counter(label: prefix + "loop_iterations_total", dimensions: dimensions)
            blocked = FloatingPointCounter(label: prefix + "loop_blocked_seconds_total", dimensions: dimensions)
            running = FloatingPointCounter(label: prefix + "loop_running_seconds_total", dimensions: dimensions)
            utilization = Gauge(label: prefix + "loop_utilization", dimensions: dimensions)
            slowCallbacks = Counter(label: prefix + "loop_slow_callbacks_total", dimensions: dimensions)
        }
        delayMedian = delay("0.5")
        delayP99 = delay("0.99")
        delayMaximum = delay("max")
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
        let delay = now.delay.since(last.delay)
        delayMedian.record(LoopTime.seconds(delay.percentile(0.5)))
        delayP99.record(LoopTime.seconds(delay.percentile(0.99)))
        delayMaximum.record(LoopTime.seconds(delay.maximum))
        slowCallbacks.increment(by: Int64(clamping: now.slowCallbacks &- min(last.slowCallbacks, now.slowCallbacks)))
        last = now
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
