import EventCore
import EventLoopServices
import HTTP
import Metrics

/// A worker on its loop, as ``LoopWorkers`` holds it: how to drain it (the
/// graceful stop calls it on the loop) and its figures so far (nil once it
/// is gone).
struct WorkerHandle {
    let drain: () -> Void
    let stats: () -> HTTPServerStats?
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
                    let reporter = HTTPMetricsReporter(engine: engine, loop: "\(index)", stats: worker.stats)
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

/// One worker's figures reported to swift-metrics: answers by status, and
/// connections accepted and open, each with the engine and the loop as
/// dimensions - read from the worker's counts each interval, nothing per
/// request (loop thread only).
final class HTTPMetricsReporter {
    private let engine: String
    private let loop: String
    private let stats: () -> HTTPServerStats?
    private var last: HTTPServerStats?
    /// `last`'s answers by status (made once per report, not twice).
    private var lastResponses: [Int: Int] = [:]
    private var responses: [Int: Counter] = [:]
    private let accepted: Counter
    private let open: Gauge

    init(engine: String, loop: String, stats: @escaping () -> HTTPServerStats?) {
        self.engine = engine
        self.loop = loop
        self.stats = stats
        accepted = Counter(label: "http_connections_accepted_total", dimensions: [("engine", engine), ("loop", loop)])
        open = Gauge(label: "http_connections_open", dimensions: [("engine", engine), ("loop", loop)])
    }

    func report() {
        guard let now = stats() else { return }
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
    }
}
