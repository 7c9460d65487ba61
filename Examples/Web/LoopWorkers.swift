import EventCore
import EventLoopServices
import HTTP
import Metrics

/// A worker on its loop, as ``LoopWorkers`` holds it: how to drain it (the
/// graceful stop calls it on the loop) and its connections' context (nil
/// once the worker is gone): its figures, the hook that measures latency.
package struct WorkerHandle {
    package let drain: () -> Void
    package private(set) weak var context: HTTPServerContext?

    package init(drain: @escaping () -> Void, context: HTTPServerContext) {
        self.drain = drain
        self.context = context
    }

    /// The worker's figures so far, nil once it is gone.
    package var stats: HTTPServerStats? { context?.stats }
}

/// How a server over a loop group stops: gracefully (returning the
/// figures), or now.
struct LoopServerControl: Sendable {
    let stop: @Sendable () -> HTTPServerStats
    let stopNow: @Sendable () -> Void
}

/// The part of the evented HTTP engines that does not depend on how a
/// worker serves: one loop per listener in an ``EventCore/EventLoopGroup``,
/// a worker set up on each, every worker's figures added to the totals, and
/// a graceful stop that drains each worker on its own loop and joins the
/// loops (each worker owns its listener). With ``HTTPServerOptions/metricsInterval``,
/// each loop's monitor and each worker's figures go to swift-metrics.
enum LoopWorkers {
    /// Starts `listeners.count` loops made by `make` and runs `startWorker`
    /// on each with its listener and the report for its figures; the worker
    /// returns how to drain it, which the graceful stop calls on its loop.
    static func start<L: EventLoop>(
        _ listeners: [SocketDescriptor], _ options: HTTPServerOptions, engine: String,
        _ make: @escaping @Sendable () throws -> L,
        startWorker: @escaping @Sendable (L, SocketDescriptor, HTTPServerOptions, _ report: @escaping @Sendable (HTTPServerStats) -> Void) -> WorkerHandle
    ) throws -> LoopServerControl {
        let totals = LockedValue(HTTPServerStats(pages: options.site.pages))
        let group = try EventLoopGroup(loops: listeners.count, make)
        if let interval = options.metricsInterval {
            try LoopMetrics.report(group, interval: interval, options: options.loopMonitor)
        }
        for (index, (executor, listener)) in zip(group.executors, listeners).enumerated() {
            try executor.execute { loop in
                let worker = startWorker(loop, listener, options) { stats in totals.withLock { $0.add(stats) } }
                let ticker = options.metricsInterval.map { interval in
                    let reporter = HTTPMetricsReporter(engine: engine, loop: "\(index)", worker: worker)
                    return LoopTicker(on: loop, every: interval) { reporter.report() }
                }
                // The loop owns the worker (through its watches, timers or
                // tasks); the shutdown reaches it through the loop-bound drain.
                let drain = worker.drain
                let bound = LoopBound({ ticker?.stop(); drain() }, loop: loop.executor)
                group.onGracefulShutdown { loop in
                    if loop.executor === bound.loop { bound.value() }
                }
            }
        }
        // Each worker owns its listener (a Listener or an AsyncListener),
        // which closes with the worker's loop.
        return LoopServerControl(
            stop: {
                try? group.syncShutdownGracefully(timeout: options.stopTimeout + .seconds(1))
                return totals.withLock { $0 }
            },
            stopNow: { group.stopNow() })
    }
}

/// A worker's request latencies, measured through its context's
/// ``HTTP/HTTPServerContext/answersSent`` hook: from a request's first byte
/// read to its answer's last byte handed to the kernel, on the loop's clock
/// (``EventCore/monotonicNow()``, the testing loop's time under one). One
/// clock read per drained output and a bucket's increment per answer: no
/// allocation (loop thread only).
package final class RequestLatencies {
    /// The latencies measured so far.
    package private(set) var histogram = LatencyHistogram()

    /// Measures the requests `context`'s connections answer from now on
    /// (the context holds this; keep it to read the histogram).
    package init(measuring context: HTTPServerContext) {
        context.answersSent = { [self] since, count in record(since: since, count: count) }
    }

    private func record(since: Double, count: Int) {
        let latency = Duration.seconds(max(monotonicNow() - since, 0))
        for _ in 0..<count { histogram.record(latency) }
    }
}

/// One worker's figures reported to swift-metrics: answers by status,
/// connections accepted and open, and request latencies, each with the
/// engine and the loop as dimensions - read from the worker's counts each
/// interval; per request, nothing but ``RequestLatencies``' bucket (loop
/// thread only).
///
/// | label | kind | what |
/// |---|---|---|
/// | `http_responses_total` | counter, with `status` | answers sent, by status (`100` for `100 Continue`) |
/// | `http_connections_accepted_total` | counter | connections accepted |
/// | `http_connections_open` | gauge | connections open |
/// | `http_request_duration_seconds` | gauge, with `quantile` 0.5, 0.99 and `max` | request latency over the last interval that answered any (a summary's quantiles) |
/// | `http_request_duration_seconds_sum`, `_count` | floating-point counter, counter | the latencies' sum and count (their rates' ratio is the mean) |
final class HTTPMetricsReporter {
    private let engine: String
    private let loop: String
    private let worker: WorkerHandle
    private let latencies: RequestLatencies?
    private var last: HTTPServerStats?
    /// `last`'s answers by status (made once per report, not twice).
    private var lastResponses: [Int: Int] = [:]
    private var lastLatencies = LatencyHistogram()
    private var responses: [Int: Counter] = [:]
    private let accepted: Counter
    private let open: Gauge
    private let latency: QuantileGauges
    private let latencySum: FloatingPointCounter
    private let latencyCount: Counter

    init(engine: String, loop: String, worker: WorkerHandle) {
        self.engine = engine
        self.loop = loop
        self.worker = worker
        latencies = worker.context.map { RequestLatencies(measuring: $0) }
        let dimensions = [("engine", engine), ("loop", loop)]
        accepted = Counter(label: "http_connections_accepted_total", dimensions: dimensions)
        open = Gauge(label: "http_connections_open", dimensions: dimensions)
        latency = QuantileGauges(label: "http_request_duration_seconds", dimensions: dimensions)
        latencySum = FloatingPointCounter(label: "http_request_duration_seconds_sum", dimensions: dimensions)
        latencyCount = Counter(label: "http_request_duration_seconds_count", dimensions: dimensions)
    }

    func report() {
        guard let now = worker.stats else { return }
        let before = lastResponses
        let answered = now.responses
        for (status, count) in answered where count > before[status, default: 0] {
            let counter = responses[status] ?? Counter(label: "http_responses_total",
                                                       dimensions: [("engine", engine), ("loop", loop), ("status", "\(status)")])
            responses[status] = counter
            counter.increment(by: Int64(count - before[status, default: 0]))
        }
        accepted.increment(by: Int64(max(now.accepted - (last?.accepted ?? 0), 0)))
        open.record(now.open)
        last = now
        lastResponses = answered
        if let latencies, latencies.histogram.count > lastLatencies.count {
            let interval = latencies.histogram.since(lastLatencies)
            latency.record(interval)
            latencySum.increment(by: LoopTime.seconds(interval.sum))
            latencyCount.increment(by: Int64(clamping: interval.count))
            lastLatencies = latencies.histogram
        }
    }
}
